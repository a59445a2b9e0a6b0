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
from typing import Any, Literal

import msgspec

from . import ecs
from .catalog import Catalog
from .catalog import load as load_catalog
from .fastlane import NOT_OURS, Lane
from .normalize import Normalizer, SeverityDialect
from .record import DEFAULT_SOURCE_KEYS, RECORD_META, record_host, record_pri, record_time
from .wire import NOT_CLAVISTER, NotClavister, Undecodable, decode_line

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
        :param fast: split the lines of a batch together (:mod:`ikefilter.fastlane`); off,
            every line is split on its own (same output).
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
        self._text_record_decoder = msgspec.json.Decoder(dict[str, str])
        self._json_encoder = msgspec.json.Encoder()
        self.lane = Lane(self.normalizer.builders) if fast else None
        self._lone_line_is_bare = not set(self.source_keys) & RECORD_META

    # -- entry points -----------------------------------------------------------------------

    def process_lines(self, lines: list[bytes] | list[str]) -> list[Output]:
        """Process one batch of lines (no newline). Text lines and JSON records may mix."""
        now = ecs.now()
        out: list[Output] = [None] * len(lines)
        texts = self._texts(lines) if self.lane is not None and lines else None
        rest: list[int] = []
        if texts is None:
            rest = list(range(len(lines)))
        else:
            plain: Sequence[int] = range(len(lines))
            limit = self.max_line
            if max(map(len, lines)) > limit or any("{" in text for text in texts):
                plain, records, originals, index, texts_only = [], [], [], [], []
                for i, text in enumerate(texts):
                    if len(lines[i]) > limit:
                        rest.append(i)  # cut to the limit and tagged, on its own
                    elif text[:1] == "{" or text[:2] == "\ufeff{":
                        record, only = self._json_record(text)
                        if record is None:
                            rest.append(i)  # the per-line path says why it is not one
                        else:
                            index.append(i)
                            records.append(record)
                            originals.append(text)
                            texts_only.append(only)
                    else:
                        plain.append(i)
                if index:
                    done = self._records(records, now, None, originals, texts_only)
                    for i, item in zip(index, done, strict=True):
                        out[i] = item
            _place(self._lane(self.lane.lines, [texts[i] for i in plain], now), plain, out,
                   rest, lambda k: self._line_not_ours(texts[plain[k]], NOT_CLAVISTER, now))
        for i in rest:
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
            Any sequence of that length; an item is read only for such an event.
        """
        if times is not None and len(times) != len(records):
            raise ValueError(f"{len(times)} times for {len(records)} records")
        return self._finish(self._records(records, ecs.now(), times))

    def _records(self, records: list, now: str, times: Sequence[str | None] | None = None,
                 originals: list[str] | None = None,
                 texts_only: list[bool] | None = None) -> list[Output]:
        """The output of each record; ``originals``: the JSON text of each, where it came
        as a line; ``texts_only``: whether each holds text values only."""
        out: list[Output] = [None] * len(records)
        rest: list[int] = []
        index, lines, lenders = [], [], []
        keys, limit = self.source_keys, self.max_line
        # A record that holds only its line has no time, host or PRI to lend it.
        alone = 1 if self._lone_line_is_bare else 0
        for i, r in enumerate(records):
            if self.lane is not None and type(r) is dict:
                for key in keys:
                    value = r.get(key)
                    if isinstance(value, str):
                        if (len(value) <= limit and "\n" not in value and "\r" not in value
                                and value[:1] != "{"):
                            index.append(i)
                            lines.append(value)
                            lenders.append(None if len(r) == alone else r)
                        else:
                            rest.append(i)
                        break
                else:
                    rest.append(i)  # split pairs, or no line: the record as a whole
            else:
                rest.append(i)
        if index:
            picked = _Picked(times, index) if times is not None else None
            _place(self._lane(self.lane.lines, lines, now, lenders, picked), index, out, rest,
                   lambda k: self._not_clavister(records[index[k]], lines[k], NOT_CLAVISTER,
                                                 now if times is None else
                                                 times[index[k]] or now))
        for i in rest:
            r = records[i]
            when = now
            try:
                if times is not None:
                    when = times[i] or now
                if isinstance(r, dict):
                    out[i] = self._from_record(r, when,
                                               None if originals is None else originals[i],
                                               texts_only=texts_only is not None
                                               and texts_only[i])
                else:
                    out[i] = self._failure(_cut(repr(r), self.max_line),
                                           "record is not a mapping", when)
            except Exception as exc:
                out[i] = self._fault(r if originals is None else originals[i], exc, when)
        return out

    def _json_record(self, text: str) -> tuple[dict | None, bool]:
        """The record a JSON line holds, or None when it is not one (too deep, invalid); and
        whether its values are all text."""
        body = text[1:] if text[:1] == "\ufeff" else text
        if _too_deep(body, self.max_depth):
            return None, False
        try:
            try:
                return self._text_record_decoder.decode(body), True
            except msgspec.ValidationError:
                record = self._record_decoder.decode(body)
        except (msgspec.DecodeError, RecursionError, UnicodeError):
            return None, False  # (UnicodeError: a lone surrogate in a str line)
        return (record if type(record) is dict else None), False

    # -- the batch lane ---------------------------------------------------------------------

    def _texts(self, lines: list[bytes] | list[str]) -> list[str] | None:
        """The lines as text, one decode for the batch; None when a line holds a newline
        (each line then goes on its own)."""
        text = (b"\n".join(lines).decode("utf-8", "replace") if isinstance(lines[0], bytes)
                else "\n".join(lines))
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if text.endswith("\r"):
                text = text[:-1]
        texts = text.split("\n")
        return texts if len(texts) == len(lines) else None

    def _lane(self, take: Callable, items: list, *args) -> list:
        """What the lane makes of ``items``; all None (each on its own) if it raised."""
        if not items:
            return []
        try:
            return take(items, *args)
        except Exception as exc:  # never lose a batch to it: the lines go one by one
            kind = f"batch lane {type(exc).__name__}"
            if kind not in self._faults_logged:
                self._faults_logged.add(kind)
                log.error("the batch lane raised %s; its lines are taken one by one "
                          "(logged once)", type(exc).__name__)
            log.debug("traceback of the batch lane", exc_info=exc)
            return [None] * len(items)

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
        elif result is not _DROP_NOT_CLAVISTER and result is not _DROP_BLANK \
                and result is not None:
            result = ecs.failure(f"not a Clavister log line; {why}",
                                 [ecs.TAG_NOT_CLAVISTER, TAG_TRUNCATED], now, text, message=text,
                                 clavister=False)
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
            return self._line_not_ours(text, str(exc), now)
        except Undecodable as exc:
            return self._failure(text, str(exc), now)
        return self.normalizer.normalize(decoded, now)

    def _line_not_ours(self, text: str, why: str, now: str) -> Output:
        """A text line that is not Clavister's; a blank one is a counted drop
        (``dropped_by_rule.blank_line``), never a document."""
        if not text.strip(_BLANKS):
            return _DROP_BLANK
        return self._not_clavister({"message": text}, text, why, now)

    def _from_record(self, record: dict, now: str, text: str | None,
                     unwrap: bool = True, texts_only: bool = False) -> Output:
        """The output of one record: its line's, or its split pairs' (``texts_only``: the
        values are all text), or a record that is not Clavister's; ``text``: the JSON text
        it came as, if it came as a line."""
        line = None
        for key in self.source_keys:
            value = record.get(key)
            if isinstance(value, str):
                line = value
                break
        if (unwrap and line is not None and len(line) <= self.max_line
                and (line[:1] == "{" or line[:2] == "\ufeff{")):
            # A JSON line a shipper carried as text (a file of JSON lines tailed without a
            # parser): the record it holds, as ``run`` reads that line.
            inner, inner_texts = self._json_record(line)
            if inner is not None and (
                    "id" in inner
                    or any(isinstance(inner.get(key), str) for key in self.source_keys)):
                return self._from_record(inner, now, line, False, inner_texts)
        if line is not None:
            if len(line) > self.max_line:
                cut = line[:self.max_line]
                result = self._from_source(record, cut, now)
                # A record that is not ours goes on unchanged, as it came.
                return result if type(result) is dict else self._truncated(result, cut, now)
            return self._from_source(record, line, now)
        if "id" in record:
            return self._split(record, now, text, texts_only)
        why = "no Clavister line in the record"
        if self.non_clavister != "tag":
            return self._not_clavister(record, "", why, now)  # passed or dropped as is
        original = text if text is not None else self._json_encoder.encode(record).decode()
        return self._not_clavister(record, original, why, now)

    def _split(self, record: dict, now: str, original: str | None,
               texts_only: bool = False) -> ecs.Event:
        """A record whose pairs a shipper already split into fields: values that are not
        text are read as their JSON text (``texts_only``: there are none); the record's own
        keys give time, host and PRI."""
        p = record
        if not texts_only:
            for value in record.values():
                if type(value) is not str:
                    encode = self._json_encoder.encode
                    p = {k: v if isinstance(v, str) else encode(v).decode()
                         for k, v in record.items() if v is not None}
                    break
        if original is None and self.normalizer.keep_original:
            original = self._json_encoder.encode(record).decode()
        build = self.normalizer.record_builders(p.get("id"))
        return build(p, record_pri(record), record_time(record), None, record_host(record),
                     original, now, None)

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
        return ecs.failure(why, ["clavister", ecs.TAG_PARSE_FAILURE], now, original)

    def _not_clavister(self, record: dict, original: str, why: str, now: str) -> Output:
        if self.non_clavister == "pass":
            return record
        if self.non_clavister == "drop":
            return _DROP_NOT_CLAVISTER
        return ecs.failure(why, [ecs.TAG_NOT_CLAVISTER], now, original, message=original,
                           clavister=False)

    # -- per batch --------------------------------------------------------------------------

    def _finish(self, out: list[Output]) -> list[Output]:
        """Run the site stages over the batch's events and count it all in :attr:`stats`."""
        stats = self.stats
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
        for drop, rule in _DROPS:
            dropped = out.count(drop)
            if dropped:
                out = [None if item is drop else item for item in out]
                stats.dropped += dropped
                stats.dropped_by_rule[rule] = stats.dropped_by_rule.get(rule, 0) + dropped
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


def _place(events: list, index: Sequence[int], out: list, rest: list[int],
           not_ours: Callable[[int], Output]) -> None:
    """The lane's events into ``out`` at ``index``; where it made none, the index to
    ``rest`` (for the per-line path); where the line is not Clavister's, ``not_ours(k)`` of
    its position ``k`` in ``index``."""
    for k, (i, event) in enumerate(zip(index, events, strict=True)):
        if event is None:
            rest.append(i)
        elif event is NOT_OURS:
            out[i] = not_ours(k)
        else:
            out[i] = event


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
_DROP_NOT_CLAVISTER = object()
_DROP_BLANK = object()
_BLANKS = " \t\r\n\v\f"  # what makes a line blank: ASCII white space only
# the markers of lines dropped by the core, and the rule each is counted under
_DROPS = ((_DROP_NOT_CLAVISTER, "non_clavister"), (_DROP_BLANK, "blank_line"))


def _failure_tagged(tags: list[str]) -> bool:
    return any(t.startswith("ikefilter_") for t in tags)


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
