"""The one core call every adapter makes: a batch of input records in, a batch out.

``Pipeline.process_lines`` takes raw lines (text or JSON records, auto-detected per line);
``Pipeline.process_records`` takes records a shipper already decoded (Fluent Forward,
syslog-ng, rsyslog). Both return a list aligned 1:1 with the input: an ECS
:class:`~ikefilter.ecs.Event`, a record passed through unchanged (a dict), or ``None`` for an
event that a rule dropped or that went to the quarantine. :class:`Stats` counts all of it.

No input stops a batch: a line longer than ``max_line`` is cut to it and tagged
``ikefilter_truncated``, a JSON record nested deeper than ``max_depth`` is a parse failure,
and a line that still raises becomes a tagged parse failure (``ikefilter_internal_error``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

from . import ecs
from .catalog import Catalog
from .catalog import load as load_catalog
from .fastlane import Lane, takes
from .normalize import Normalizer, SeverityDialect
from .record import DEFAULT_SOURCE_KEYS, RECORD_META, record_host, record_pri, record_time
from .wire import Decoded, NotClavister, Undecodable, decode_line

log = logging.getLogger("ikefilter")

NonClavisterPolicy = Literal["pass", "tag", "drop"]
Output = Any  # ecs.Event | dict | None

DEFAULT_MAX_LINE = 64 * 1024
DEFAULT_MAX_DEPTH = 32
TAG_TRUNCATED = "ikefilter_truncated"
TAG_INTERNAL_ERROR = "ikefilter_internal_error"


class Stats(msgspec.Struct):
    """Counts that always add up: ``in_ == out + dropped + quarantined``."""

    in_: int = msgspec.field(default=0, name="in")
    out: int = 0
    dropped: int = 0
    quarantined: int = 0
    tagged: int = 0
    passthrough: int = 0
    dropped_by_rule: dict[str, int] = msgspec.field(default_factory=dict)


Stage = Callable[[list[ecs.Event]], list[ecs.Event | None]]


class Pipeline:
    """Decode, normalize, then hand each batch of events to the site stages.

    Built once per process; the catalog, decoders and stages are reused for every batch.

    :param stages: called once per batch with the events (never the pass-through
        records); returns a list aligned with its input where ``None`` marks an event that
        must not be written (the stage counts it in :attr:`stats`). The plugin manager
        supplies it; without one, events go out as normalized.
    """

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        stages: Stage | None = None,
        source_keys: Iterable[str] = DEFAULT_SOURCE_KEYS,
        non_clavister: NonClavisterPolicy = "pass",
        severity_dialect: SeverityDialect = "clavister",
        keep_original: bool = True,
        max_line: int = DEFAULT_MAX_LINE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        fast: bool = True,
    ):
        """:param max_line: longest line kept whole, in bytes (characters for ``str``
            lines and for a record's line); a longer one is cut to it and tagged.
        :param max_depth: deepest nesting of a JSON record line; a deeper one is a parse
            failure (``ikefilter_parse_failure``), never decoded.
        :param fast: take the batch fast path (:mod:`ikefilter.fastlane`) for the lines it
            can decode exactly; off, every line takes the per-line path (same output).
        """
        if max_line < 1 or max_depth < 1:
            raise ValueError("max_line and max_depth must be at least 1")
        self.catalog = catalog or load_catalog()
        self.normalizer = Normalizer(self.catalog, severity_dialect, keep_original)
        self.stages = stages
        self.source_keys = tuple(source_keys)
        self.non_clavister = non_clavister
        self.max_line = max_line
        self.max_depth = max_depth
        self.stats = Stats()
        self._faults_logged: set[str] = set()
        self._record_decoder = msgspec.json.Decoder(dict)
        self._records_decoder = msgspec.json.Decoder(list[dict])
        self._extents_decoder = msgspec.json.Decoder(list[msgspec.Raw])
        self._json_encoder = msgspec.json.Encoder()
        self.lane = Lane(self.normalizer) if fast and any(map(takes, self.catalog.messages)) \
            else None
        self._lane_rests = 0
        self._lone_line_is_bare = not set(self.source_keys) & RECORD_META
        # A record is read as split pairs only where no source key could be a parameter.
        self._split_lane = self.lane is not None and not (
            set(self.source_keys) & self.lane.record_keys)

    # -- entry points -----------------------------------------------------------------------

    def process_lines(self, lines: list[bytes] | list[str]) -> list[Output]:
        """Process one batch of lines (no newline). Text lines and JSON records may mix."""
        now = _now()
        out = self._fast(self._lane_lines, lines, now)
        if out is None:
            out = [None] * len(lines)
        elif None not in out:
            return self._finish(out, taken=True)
        for i, item in enumerate(out):
            if item is None:
                line = lines[i]
                try:
                    out[i] = self._from_line(line, now)
                except Exception as exc:  # one line never stops the batch
                    out[i] = self._fault(line, exc, now)
        return self._finish(out)

    def process_records(
        self, records: list[dict], times: Sequence[str | None] | None = None
    ) -> list[Output]:
        """Process one batch of records a shipper already decoded into mappings.

        :param times: the shipper's event time of each record (RFC 3339 UTC), aligned with
            ``records``: used for an event whose line and record carry no time of their own.
            Any sequence of that length; the fast path reads an item only for such an event.
        """
        if times is not None and len(times) != len(records):
            raise ValueError(f"{len(times)} times for {len(records)} records")
        now = _now()
        out = self._fast(self._lane_records, records, now, times)
        if out is None:
            out = [None] * len(records)
        elif None not in out:
            return self._finish(out, taken=True)
        for i, item in enumerate(out):
            if item is not None:
                continue
            r = records[i]
            when = now
            try:
                if times is not None:
                    when = times[i] or now
                if isinstance(r, dict):
                    out[i] = self._from_record(r, when, None)
                else:
                    out[i] = self._failure(_cut(repr(r), self.max_line),
                                           "record is not a mapping", when)
            except Exception as exc:
                out[i] = self._fault(r, exc, when)
        return self._finish(out)

    # -- the batch fast path ----------------------------------------------------------------

    def _fast(self, take: Callable, *args) -> list | None:
        """The events the fast path could take (None for each of the others), or None."""
        if self.lane is None:
            return None
        if self._lane_rests:
            self._lane_rests -= 1
            return None
        try:
            out = take(*args)
        except Exception as exc:  # never lose a batch to it: the exact path takes them all
            kind = f"fast path {type(exc).__name__}"
            if kind not in self._faults_logged:
                self._faults_logged.add(kind)
                log.error("the fast path raised %s; its batches take the exact path "
                          "(logged once)", type(exc).__name__)
            log.debug("traceback of the fast path", exc_info=exc)
            return None
        # Where it takes under a quarter of a full batch (a stream of other messages), the
        # fast path costs more than it saves: it rests for a few batches, then tries again.
        if out is not None and len(out) >= _FULL_BATCH and None in out:
            if (len(out) - out.count(None)) * 4 < len(out):
                self._lane_rests = _LANE_REST
        return out

    def _lane_lines(self, lines: list[bytes] | list[str], now: str) -> list | None:
        if not lines or max(map(len, lines)) > self.max_line:
            return None
        first = lines[0]
        text = (b"\n".join(lines).decode("utf-8", "replace") if isinstance(first, bytes)
                else "\n".join(lines))
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if text.endswith("\r"):
                text = text[:-1]
        texts = text.split("\n")
        if len(texts) != len(lines):
            return None
        if "{" not in text:
            return self.lane.lines(texts, now)
        json_lines = [i for i, t in enumerate(texts) if t[:1] == "{"]
        out = (self.lane.lines(texts, now) if len(json_lines) < len(texts)
               else [None] * len(texts))
        if json_lines:
            self._lane_json(texts, json_lines, out, now)
        return out

    def _lane_json(self, texts: list[str], json_lines: list[int], out: list, now: str
                   ) -> None:
        """JSON records among the lines: split pairs, or a line under a source key."""
        # (Split pairs decode into Structs of flat values: no depth to check.)
        split = [i for i in json_lines if '"id":' in texts[i]]
        depth = self.max_depth
        wrapped = [i for i in json_lines if '"id":' not in texts[i]
                   and texts[i].count("{") + texts[i].count("[") <= depth]
        if split and self._split_lane:
            for i, event in zip(split, self.lane.split_records([texts[i] for i in split], now),
                                strict=True):
                out[i] = event
        if wrapped:
            lines = [texts[i] for i in wrapped]
            text = "[" + ",".join(lines) + "]"
            try:
                # Each line must be one JSON value, whole: a line cut inside a value could
                # otherwise run on into the next one in the joined array. The extents of
                # the array's values (their lengths, in UTF-8) must be the lines'.
                extents = list(map(len, self._extents_decoder.decode(text)))
                if extents != list(map(len, lines if text.isascii() else
                                       (line.encode() for line in lines))):
                    return
                records = self._records_decoder.decode(text)
            except (msgspec.DecodeError, RecursionError, UnicodeError):
                return  # (UnicodeError: a lone surrogate in a str line)
            for i, event in zip(wrapped, self._lane_records(records, now), strict=True):
                out[i] = event

    def _lane_records(self, records: list, now: str, times: Sequence | None = None) -> list:
        out: list = [None] * len(records)
        index, lines, taken = [], [], []
        keys, limit = self.source_keys, self.max_line
        # A record that holds only its line has no time, host or PRI to lend it.
        alone = 1 if self._lone_line_is_bare else 0
        for i, r in enumerate(records):
            if type(r) is not dict:
                continue
            for key in keys:
                value = r.get(key)
                if isinstance(value, str):
                    if len(value) <= limit and "\n" not in value:
                        index.append(i)
                        lines.append(value)
                        taken.append(None if len(r) == alone else r)
                    break
        if index:
            events = self.lane.lines(lines, now, taken,
                                     _Picked(times, index) if times is not None else None)
            for i, event in zip(index, events, strict=True):
                out[i] = event
        return out

    # -- per record -------------------------------------------------------------------------

    def _from_line(self, line: bytes | str, now: str) -> Output:
        size = len(line)
        if size > self.max_line:
            line = line[:self.max_line]
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        if text.endswith("\r"):
            text = text[:-1]
        body = text[1:] if text[:1] == "\ufeff" else text  # a BOM before a JSON record
        if body[:1] == "{":
            if _too_deep(body, self.max_depth):
                result = self._failure(
                    text, f"invalid JSON record: nested deeper than {self.max_depth} levels", now)
            else:
                try:
                    record = self._record_decoder.decode(body)
                except (msgspec.DecodeError, RecursionError) as exc:
                    result = self._failure(text, f"invalid JSON record: {exc}", now)
                else:
                    result = self._from_record(record, now, text)
        else:
            result = self._from_text(text, now)
        if size > self.max_line:
            result = self._truncated(result, text, now)
        return result

    def _truncated(self, result: Output, text: str, now: str) -> Output:
        """Tag what came of a line cut to ``max_line``; never pass it on as it was sent."""
        why = f"line longer than {self.max_line} truncated to it"
        if type(result) is ecs.Event:
            result.tag(TAG_TRUNCATED)
            result.add_error(why)
        elif result is not _DROP_NOT_CLAVISTER and result is not None:
            result = ecs.Event(
                timestamp=now,
                message=text,
                event=ecs.event_fields(original=text),
                tags=[ecs.TAG_NOT_CLAVISTER, TAG_TRUNCATED],
                error=ecs.Error(f"not a Clavister log line; {why}"),
                ecs=ecs.ecs_block(),
            )
        return result

    def _fault(self, item: object, exc: Exception, now: str) -> ecs.Event:
        """The output for an input that raised: a tagged failure holding its text."""
        kind = type(exc).__name__
        if kind not in self._faults_logged:
            self._faults_logged.add(kind)
            # The type only: the exception's text may hold values a site redacts.
            log.error("an input raised %s; it is written tagged %s (logged once per kind)",
                      kind, TAG_INTERNAL_ERROR)
        log.debug("traceback of an input that raised", exc_info=exc)
        try:
            if isinstance(item, bytes):
                text = item[:self.max_line].decode("utf-8", "replace")
            elif isinstance(item, str):
                text = item[:self.max_line]
            else:
                text = _cut(repr(item), self.max_line)
            text.encode("utf-8")
        except Exception:
            text = ""
        event = self._failure(text, f"internal error: {kind}", now)
        event.tag(TAG_INTERNAL_ERROR)
        return event

    def _from_text(self, text: str, now: str) -> Output:
        try:
            decoded = decode_line(text)
        except NotClavister as exc:
            return self._not_clavister({"message": text}, text, str(exc), now)
        except Undecodable as exc:
            return self._failure(text, str(exc), now)
        return self.normalizer.normalize(decoded, now)

    def _from_record(self, record: dict, now: str, text: str | None) -> Output:
        line = None
        for key in self.source_keys:
            value = record.get(key)
            if isinstance(value, str):
                line = value
                break
        if line is not None:
            if len(line) > self.max_line:
                cut = line[:self.max_line]
                result = self._from_source(record, cut, now)
                # A record that is not ours goes on unchanged, as it came.
                return result if type(result) is dict else self._truncated(result, cut, now)
            return self._from_source(record, line, now)
        if "id" in record:
            # A record whose pairs a shipper already split into fields.
            params = {
                k: v if isinstance(v, str) else self._json_encoder.encode(v).decode()
                for k, v in record.items()
                if k not in RECORD_META and v is not None
            }
            original = text if text is not None else self._json_encoder.encode(record).decode()
            decoded = Decoded(
                original, params, time=record_time(record), host=record_host(record),
                pri=record_pri(record),
            )
        else:
            why = "no Clavister line in the record"
            if self.non_clavister != "tag":
                return self._not_clavister(record, "", why, now)  # passed or dropped as is
            original = text if text is not None else self._json_encoder.encode(record).decode()
            return self._not_clavister(record, original, why, now)
        return self.normalizer.normalize(decoded, now)

    def _from_source(self, record: dict, line: str, now: str) -> Output:
        """A record's raw line, with the record's time, host and PRI where the line has none."""
        try:
            decoded = decode_line(line)
        except NotClavister as exc:
            return self._not_clavister(record, line, str(exc), now)
        except Undecodable as exc:
            return self._failure(line, str(exc), now)
        if decoded.time is None:
            decoded.time = record_time(record)
        if decoded.host is None:
            decoded.host = record_host(record)
        if decoded.pri is None:
            decoded.pri = record_pri(record)
        return self.normalizer.normalize(decoded, now)

    def _failure(self, original: str, why: str, now: str) -> ecs.Event:
        event = ecs.Event(
            timestamp=now,
            event=ecs.event_fields(original=original),
            tags=["clavister", ecs.TAG_PARSE_FAILURE],
            error=ecs.Error(why),
            ecs=ecs.ecs_block(),
        )
        return event

    def _not_clavister(self, record: dict, original: str, why: str, now: str) -> Output:
        if self.non_clavister == "pass":
            return record
        if self.non_clavister == "drop":
            return _DROP_NOT_CLAVISTER
        return ecs.Event(
            timestamp=now,
            message=original,
            event=ecs.event_fields(original=original),
            tags=[ecs.TAG_NOT_CLAVISTER],
            error=ecs.Error(why),
            ecs=ecs.ecs_block(),
        )

    # -- per batch --------------------------------------------------------------------------

    def _finish(self, out: list[Output], taken: bool = False) -> list[Output]:
        """Run the site stages over the batch's events and count it all in :attr:`stats`.

        :param taken: every item is an event of the fast path."""
        stats = self.stats
        if taken and self.stages is None:
            # Every item an event of the fast path, which are never tagged: nothing to scan.
            stats.in_ += len(out)
            stats.out += len(out)
            return out
        if self.stages is not None:
            index = [i for i, item in enumerate(out) if type(item) is ecs.Event]
            if index:
                staged = self.stages([out[i] for i in index])
                if len(staged) != len(index):
                    raise RuntimeError(
                        f"site stages returned {len(staged)} events for {len(index)}"
                    )
                for i, item in zip(index, staged, strict=True):
                    out[i] = item
        # Counted once the stages are through, so a batch that raised counts nothing.
        stats.in_ += len(out)
        dropped = out.count(_DROP_NOT_CLAVISTER)
        if dropped:
            out = [None if item is _DROP_NOT_CLAVISTER else item for item in out]
            stats.dropped += dropped
            stats.dropped_by_rule["non_clavister"] = (
                stats.dropped_by_rule.get("non_clavister", 0) + dropped
            )
        written = len(out) - out.count(None)
        stats.out += written
        tag_lists = [item.tags for item in out if type(item) is ecs.Event]
        events = len(tag_lists)
        tagged = 0
        if tag_lists.count(_PLAIN_TAGS) != events:
            tagged = sum(1 for tags in tag_lists
                         if tags is not None and tags != _PLAIN_TAGS and _failure_tagged(tags))
        stats.tagged += tagged
        stats.passthrough += written - events
        return out


class _Picked:
    """``items[index[k]]`` for each ``k``, read only when asked."""

    __slots__ = ("index", "items")

    def __init__(self, items: Sequence, index: list[int]):
        self.items, self.index = items, index

    def __getitem__(self, k: int):
        return self.items[self.index[k]]

    def __len__(self) -> int:
        return len(self.index)


_PLAIN_TAGS = ["clavister", "ike"]
_FULL_BATCH = 64
_LANE_REST = 8
_DROP_NOT_CLAVISTER = object()


def _failure_tagged(tags: list[str]) -> bool:
    return any(t.startswith("ikefilter_") for t in tags)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Strings skipped whole, so a bracket inside one is not nesting. An unterminated string
# runs to the end: a failed match would be retried at every quote after it (quadratic).
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.S)


def _too_deep(text: str, limit: int) -> bool:
    """True when the JSON text nests objects and arrays deeper than ``limit``."""
    if text.count("{") + text.count("[") <= limit:
        return False
    depth = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m[0]
        if c == "{" or c == "[":
            depth += 1
            if depth > limit:
                return True
        elif c == "}" or c == "]":
            depth -= 1
    return False


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]
