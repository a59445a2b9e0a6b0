"""The batch fast path: a whole batch decoded by C-level primitives, then one builder per message.

One regex pass over the batch text finds every line's header. The ``name=value`` pairs of
all the bodies are rewritten into one JSON array that msgspec decodes, typed, into
per-message Structs (a union tagged on ``id``) in a single call; a record whose pairs a
shipper already split is decoded the same way. Each Struct's ``build`` then makes the event
(:mod:`ikefilter.builders`: one builder per message, generated from its catalog entry).

Whatever this path could get wrong it refuses, and the line takes the exact per-line path
(:func:`~ikefilter.wire.decode_line` and :meth:`~ikefilter.normalize.Normalizer.normalize`):
an escape other than ``\\"`` and ``\\\\`` in quotes, a bracket, non-ASCII text, an unknown
ID or parameter, a value msgspec does not read as its type, a non-canonical address or SPI,
a time that is not a real one. Where msgspec reads a value, the exact path reads it the same
way. The two paths write the same bytes: ``tests/test_fastlane.py``
checks it over the generated corpus and over generated hostile values.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import NamedTuple

import msgspec

from . import ecs
from .builders import HOST_ATTRS, TIME_ATTRS, Refused, message_structs, takes
from .normalize import Normalizer
from .record import RECORD_META, pri_of, record_host, record_pri, record_time
from .wire import HEADER_PATTERN, header_fields, utc_iso

# One match per line, always: the header and the rest of the line, or the line unmatched
# (``cats`` empty).
_LINES = re.compile(rf"^(?:{HEADER_PATTERN}(?P<body>.*)|.*)$", re.X | re.M)
_CATS, _BODY = 9, 10

# What a failed decode says (msgspec's messages), and each item's ID, to set aside the items
# that fail. A wrong reading costs speed, never correctness: the decode has the last word.
_BAD_TAG = re.compile(r"^Invalid value '.*' - at `\$\[\d+\]\.id`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.+)` - at `\$\[\d+\]`$")
_ERROR_AT = re.compile(r" - at `\$\[(\d+)\]")
_BODY_IDS = re.compile(r"id=(?:(?<=^id=)|(?<=[ \n]id=))0*([0-9]+)", re.M)
_RECORD_IDS = re.compile(r'"id":"0*([0-9]+)"')
_FEW = 64  # fewer items than this say little about the stream
_ENDS_WITH_EQUALS = operator.methodcaller("endswith", b"=")
_NOT_AFTER_CLOSE = re.compile(b"\0[^ \n\0]")
# An ID with leading zeros names the same message: the tag is the canonical number.
_ID_ZEROS = re.compile(rb'"id":"0+(?=[0-9])')
_ID_ZEROS_TEXT = re.compile(r'"id":"0+(?=[0-9])')
_PADDED_BODY_ID = re.compile(r"(?:^|(?<=[ \n]))id=0+[0-9]", re.M)
_PADDED_RECORD_ID = re.compile(r'"id":"0+[0-9]')


class DecodedLines(NamedTuple):
    """A batch's lines after the decode stage, for :meth:`Lane.build_lines`."""

    index: Sequence[int]  # the lines taken, aligned with ``structs``
    structs: list  # the typed pairs of each (None: refused)
    found: list[tuple]  # every line's header groups and body


# -- the batch ----------------------------------------------------------------------------------


class Lane:
    """Built once per pipeline from its normalizer; used for every batch.

    :raises ValueError: when it could take no message of the catalog (see :func:`takes`).
    """

    def __init__(self, normalizer: Normalizer):
        dialect, keep = normalizer.severity_dialect, normalizer.keep_original
        line_types, record_types = [], []
        for msg in normalizer.messages.values():
            if takes(msg):
                lines, records = message_structs(msg, dialect, keep)
                line_types += lines
                record_types += records
        if not line_types:
            raise ValueError("the fast path takes no message of this catalog")
        # A union tagged on "id": one Struct per message.
        self._lines = msgspec.json.Decoder(list[functools.reduce(operator.or_, line_types)],
                                           strict=False)
        self._records = msgspec.json.Decoder(
            list[functools.reduce(operator.or_, record_types)], strict=False)
        self._known_ids = frozenset(str(msg.id) for msg in normalizer.messages.values()
                                    if takes(msg))
        self._other_ids = False  # the last batch was mostly IDs the catalog lacks
        self._padded_ids = False  # the last batch had IDs with leading zeros
        #: every key a record with split pairs may have
        self.record_keys = frozenset({"id", *RECORD_META}).union(
            *(t.__struct_encode_fields__ for t in record_types))

    # -- raw lines --------------------------------------------------------------------------

    def lines(self, texts: list[str], now: str, records: list[dict | None] | None = None,
              times: Sequence[str | None] | None = None) -> list[ecs.Event | None]:
        """Events for the lines this path takes, None for the others (aligned with ``texts``).

        :param records: the records the lines came from, for the time, host and PRI a line
            lacks (None: a record with nothing to lend); ``times``: the shipper's event time
            of each, used before ``now``.
        """
        return self.build_lines(self.decode_lines(texts), texts, now, records, times)

    def decode_lines(self, texts: list[str]) -> DecodedLines:
        """The decode stage of :meth:`lines`: headers and typed pairs, nothing built."""
        found = _LINES.findall("\n".join(texts))
        if not found or len(found) != len(texts):  # (a line that held a newline)
            return DecodedLines((), [], found)
        columns = list(zip(*found, strict=True))  # transposed in C: one tuple per group
        if "" in columns[_CATS]:
            index: Sequence[int] = [i for i, cats in enumerate(columns[_CATS]) if cats]
            if not index:
                return DecodedLines((), [], found)
            bodies: Sequence[str] = [found[i][_BODY] for i in index]
        else:
            index = range(len(found))
            bodies = columns[_BODY]
        joined = "\n".join(bodies)
        if self._other_ids:
            # The last batch was mostly messages the catalog lacks (a stream of every
            # category): set those aside before the decode rather than after it fails.
            ids = _BODY_IDS.findall(joined)
            if len(ids) == len(bodies):
                known = self._known_ids
                keep = [k for k, value in enumerate(ids) if value in known]
                self._other_ids = len(keep) * 2 < len(bodies)
                if len(keep) < len(bodies):
                    index = [index[k] for k in keep]
                    bodies = [bodies[k] for k in keep]
                    joined = "\n".join(bodies)
        if _simple(joined):
            return DecodedLines(index, self._decode(self._lines, bodies, _pairs_json, "\n",
                                                    joined), found)
        # Lines with escapes are decoded on their own: the rewrite of escapes costs passes
        # over all the text it is given.
        simple = [k for k, b in enumerate(bodies) if _simple(b)]
        escaped = [k for k, b in enumerate(bodies) if "\\" in b and _escapes_only(b)]
        structs = (self._decode(self._lines, [bodies[k] for k in simple], _pairs_json, "\n")
                   + self._decode(self._lines, [bodies[k] for k in escaped], _pairs_json, "\n"))
        return DecodedLines([index[k] for k in simple + escaped], structs, found)

    def build_lines(self, decoded: DecodedLines, texts: list[str], now: str,
                    records: list[dict | None] | None = None,
                    times: Sequence[str | None] | None = None) -> list[ecs.Event | None]:
        """The normalize stage of :meth:`lines`."""
        out: list[ecs.Event | None] = [None] * len(texts)
        found = decoded.found
        clock = datetime.now(timezone.utc)
        # PRI and time are read once per distinct pair (a batch holds few); the host, which
        # may differ on every line, is taken as header_fields takes it.
        headers: dict[tuple, tuple] = {}
        for i, p in zip(decoded.index, decoded.structs, strict=True):
            if p is None:
                continue
            g = found[i]
            key = (g[0], g[1], g[3], g[5], g[7])
            fields = headers.get(key)
            if fields is None:
                fields = headers[key] = header_fields(g, clock)
            pri, time, _, stamp = fields
            if stamp is not None and time is None:
                continue  # the exact path notes an invalid timestamp
            host = g[4] or g[6] or g[2] or None
            when = now
            if records is not None:
                record = records[i]
                if record is not None:
                    if time is None:
                        time = record_time(record)
                    if host is None:
                        host = record_host(record)
                    if pri is None:
                        pri = record_pri(record)
                if time is None and times is not None:
                    when = times[i] or now  # (read only where needed: it may be converted)
            try:
                out[i] = p.build(pri, time, g[_CATS].split(","), host, texts[i], when)
            except Refused:
                pass
        return out

    # -- records with their pairs already split -------------------------------------------------

    def split_records(self, texts: list[str], now: str) -> list[ecs.Event | None]:
        """Events for JSON records whose pairs a shipper split into keys (None: not taken)."""
        return self.build_records(self.decode_records(texts), texts, now)

    def decode_records(self, texts: list[str]) -> list:
        """The decode stage of :meth:`split_records`: a Struct per record, or None."""
        # Joined by a newline too, which no JSON string may hold: with every value a flat
        # Struct and every line starting "{", a line cut short cannot run on into the next.
        return self._decode(self._records, texts, _records_json, ",\n")

    def build_records(self, structs: list, texts: list[str], now: str
                      ) -> list[ecs.Event | None]:
        """The normalize stage of :meth:`split_records`."""
        out: list[ecs.Event | None] = [None] * len(texts)
        for i, p in enumerate(structs):
            if p is None:
                continue
            # The first key of each list that holds text, as ``record_time`` and
            # ``record_host`` take it; the usual one is tried first, inline.
            time = p.m_at_timestamp
            if type(time) is not str or not time:
                time = _first_str(p, TIME_ATTRS)
            host = p.m_host
            if type(host) is not str or not host:
                host = _first_str(p, HOST_ATTRS)
            pri = p.m_pri
            try:
                out[i] = p.build(None if pri is None else pri_of(pri),
                                 None if time is None else utc_iso(time), None, host,
                                 texts[i], now)
            except Refused:
                pass
        return out

    # -- decoding, with the odd item isolated -----------------------------------------------------

    def _decode(self, decoder, items: list[str], to_json: Callable[[str], str | bytes | None],
                sep: str, joined: str | None = None, retries: int = 4,
                pad: bool = True) -> list:
        """Decode ``items`` in one call: a Struct per item, None where the item is refused.

        ``to_json`` takes the items joined by ``sep``; ``joined``: that text, where the
        caller has it already. When the call fails, the error names what failed: the items
        it surely fails for are set aside at once (every ID not in the catalog, as a stream
        of other messages brings; every item with a newer firmware's parameter) and the
        rest is decoded again, a few times at most. What still fails is cut into
        sixteenths, down to single items, so that any mix of odd items costs a few passes
        over the batch, not one per odd item."""
        if not items:
            return []
        text = sep.join(items) if joined is None else joined
        data = to_json(text)
        error = None
        if data is not None:
            if self._padded_ids and data:
                # IDs with leading zeros name the same messages: the tags are the plain
                # numbers. (Looked for only while they come: a search costs a pass.)
                if type(data) is bytes:
                    data, count = _ID_ZEROS.subn(b'"id":"', data)
                else:
                    data, count = _ID_ZEROS_TEXT.subn('"id":"', data)
                if not count and len(items) >= _FEW:
                    self._padded_ids = False
            try:
                structs = decoder.decode(data)
            except msgspec.ValidationError as exc:
                error = str(exc)
            except (msgspec.DecodeError, RecursionError):
                pass
            else:
                if len(structs) == len(items):  # an item that is two never passes for one
                    return structs
        if (error is not None and retries and pad and not self._padded_ids
                and _BAD_TAG.search(error) is not None
                and (_PADDED_BODY_ID if sep == "\n" else _PADDED_RECORD_ID).search(text)):
            self._padded_ids = True  # again, with the zeros stripped
            return self._decode(decoder, items, to_json, sep, joined, retries - 1, pad=False)
        if len(items) == 1:
            return [None]
        out: list = [None] * len(items)
        if error is not None and retries:
            odd = self._failing(error, items, text, sep)
            if odd:
                keep = [k for k in range(len(items)) if k not in odd]
                for k, struct in zip(keep, self._decode(decoder, [items[k] for k in keep],
                                                        to_json, sep, retries=retries - 1),
                                     strict=True):
                    out[k] = struct
                return out
        step = -(-len(items) // 16)
        for start in range(0, len(items), step):
            out[start:start + step] = self._decode(decoder, items[start:start + step],
                                                   to_json, sep, retries=0)
        return out

    def _failing(self, error: str, items: list[str], text: str, sep: str) -> set[int]:
        """The items a decode error shows will fail (empty: it does not say)."""
        pairs = sep == "\n"  # name=value bodies, else JSON records
        if _BAD_TAG.search(error) is not None:
            ids = (_BODY_IDS if pairs else _RECORD_IDS).findall(text)
            if len(ids) == len(items):
                known = self._known_ids
                odd = {k for k, value in enumerate(ids) if value not in known}
                if pairs and len(odd) * 2 > len(items):
                    self._other_ids = True
                if odd:
                    return odd
        m = _UNKNOWN_FIELD.search(error)
        if m is not None:
            token = m[1] + "=" if pairs else f'"{m[1]}"'
            odd = {k for k, item in enumerate(items) if token in item}
            if odd:
                return odd
        m = _ERROR_AT.search(error)
        if m is not None and int(m[1]) < len(items):
            return {int(m[1])}
        return set()


def _first_str(p, attrs: tuple[str, ...]) -> str | None:
    for attr in attrs:
        value = getattr(p, attr)
        if type(value) is str and value:
            return value
    return None


def _simple(text: str) -> bool:
    """No bracket, no backslash, no character past ASCII: the exact path reads such text
    in ways a JSON rewrite does not (the ASCII test: it ends a bare value at any Unicode
    space)."""
    return not ("\\" in text or "[" in text or "]" in text) and text.isascii()


def _escapes_only(text: str) -> bool:
    """Simple but for ``\\"`` and ``\\\\``, which the rewrite takes inside quotes."""
    return _simple(text.replace("\\\\", "").replace('\\"', ""))


def _pairs_json(text: str) -> bytes | None:
    """The bodies' pairs as one JSON array of objects, or None when the quoting is not
    plain: each quote must open a value after ``=`` and close it before a space or the end
    of its line, and an escape (``\\"``, ``\\\\``, the same in JSON) must be inside quotes.
    A body this rewrites wrongly (a bare value with a space or an ``=``, odd spacing) makes
    invalid JSON or an unknown key, and so fails the decode.

    ``text``: the bodies, one per line, ASCII only. The work is on bytes, where each pass
    over the batch costs a third less than on text."""
    data = text.encode()
    escaped = b"\\" in data
    if b"\0" in data or escaped and (b"\1" in data or b"\2" in data):
        return None
    if escaped:
        data = data.replace(b"\\\\", b"\1").replace(b'\\"', b"\2")
    parts = data.split(b'"')
    if len(parts) == 1:
        if escaped:
            return None
        data = data.replace(b"=", b'":"').replace(b" ", b'","').replace(b"\n", b'"},{"')
        data = b'[{"' + data + b'"}]'
    else:
        if not len(parts) & 1:
            return None
        if b"\n" in b"".join(parts[1::2]):
            return None  # a line with an odd number of quotes
        # Every quote opens a value right after "=" and closes it before a space, the end
        # of its line or the end ('"x"="y"' and 'x="a"b' are not plain pairs).
        if not all(map(_ENDS_WITH_EQUALS, parts[:-1:2])):
            return None
        if _NOT_AFTER_CLOSE.search(b"\0" + b"\0".join(parts[2::2])) is not None:
            return None
        # The parts outside quotes, rewritten by three calls over all of them at once
        # (joined by a NUL, which a body never holds: see the check above).
        outside = b"\0".join(parts[::2])
        if escaped and (b"\1" in outside or b"\2" in outside):
            return None  # an escape in a bare value is data to the exact path
        outside = outside.replace(b"=", b'":"').replace(b" ", b'","').replace(b"\n", b'"},{"')
        parts[::2] = outside.split(b"\0")
        parts[0] = b'[{"' + parts[0]
        parts[-1] += b'"}]'
        data = b"".join(parts)
        if escaped:
            data = data.replace(b"\1", b"\\\\").replace(b"\2", b'\\"')
    return data


def _records_json(text: str) -> str:
    """JSON records joined by commas (and newlines), as one array."""
    return "[" + text + "]"

