"""One input at a time to its output: a line (text, or a JSON record), or a record a
shipper decoded. The per-item path, taken by whatever the batch lane does not take, and the
failure and not-Clavister outputs of every path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from . import ecs
from .normalize import Normalizer
from .record import RECORD_META, lent_time, record_host, record_pri
from .wire import NotClavister, Undecodable, decode_line

log = logging.getLogger("ikefilter")

NonClavisterPolicy = Literal["pass", "tag", "drop"]
Output = Any  # ecs.Event | dict | None

DEFAULT_MAX_LINE = 64 * 1024
DEFAULT_MAX_DEPTH = 32

# In place of a not-Clavister record the policy drops, and of a blank line: counted, then
# removed, under the rule each is counted by.
DROP = object()
DROP_BLANK = object()
DROPS = ((DROP, "non_clavister"), (DROP_BLANK, "blank_line"))
BLANKS = " \t\r\n\v\f"  # what makes a line blank: ASCII white space only


def text_values(record: dict) -> None:
    """Read the record's ``bytes`` values as UTF-8 text (an invalid byte as U+FFFD)."""
    for key, value in record.items():
        if type(value) is bytes:
            record[key] = value.decode("utf-8", "replace")


def json_line(text: str) -> bool:
    """The line is read as a JSON record, not as text: it starts with ``{`` (after a BOM)."""
    return text[:1] == "{" or text[:2] == "\ufeff{"


class Reader:
    """Reads one input at a time, with what that needs built once.

    :param normalizer: builds the events.
    :param source_keys: the record keys that may hold the line, in order.
    :param non_clavister: what becomes of a record that is not Clavister's.
    :param max_line: longest line kept whole; a longer one is cut to it and tagged.
    :param max_depth: deepest nesting of a JSON record line.
    """

    def __init__(self, normalizer: Normalizer, source_keys: Iterable[str],
                 non_clavister: NonClavisterPolicy, max_line: int, max_depth: int):
        self.normalizer = normalizer
        self.source_keys = tuple(source_keys)
        self.non_clavister = non_clavister
        self.max_line = max_line
        self.max_depth = max_depth
        self.lone_line_is_bare = not set(self.source_keys) & RECORD_META
        self._faults_logged: set[str] = set()
        self._record_decoder = msgspec.json.Decoder(dict)
        self._json_encoder = msgspec.json.Encoder()

    def json_record(self, text: str) -> dict | None:
        """The record a JSON line holds, or None when it is not one (too deep, invalid)."""
        record, _ = self._read_json(text)
        return record if type(record) is dict else None

    def _read_json(self, text: str) -> tuple[object, str | None]:
        """What a JSON line holds, or None and why it holds nothing."""
        body = text[1:] if text[:1] == "\ufeff" else text
        if too_deep(body, self.max_depth):
            return None, f"nested deeper than {self.max_depth} levels"
        try:
            return self._record_decoder.decode(body), None
        except (msgspec.DecodeError, RecursionError, UnicodeError) as exc:
            return None, str(exc)  # (UnicodeError: a lone surrogate in a str line)

    def from_line(self, line: bytes | str, now: str) -> Output:
        size = len(line)
        if size > self.max_line:
            line = line[:self.max_line]
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        if text.endswith("\r"):
            text = text[:-1]
        if json_line(text):
            record, why = self._read_json(text)
            result = (self.failure(text, f"invalid JSON record: {why}", now) if why is not None
                      else self.from_record(record, now, text))
        else:
            result = self.from_text(text, now)
        if size > self.max_line:
            result = self.truncated(result, text, now)
        return result

    def truncated(self, result: Output, text: str, now: str) -> Output:
        """Tag what came of a line cut to ``max_line``; never pass it on as it was sent."""
        why = f"line longer than {self.max_line} truncated to it"
        if type(result) is ecs.Event:
            result.tag(ecs.TAG_TRUNCATED)
            result.add_error(why)
        elif result is not DROP and result is not DROP_BLANK and result is not None:
            result = ecs.failure(f"not a Clavister log line; {why}",
                                 [ecs.TAG_NOT_CLAVISTER, ecs.TAG_TRUNCATED], now, text,
                                 message=text, clavister=False)
        return result

    def fault(self, item: object, exc: Exception, now: str) -> ecs.Event:
        """The output for an input that raised: a tagged failure holding its text."""
        kind = type(exc).__name__
        if kind not in self._faults_logged:
            self._faults_logged.add(kind)
            # The type only: the exception's text may hold values a site redacts.
            log.error("an input raised %s; it is written tagged %s (logged once per kind)",
                      kind, ecs.TAG_INTERNAL_ERROR)
        log.debug("traceback of an input that raised", exc_info=exc)
        try:
            if isinstance(item, bytes):
                text = item[:self.max_line].decode("utf-8", "replace")
            elif isinstance(item, str):
                text = item[:self.max_line]
            else:
                text = cut(repr(item), self.max_line)
            text.encode("utf-8")
        except Exception:
            text = ""
        event = self.failure(text, f"internal error: {kind}", now)
        event.tag(ecs.TAG_INTERNAL_ERROR)
        return event

    def from_text(self, text: str, now: str) -> Output:
        try:
            decoded = decode_line(text, None, self.normalizer.local_time)
        except NotClavister as exc:
            return self.line_not_ours(text, str(exc), now)
        except Undecodable as exc:
            return self.failure(text, str(exc), now)
        return self.normalizer.normalize(decoded, now)

    def line_not_ours(self, text: str, why: str, now: str) -> Output:
        """A text line that is not Clavister's; a blank one is a counted drop
        (``dropped_by_rule.blank_line``), never a document."""
        if not text.strip(BLANKS):
            return DROP_BLANK
        return self.not_clavister({"message": text}, text, why, now)

    def from_record(self, record: dict, now: str, text: str | None, unwrap: bool = True,
                    shipper: str | None = None) -> Output:
        """The output of one record: its line's, or its split pairs', or a record that is
        not Clavister's; ``now``: when it was taken in; ``text``: the JSON text it came as, if
        it came as a line; ``shipper``: the shipper's time of it (``INVALID_TIME``: one that
        is not a time)."""
        line = None
        for key in self.source_keys:
            value = record.get(key)
            if isinstance(value, str):
                line = value
                break
        if unwrap and line is not None and len(line) <= self.max_line and json_line(line):
            # A JSON line a shipper carried as text (a file of JSON lines tailed without a
            # parser): the record it holds, as ``run`` reads that line.
            inner = self.json_record(line)
            if inner is not None and (
                    "id" in inner
                    or any(isinstance(inner.get(key), str) for key in self.source_keys)):
                return self.from_record(inner, now, line, False, shipper)
        stamp = shipper or now  # what a failure or a record not ours is stamped with
        if line is not None:
            if len(line) > self.max_line:
                cut = line[:self.max_line]
                result = self.from_source(record, cut, now, shipper)
                # A record that is not ours goes on unchanged, as it came.
                return result if type(result) is dict else self.truncated(result, cut, stamp)
            return self.from_source(record, line, now, shipper)
        if "id" in record:
            return self.split(record, now, text, shipper)
        why = "no Clavister line in the record"
        if self.non_clavister != "tag":
            return self.not_clavister(record, "", why, stamp)  # passed or dropped as is
        original = text if text is not None else self._json_encoder.encode(record).decode()
        return self.not_clavister(record, original, why, stamp)

    def split(self, record: dict, now: str, original: str | None,
              shipper: str | None = None) -> ecs.Event:
        """A record whose pairs a shipper already split into fields: values that are not
        text are read as their JSON text; the record's own keys give time, host and PRI."""
        p = record
        for value in record.values():
            if type(value) is not str:
                encode = self._json_encoder.encode
                p = {k: v if isinstance(v, str) else encode(v).decode()
                     for k, v in record.items() if v is not None}
                break
        if original is None and self.normalizer.keep_original:
            original = self._json_encoder.encode(record).decode()
        build = self.normalizer.record_builders(p.get("id"))
        time, bad_record, bad_shipper = lent_time(record, None, shipper)
        event = build(p, record_pri(record), time, None, record_host(record), original, now,
                      None)
        if bad_record is not None or bad_shipper:
            ecs.invalid_time(event, bad_record)
        return event

    def from_source(self, record: dict, line: str, now: str,
                    shipper: str | None = None) -> Output:
        """A record's raw line, with the record's time, host and PRI where the line has none
        (the shipper's time where neither has one)."""
        stamp = shipper or now
        try:
            decoded = decode_line(line, None, self.normalizer.local_time)
        except NotClavister as exc:
            return self.not_clavister(record, line, str(exc), stamp)
        except Undecodable as exc:
            return self.failure(line, str(exc), stamp)
        decoded.time, bad_record, bad_shipper = lent_time(record, decoded.time, shipper)
        if decoded.host is None:
            decoded.host = record_host(record)
        if decoded.pri is None:
            decoded.pri = record_pri(record)
        result = self.normalizer.normalize(decoded, now)
        if (bad_record is not None or bad_shipper) and type(result) is ecs.Event:
            ecs.invalid_time(result, bad_record)
        return result

    def failure(self, original: str, why: str, now: str) -> ecs.Event:
        return ecs.failure(why, ["clavister", ecs.TAG_PARSE_FAILURE], now, original)

    def not_clavister(self, record: dict, original: str, why: str, now: str) -> Output:
        if self.non_clavister == "pass":
            return record
        if self.non_clavister == "drop":
            return DROP
        return ecs.failure(why, [ecs.TAG_NOT_CLAVISTER], now, original, message=original,
                           clavister=False)


# Strings skipped whole, so a bracket inside one is not nesting. An unterminated string
# runs to the end: a failed match would be retried at every quote after it (quadratic).
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.S)


def too_deep(text: str, limit: int) -> bool:
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


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]
