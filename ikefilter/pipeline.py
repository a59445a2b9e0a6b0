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
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

from . import ecs
from .catalog import Catalog
from .catalog import load as load_catalog
from .normalize import Normalizer, SeverityDialect
from .wire import Decoded, NotClavister, Undecodable, decode_line, utc_iso

log = logging.getLogger("ikefilter")

NonClavisterPolicy = Literal["pass", "tag", "drop"]
Output = Any  # ecs.Event | dict | None

# Where a shipper puts the raw line, in the order they are tried (Fluent Bit/Fluentd `log`,
# Logstash/Vector `message`, rsyslog `rawmsg`, syslog-ng `MESSAGE`, rsyslog `msg`).
DEFAULT_SOURCE_KEYS = ("log", "message", "rawmsg", "MESSAGE", "msg")
_TIME_KEYS = ("@timestamp", "timestamp", "time", "timereported", "DATE")
_HOST_KEYS = ("host", "hostname", "HOST", "fromhost")
# Keys a shipper adds to a record whose pairs it already split; not Clavister parameters.
_RECORD_META = frozenset(_TIME_KEYS + _HOST_KEYS + ("tag", "source", "pri", "severity", "facility"))

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
    ):
        """:param max_line: longest line kept whole, in bytes (characters for ``str``
            lines and for a record's line); a longer one is cut to it and tagged.
        :param max_depth: deepest nesting of a JSON record line; a deeper one is a parse
            failure (``ikefilter_parse_failure``), never decoded.
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
        self._json_encoder = msgspec.json.Encoder()

    # -- entry points -----------------------------------------------------------------------

    def process_lines(self, lines: list[bytes] | list[str]) -> list[Output]:
        """Process one batch of lines (no newline). Text lines and JSON records may mix."""
        now = _now()
        out: list[Output] = []
        append = out.append
        for line in lines:
            try:
                append(self._from_line(line, now))
            except Exception as exc:  # one line never stops the batch
                append(self._fault(line, exc, now))
        return self._finish(out)

    def process_records(
        self, records: list[dict], times: list[str | None] | None = None
    ) -> list[Output]:
        """Process one batch of records a shipper already decoded into mappings.

        :param times: the shipper's event time of each record (RFC 3339 UTC), aligned with
            ``records``: used for an event whose line and record carry no time of their own.
        """
        now = _now()
        out: list[Output] = []
        append = out.append
        for i, r in enumerate(records):
            when = (times[i] or now) if times is not None else now
            try:
                if isinstance(r, dict):
                    append(self._from_record(r, when, None))
                else:
                    append(self._failure(_cut(repr(r), self.max_line), "record is not a mapping",
                                         when))
            except Exception as exc:
                append(self._fault(r, exc, when))
        return self._finish(out)

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
                if k not in _RECORD_META and v is not None
            }
            original = text if text is not None else self._json_encoder.encode(record).decode()
            decoded = Decoded(
                original, params, time=_record_time(record), host=_first_str(record, _HOST_KEYS),
                pri=_record_pri(record),
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
            decoded.time = _record_time(record)
        if decoded.host is None:
            decoded.host = _first_str(record, _HOST_KEYS)
        if decoded.pri is None:
            decoded.pri = _record_pri(record)
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

    def _finish(self, out: list[Output]) -> list[Output]:
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
        dropped = out.count(_DROP_NOT_CLAVISTER)
        if dropped:
            out = [None if item is _DROP_NOT_CLAVISTER else item for item in out]
            stats.dropped += dropped
            stats.dropped_by_rule["non_clavister"] = (
                stats.dropped_by_rule.get("non_clavister", 0) + dropped
            )
        written = len(out) - out.count(None)
        stats.out += written
        events = tagged = 0
        for item in out:
            if type(item) is ecs.Event:
                events += 1
                tags = item.tags
                if tags is not None and tags != _PLAIN_TAGS and _failure_tagged(tags):
                    tagged += 1
        stats.tagged += tagged
        stats.passthrough += written - events
        return out


_PLAIN_TAGS = ["clavister", "ike"]
_DROP_NOT_CLAVISTER = object()


def _failure_tagged(tags: list[str]) -> bool:
    return any(t.startswith("ikefilter_") for t in tags)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _first_str(record: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _record_time(record: dict) -> str | None:
    value = _first_str(record, _TIME_KEYS)
    return utc_iso(value) if value is not None else None


def _record_pri(record: dict) -> int | None:
    value = record.get("pri")
    try:
        pri = int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return None
    return pri if pri is not None and 0 <= pri < 192 else None


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
