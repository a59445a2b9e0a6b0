"""Fluent Forward protocol v1: frame boundaries, frame decoding, acks and the shared-key handshake.

Everything here is synchronous and free of I/O so it can be tested byte by byte.

- :class:`FrameSplitter` finds frame boundaries in a TCP byte stream. msgspec has no
  streaming unpacker, so a small msgpack length-walker marks where a frame ends. It is
  resumable (no rescanning when a frame arrives in pieces) and skips ``str``/``bin`` payloads
  by their length header, so a PackedForward frame costs a handful of steps whatever its size.
- :func:`decode_frame` turns one complete frame into a :class:`Frame` (``None`` for a
  heartbeat). Message, Forward, PackedForward and CompressedPackedForward are accepted; packed
  entries may be msgpack ``bin`` or ``str`` holding binary (Fluentd writes ``str32``), and are
  read as raw bytes.
- Event times are kept as received: EventTime as :class:`msgspec.msgpack.Ext` (code 0, 8
  bytes: uint32 BE seconds, uint32 BE nanoseconds), or int, or float, so they can be
  re-emitted unchanged.
- Record strings that are not valid UTF-8 (Fluent Bit packs raw bytes as ``str``) are decoded
  with U+FFFD replacements on a slow pure-Python path, taken only by the packed entries that
  need it (by the whole frame in Message and Forward mode).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import sys
import time
import zlib
from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec.msgpack import Ext

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED",
    "DEFAULT_MAX_FRAME",
    "EVENT_TIME_CODE",
    "Frame",
    "FrameError",
    "FrameSplitter",
    "HandshakeError",
    "Ping",
    "count_objects",
    "decode_ack",
    "decode_frame",
    "decode_message",
    "encode_ack",
    "encode_helo",
    "encode_packed_forward",
    "encode_ping",
    "encode_pong",
    "event_time",
    "event_time_ns",
    "handshake_digest",
    "pack_entries",
    "pack_payloads",
    "parse_helo",
    "parse_ping",
    "parse_pong",
]

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024
# Below Fluent Bit in_forward's default Buffer_Max_Size (6,144,000 bytes), tag and options
# included.
DEFAULT_UPSTREAM_MAX_FRAME = 4 * 1024 * 1024
EVENT_TIME_CODE = 0
_MAX_DEPTH = 64

_decoder = msgspec.msgpack.Decoder()
_encoder = msgspec.msgpack.Encoder()


class FrameError(ValueError):
    """The peer sent bytes that are not a valid forward frame: the connection must be closed."""


class HandshakeError(ValueError):
    """The shared-key handshake failed: a malformed message or a refused key."""


# --------------------------------------------------------------------------------------------
# Frame boundaries


def _fixed_sizes() -> tuple[int, ...]:
    """Total size of every msgpack object whose size is known from its first byte (0 if not)."""
    sizes = [0] * 256
    for b in range(0x00, 0x80):  # positive fixint
        sizes[b] = 1
    for b in range(0xE0, 0x100):  # negative fixint
        sizes[b] = 1
    for b in range(0xA0, 0xC0):  # fixstr: header + payload
        sizes[b] = 1 + (b & 0x1F)
    # fmt: off
    for b, size in {
        0xC0: 1, 0xC2: 1, 0xC3: 1,  # nil, false, true
        0xCA: 5, 0xCB: 9,  # float32, float64
        0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9,  # uint8..64
        0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9,  # int8..64
        0xD4: 3, 0xD5: 4, 0xD6: 6, 0xD7: 10, 0xD8: 18,  # fixext1..16
    }.items():
        sizes[b] = size
    # fmt: on
    return tuple(sizes)


_FIXED = _fixed_sizes()
# fmt: off
# first byte -> (length-field bytes, extra bytes after the length field: the ext type)
_VARIABLE = {
    0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0),  # bin8/16/32
    0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0),  # str8/16/32
    0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),  # ext8/16/32
}
# first byte -> (count-field bytes, items per count)
_CONTAINERS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}
# fmt: on
_FRAME_STARTS = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD, 0xC0}
_ANY_START = frozenset(range(256)) - {0xC1}


class FrameSplitter:
    """Cut a forward byte stream into complete msgpack frames.

    :param max_frame: largest frame accepted, in bytes; a larger one raises :class:`FrameError`
        as soon as its size is known, before it is buffered.
    :param replies: accept any msgpack object, as a client reading acks (maps) does; by default
        a frame must be an array or nil, so that text or other garbage fails at once.

    ``feed(data)`` returns the frames completed by ``data`` (``bytes``, in order). After a
    :class:`FrameError` the splitter is unusable, as is the connection it reads.
    """

    __slots__ = ("_buf", "_pos", "_stack", "_end", "_parts", "_parts_len", "_starts", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, *, replies: bool = False) -> None:
        self.max_frame = max_frame
        self._starts = _ANY_START if replies else _FRAME_STARTS
        self._buf = bytearray()
        self._pos = 0  # next byte the walker looks at, relative to the current frame's start
        self._stack: list[int] = []  # items still to walk in each open container
        self._end = -1  # end of the current frame once walked (the buffer may still lack bytes)
        self._parts: list[bytes] = []  # pieces of a frame whose end is known, not yet joined
        self._parts_len = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) + self._parts_len

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data`` and return every frame now complete."""
        frames: list[bytes] = []
        buf = self._buf
        end = self._end
        if end > len(buf) + len(data) + self._parts_len:
            # the end of a large frame is known: keep the pieces and join them once it is
            # complete, since growing a bytearray piece by piece copies the frame many times
            self._parts.append(data)
            self._parts_len += len(data)
            return frames
        if self._parts_len:
            self._parts.append(data)
            joined = b"".join((buf, *self._parts))
            self._parts.clear()
            self._parts_len = 0
            self._pos, self._end = 0, -1
            if len(joined) == end:
                buf.clear()
                frames.append(joined)
                return frames
            with memoryview(joined) as view:
                frames.append(bytes(view[:end]))
                self._buf = buf = bytearray(view[end:])
        else:
            buf += data
        while buf:
            if self._end < 0:
                if self._pos == 0 and buf[0] not in self._starts:
                    raise FrameError(f"not a forward frame (first byte 0x{buf[0]:02x})")
                self._pos, done = walk(buf, self._pos, self._stack, self.max_frame)
                if done:
                    if self._pos > self.max_frame:
                        raise FrameError(f"frame larger than {self.max_frame} bytes")
                    self._end = self._pos
            end = self._end
            if end < 0 or end > len(buf):
                if self._pos > self.max_frame:
                    raise FrameError(f"frame larger than {self.max_frame} bytes")
                break
            if end == len(buf):
                frames.append(bytes(buf))
                buf.clear()
            else:
                with memoryview(buf) as view:
                    frames.append(bytes(view[:end]))
                del buf[:end]
            self._pos, self._end = 0, -1
        return frames


def walk(
    buf: bytes | bytearray | memoryview, pos: int, stack: list[int], limit: int
) -> tuple[int, bool]:
    """Walk msgpack objects from ``pos`` until ``stack`` empties or ``buf`` runs out.

    ``stack`` holds the items still to walk in each open container and is updated in place;
    an empty stack means "one object". Returns ``(next position, object complete)``; the next
    position may lie beyond ``buf`` when a str/bin payload is still to come.
    """
    fixed = _FIXED
    n = len(buf)
    while pos < n:
        b = buf[pos]
        size = fixed[b]
        if size:
            pos += size
        elif b == 0xD9:  # str8 and str16: the usual log line
            if pos + 2 > n:
                break
            pos += 2 + buf[pos + 1]
        elif b == 0xDA:  # str16
            if pos + 3 > n:
                break
            pos += 3 + (buf[pos + 1] << 8 | buf[pos + 2])
        elif 0x80 <= b <= 0x9F:  # fixmap, fixarray
            count = (b & 0x0F) * 2 if b < 0x90 else b & 0x0F
            pos += 1
            if count:
                if len(stack) >= _MAX_DEPTH:
                    raise FrameError("msgpack nesting too deep")
                stack.append(count)
                continue
        elif b in _VARIABLE:
            width, extra = _VARIABLE[b]
            if pos + 1 + width > n:
                break
            pos += 1 + width + extra + int.from_bytes(buf[pos + 1 : pos + 1 + width], "big")
            if pos > limit:
                raise FrameError(f"frame larger than {limit} bytes")
        elif b in _CONTAINERS:
            width, per = _CONTAINERS[b]
            if pos + 1 + width > n:
                break
            count = int.from_bytes(buf[pos + 1 : pos + 1 + width], "big") * per
            pos += 1 + width
            if count:
                if len(stack) >= _MAX_DEPTH:
                    raise FrameError("msgpack nesting too deep")
                stack.append(count)
                continue
        else:
            raise FrameError(f"invalid msgpack byte 0x{b:02x}")
        # one object is complete: close every container it completes
        while stack:
            left = stack[-1] - 1
            if left:
                stack[-1] = left
                break
            stack.pop()
        if not stack:
            return pos, True
    return pos, False


def count_objects(buf: bytes | memoryview) -> int:
    """Count the consecutive msgpack objects filling ``buf``; raises :class:`FrameError`."""
    n = len(buf)
    if n == 0:
        return 0
    total = n + 1  # more objects than bytes cannot be: the count never runs out
    stack = [total]
    pos, _ = walk(buf, 0, stack, sys.maxsize)
    if pos != n or len(stack) != 1:
        raise FrameError("truncated msgpack data")
    return total - stack[0]


# --------------------------------------------------------------------------------------------
# Frames


class Frame:
    """One decoded forward frame.

    :ivar tag: the frame's tag.
    :ivar times: event times as received (``Ext(0, 8 bytes)``, int or float), aligned with
        ``records``; Fluent Bit's ``[time, metadata]`` pairs are reduced to the time.
    :ivar records: the records (dicts).
    :ivar chunk: the ``chunk`` option exactly as received, or None when no ack is wanted.
    :ivar mode: ``"message"``, ``"forward"``, ``"packed"`` or ``"compressed"``.
    :ivar invalid: entries skipped because they were not ``[time, map]``.
    """

    __slots__ = ("tag", "times", "records", "chunk", "mode", "invalid")

    def __init__(
        self,
        tag: str,
        times: list[Any],
        records: list[dict],
        chunk: Any = None,
        mode: str = "forward",
        invalid: int = 0,
    ) -> None:
        self.tag = tag
        self.times = times
        self.records = records
        self.chunk = chunk
        self.mode = mode
        self.invalid = invalid

    def __repr__(self) -> str:
        return (
            f"Frame(tag={self.tag!r}, mode={self.mode!r}, events={len(self.records)}, "
            f"chunk={self.chunk!r}, invalid={self.invalid})"
        )


_DECODE_ERRORS = (UnicodeDecodeError, msgspec.DecodeError)


def _bad_utf8(exc: Exception) -> bool:
    """Whether a decode failed only on a string that is not UTF-8.

    msgspec before 0.23 raises UnicodeDecodeError; from 0.23 on, a DecodeError that says so.
    """
    return isinstance(exc, UnicodeDecodeError) or "UTF-8" in str(exc)


def decode_frame(
    frame: bytes | memoryview, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED
) -> Frame | None:
    """Decode one complete frame; return None for a heartbeat (nil).

    :param frame: exactly one msgpack object, as cut by :class:`FrameSplitter`.
    :param max_decompressed: largest gzip-decompressed payload accepted, in bytes.
    :raises FrameError: the frame is not a valid forward frame.
    """
    try:
        items = _decoder.decode(frame)
    except _DECODE_ERRORS as exc:
        if not _bad_utf8(exc):
            raise FrameError(f"malformed msgpack: {exc}") from None
        # packed entries sent as str (Fluentd's str32) or a record string that is not UTF-8
        return _decode_raw_frame(memoryview(frame), max_decompressed)
    return _frame_from_items(items, max_decompressed)


def _frame_from_items(items: Any, max_decompressed: int) -> Frame | None:
    if items is None:
        return None
    if type(items) is not list or not 2 <= len(items) <= 4:
        raise FrameError("a forward frame is an array of 2 to 4 items")
    tag = items[0]
    if type(tag) is not str:
        raise FrameError("frame tag is not a string")
    entries = items[1]
    kind = type(entries)
    if kind is bytes or kind is str:
        if len(items) > 3:
            raise FrameError("PackedForward frame with 4 items")
        payload = entries if kind is bytes else entries.encode()
        return _decode_packed(tag, payload, items[2] if len(items) == 3 else None, max_decompressed)
    if kind is list:
        if len(items) > 3:
            raise FrameError("Forward frame with 4 items")
        option = _option(items[2] if len(items) == 3 else None)
        times, records, invalid = _split_entries(entries)
        return Frame(tag, times, records, option.get("chunk"), "forward", invalid)
    if len(items) < 3:
        raise FrameError("Message frame without a record")
    option = _option(items[3] if len(items) == 4 else None)
    times, records, invalid = _split_entries([items[1:3]])
    return Frame(tag, times, records, option.get("chunk"), "message", invalid)


def _decode_raw_frame(view: memoryview, max_decompressed: int) -> Frame | None:
    """The slow path: slice packed entries as raw bytes, or decode strings leniently."""
    count, pos = _array_header(view, 0)
    if not 2 <= count <= 4:
        raise FrameError("a forward frame is an array of 2 to 4 items")
    tag, pos = _read_raw(view, pos, "tag")
    if pos < len(view) and view[pos] in _RAW_HEADERS:
        if count > 3:
            raise FrameError("PackedForward frame with 4 items")
        payload, pos = _read_raw(view, pos, "entries")
        option = _decode_lenient(view[pos:]) if count == 3 else None
        return _decode_packed(_text(tag), payload, option, max_decompressed)
    return _frame_from_items(_decode_lenient(view), max_decompressed)


# first byte of a str or bin -> length-field bytes (0: fixstr)
# fmt: off
_RAW_HEADERS = {
    0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4,
    **{b: 0 for b in range(0xA0, 0xC0)},
}
# fmt: on


def _array_header(view: memoryview, pos: int) -> tuple[int, int]:
    b = view[pos]
    if 0x90 <= b <= 0x9F:
        return b & 0x0F, pos + 1
    if b in (0xDC, 0xDD):
        width = 2 if b == 0xDC else 4
        if pos + 1 + width > len(view):
            raise FrameError("truncated frame")
        return int.from_bytes(view[pos + 1 : pos + 1 + width], "big"), pos + 1 + width
    raise FrameError(f"not a forward frame (first byte 0x{b:02x})")


def _read_raw(view: memoryview, pos: int, what: str) -> tuple[memoryview, int]:
    """Slice a msgpack str or bin payload without decoding it."""
    if pos >= len(view) or view[pos] not in _RAW_HEADERS:
        raise FrameError(f"frame {what} is not a string")
    b = view[pos]
    width = _RAW_HEADERS[b]
    if width:
        length = int.from_bytes(view[pos + 1 : pos + 1 + width], "big")
        start = pos + 1 + width
    else:
        length, start = b & 0x1F, pos + 1
    end = start + length
    if end > len(view):
        raise FrameError(f"truncated frame {what}")
    return view[start:end], end


def _text(raw: memoryview) -> str:
    return str(raw, "utf-8", "replace")


def _decode_packed(
    tag: str, payload: bytes | memoryview, option: Any, max_decompressed: int
) -> Frame:
    option = _option(option)
    mode = "packed"
    compressed = option.get("compressed")
    if compressed == "gzip":
        payload, mode = _gunzip(payload, max_decompressed), "compressed"
    elif compressed not in (None, "text"):
        raise FrameError(f"unsupported compression {compressed!r}")
    size = option.get("size")
    entries = _decode_entries(payload, size if type(size) is int else None)
    times, records, invalid = _split_entries(entries)
    return Frame(tag, times, records, option.get("chunk"), mode, invalid)


def _option(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FrameError("frame option is not a map")
    return value


def _gunzip(data: bytes | memoryview, limit: int) -> bytes:
    """Decompress one or more concatenated gzip members, at most ``limit`` bytes out."""
    parts = []
    total = 0
    data = bytes(data)
    while data:
        inflater = zlib.decompressobj(wbits=31)
        try:
            part = inflater.decompress(data, limit - total + 1)
        except zlib.error as exc:
            raise FrameError(f"bad gzip data: {exc}") from None
        total += len(part)
        if total > limit:
            raise FrameError(f"decompressed entries larger than {limit} bytes")
        if not inflater.eof:
            raise FrameError("truncated gzip data")
        parts.append(part)
        data = inflater.unused_data
    return b"".join(parts)


def array_prefix(count: int) -> bytes:
    """The msgpack array header for ``count`` items."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def _decode_entries(payload: bytes | memoryview, size_hint: int | None) -> list:
    """Decode concatenated ``[time, record]`` entries.

    msgspec decodes one object per call, so the entries are wrapped in an array header. The
    ``size`` option gives the count (both Fluent Bit and Fluentd send it) and msgspec checks it
    exactly: too many is "truncated", too few is "trailing". Without it, the walker counts.
    """
    if not payload:
        return []
    if size_hint is not None and size_hint > 0:
        try:
            return _decoder.decode(array_prefix(size_hint) + payload)
        except _DECODE_ERRORS:
            pass
    try:
        return _decoder.decode(array_prefix(count_objects(payload)) + payload)
    except _DECODE_ERRORS as exc:
        if not _bad_utf8(exc):
            raise FrameError(f"malformed packed entries: {exc}") from None
        return _decode_entries_one_by_one(memoryview(payload))


def _decode_entries_one_by_one(view: memoryview) -> list:
    """Decode entry by entry so that only the entries holding bad UTF-8 take the slow path."""
    entries = []
    pos = 0
    n = len(view)
    while pos < n:
        end, done = walk(view, pos, [], sys.maxsize)
        if not done or end > n:
            raise FrameError("truncated packed entries")
        entries.append(_decode_lenient(view[pos:end]))
        pos = end
    return entries


def _split_entries(entries: list) -> tuple[list, list, int]:
    """Split ``[[time, record], ...]`` into aligned times and records; count bad entries."""
    times = []
    records = []
    invalid = 0
    for entry in entries:
        if type(entry) is list and len(entry) == 2 and type(entry[1]) is dict:
            time = entry[0]
            if type(time) is list:  # Fluent Bit: [[EventTime, {metadata}], record]
                time = time[0] if time else None
            times.append(time)
            records.append(entry[1])
        else:
            invalid += 1
    return times, records, invalid


def _decode_lenient(data: bytes | memoryview, reader: type | None = None) -> Any:
    """msgspec decode; strings that are not UTF-8 take a slow path with U+FFFD replacements
    (or as ``reader``, a :class:`_LenientReader`, reads them)."""
    try:
        return _decoder.decode(data)
    except _DECODE_ERRORS as exc:
        if not _bad_utf8(exc):
            raise FrameError(f"malformed msgpack: {exc}") from None
    try:
        value, end = (reader or _LenientReader)(memoryview(data)).read(0)
    except (IndexError, ValueError) as exc:
        raise FrameError(f"malformed msgpack: {exc}") from None
    if end != len(data):
        raise FrameError("malformed msgpack: trailing characters")
    return value


class _LenientReader:
    """A small pure-Python msgpack decoder whose ``str`` decoding replaces invalid bytes."""

    __slots__ = ("view",)

    def __init__(self, view: memoryview) -> None:
        self.view = view

    def _uint(self, pos: int, width: int) -> int:
        end = pos + width
        if end > len(self.view):
            raise ValueError("truncated")
        return int.from_bytes(self.view[pos:end], "big")

    def _bytes(self, pos: int, length: int) -> bytes:
        end = pos + length
        if end > len(self.view):
            raise ValueError("truncated")
        return bytes(self.view[pos:end])

    def read(self, pos: int, depth: int = 0) -> tuple[Any, int]:
        if depth > _MAX_DEPTH:
            raise ValueError("nesting too deep")
        b = self.view[pos]
        pos += 1
        if b <= 0x7F:
            return b, pos
        if b >= 0xE0:
            return b - 0x100, pos
        if b <= 0x8F:
            return self._map(pos, b & 0x0F, depth)
        if b <= 0x9F:
            return self._array(pos, b & 0x0F, depth)
        if b <= 0xBF:
            return self._str(pos, b & 0x1F)
        if b == 0xC0:
            return None, pos
        if b in (0xC2, 0xC3):
            return b == 0xC3, pos
        if b in (0xC4, 0xC5, 0xC6):
            width = 1 << (b - 0xC4)
            length = self._uint(pos, width)
            return self._bytes(pos + width, length), pos + width + length
        if b in (0xC7, 0xC8, 0xC9):
            width = 1 << (b - 0xC7)
            length = self._uint(pos, width)
            return self._ext(pos + width, length)
        if b in (0xCA, 0xCB):
            raw = self._bytes(pos, 4 if b == 0xCA else 8)
            return _decoder.decode(bytes((b,)) + raw), pos + len(raw)
        if 0xCC <= b <= 0xCF:
            width = 1 << (b - 0xCC)
            return self._uint(pos, width), pos + width
        if 0xD0 <= b <= 0xD3:
            width = 1 << (b - 0xD0)
            raw = self._bytes(pos, width)
            return int.from_bytes(raw, "big", signed=True), pos + width
        if 0xD4 <= b <= 0xD8:
            return self._ext(pos, 1 << (b - 0xD4))
        if b in (0xD9, 0xDA, 0xDB):
            width = 1 << (b - 0xD9)
            return self._str(pos + width, self._uint(pos, width))
        if b in (0xDC, 0xDD):
            width = 2 if b == 0xDC else 4
            return self._array(pos + width, self._uint(pos, width), depth)
        if b in (0xDE, 0xDF):
            width = 2 if b == 0xDE else 4
            return self._map(pos + width, self._uint(pos, width), depth)
        raise ValueError(f"invalid byte 0x{b:02x}")

    def _str(self, pos: int, length: int) -> tuple[str, int]:
        return str(self._bytes(pos, length), "utf-8", "replace"), pos + length

    def _ext(self, pos: int, length: int) -> tuple[Any, int]:
        code = int.from_bytes(self._bytes(pos, 1), "big", signed=True)
        data = self._bytes(pos + 1, length)
        if code == -1:  # msgpack timestamp: let msgspec build the datetime
            header = {4: b"\xd6", 8: b"\xd7", 12: b"\xc7\x0c"}.get(length, b"")
            return _decoder.decode(header + b"\xff" + data), pos + 1 + length
        return Ext(code, data), pos + 1 + length

    def _array(self, pos: int, count: int, depth: int) -> tuple[list, int]:
        items = []
        for _ in range(count):
            item, pos = self.read(pos, depth + 1)
            items.append(item)
        return items, pos

    def _map(self, pos: int, count: int, depth: int) -> tuple[dict, int]:
        result = {}
        for _ in range(count):
            key, pos = self.read(pos, depth + 1)
            value, pos = self.read(pos, depth + 1)
            result[key] = value
        return result, pos


class _RawStringReader(_LenientReader):
    """A :class:`_LenientReader` that keeps a ``str`` that is not UTF-8 as its bytes."""

    __slots__ = ()

    def _str(self, pos: int, length: int) -> tuple[str | bytes, int]:
        raw = self._bytes(pos, length)
        try:
            return raw.decode(), pos + length
        except UnicodeDecodeError:
            return raw, pos + length


def decode_message(data: bytes | memoryview) -> Any:
    """Decode a small control message (ack, HELO, PING, PONG); raises :class:`FrameError`.

    A string that is not UTF-8 comes back as its bytes: Fluent Bit sends its salt and nonce
    as 16 random bytes in a msgpack ``str``, and the handshake digest is over those bytes."""
    return _decode_lenient(data, _RawStringReader)


# --------------------------------------------------------------------------------------------
# Times, entries, acks


def event_time(seconds: int, nanoseconds: int = 0) -> Ext:
    """Build an EventTime (msgpack ext 0: uint32 BE seconds, uint32 BE nanoseconds)."""
    return Ext(EVENT_TIME_CODE, seconds.to_bytes(4, "big") + nanoseconds.to_bytes(4, "big"))


_SECONDS: dict[int, str] = {}
_FIRST_SECOND = -62135596800  # 0001-01-01T00:00:00Z
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z


def event_time_iso(value: Any) -> str | None:
    """An event time as received, as RFC 3339 UTC text to the millisecond; None if not a
    time (or out of range)."""
    ns = event_time_ns(value)
    if ns is None:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    if not _FIRST_SECOND <= seconds <= _LAST_SECOND:
        return None  # a date an index refuses: the year must be 0001-9999
    prefix = _SECONDS.get(seconds)
    if prefix is None:
        try:
            t = time.gmtime(seconds)
        except (OverflowError, OSError, ValueError):
            return None
        # (strftime's %Y writes year 1 as "1", not "0001")
        prefix = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
                  f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}")
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        _SECONDS[seconds] = prefix
    return f"{prefix}.{rest // 1_000_000:03d}Z"


def event_time_ns(value: Any) -> int | None:
    """Nanoseconds since the epoch of an event time as received; None if not a time."""
    if type(value) is Ext:
        data = value.data
        if value.code == EVENT_TIME_CODE and len(data) == 8:
            return int.from_bytes(data[:4], "big") * 1_000_000_000 + int.from_bytes(data[4:], "big")
        return None
    if type(value) is int:
        return value * 1_000_000_000
    if type(value) is float:
        if not math.isfinite(value) or abs(value) > _MAX_SECONDS:
            return None  # round() of infinity or NaN raises
        return round(value * 1_000_000_000)
    return None


_MAX_SECONDS = 1e13  # past the year 300,000: no event time


def pack_entries(times: Sequence[Any], records: Sequence[Any]) -> tuple[bytes, int]:
    """Concatenate ``[time, record]`` entries for a PackedForward payload, skipping None records.

    :return: ``(payload, number of entries)``.
    """
    entries = [(t, r) for t, r in zip(times, records, strict=True) if r is not None]
    if not entries:
        return b"", 0
    # msgspec encodes the whole list in C; the array header is cut off afterwards
    encoded = _encoder.encode(entries)
    return encoded[len(array_prefix(len(entries))) :], len(entries)


def pack_payloads(times: Sequence[Any], records: Sequence[Any], limit: int
                  ) -> list[tuple[bytes, int]]:
    """:func:`pack_entries`, cut into payloads of at most ``limit`` bytes each (an entry
    larger than that goes alone), in order: a receiver refuses a frame over its buffer.

    :return: ``(payload, number of entries)`` of each; none when every record is None.
    """
    payload, count = pack_entries(times, records)
    if not count:
        return []
    if len(payload) <= limit or count == 1:
        return [(payload, count)]
    kept = [(t, r) for t, r in zip(times, records, strict=True) if r is not None]
    parts = min(count, -(-len(payload) * 5 // (limit * 4)))  # aim a fifth under the limit
    step = -(-count // parts)
    out: list[tuple[bytes, int]] = []
    for start in range(0, count, step):
        part = kept[start:start + step]
        out += pack_payloads([t for t, _ in part], [r for _, r in part], limit)
    return out


def encode_packed_forward(tag: str, payload: bytes, chunk: str, size: int) -> bytes:
    """Encode ``[tag, bin(payload), {"chunk": chunk, "size": size}]``."""
    return _encoder.encode((tag, payload, {"chunk": chunk, "size": size}))


def encode_ack(chunk: Any) -> bytes:
    """Encode ``{"ack": chunk}`` with the chunk echoed exactly as it was received."""
    return _encoder.encode({"ack": chunk})


def decode_ack(data: bytes) -> Any:
    """Return the chunk of an ack message; raises :class:`FrameError` if it is not one."""
    message = decode_message(data)
    if not isinstance(message, dict) or "ack" not in message:
        raise FrameError("not an ack")
    return message["ack"]


# --------------------------------------------------------------------------------------------
# Shared-key handshake


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def handshake_digest(
    salt: str | bytes, hostname: str | bytes, nonce: str | bytes, shared_key: str | bytes
) -> str:
    """``sha512_hex(salt + hostname + nonce + shared_key)`` as the handshake specifies."""
    digest = hashlib.sha512()
    for part in (salt, hostname, nonce, shared_key):
        digest.update(_as_bytes(part))
    return digest.hexdigest()


def encode_helo(nonce: bytes, auth: bytes = b"", keepalive: bool = True) -> bytes:
    """Encode ``["HELO", {nonce, auth, keepalive}]``."""
    return _encoder.encode(["HELO", {"nonce": nonce, "auth": auth, "keepalive": keepalive}])


def parse_helo(message: Any) -> tuple[bytes, bytes, bool]:
    """Return ``(nonce, auth, keepalive)`` of a decoded HELO message."""
    if not (
        isinstance(message, list)
        and len(message) == 2
        and message[0] == "HELO"
        and isinstance(message[1], dict)
    ):
        raise HandshakeError("expected HELO")
    options = message[1]
    nonce = options.get("nonce")
    if not isinstance(nonce, (str, bytes)):
        raise HandshakeError("HELO without nonce")
    auth = options.get("auth") or b""
    return _as_bytes(nonce), _as_bytes(auth), bool(options.get("keepalive", True))


def encode_ping(
    hostname: str,
    salt: str | bytes,
    nonce: bytes,
    shared_key: str | bytes,
    username: str = "",
    password: str = "",
    auth: bytes = b"",
) -> bytes:
    """Encode ``["PING", host, salt, digest, user, password_digest]``."""
    password_digest = ""
    if auth:
        password_digest = hashlib.sha512(
            auth + _as_bytes(username) + _as_bytes(password)
        ).hexdigest()
    digest = handshake_digest(salt, hostname, nonce, shared_key)
    return _encoder.encode(["PING", hostname, salt, digest, username, password_digest])


class Ping:
    """A decoded PING: ``hostname``, ``salt``, ``digest``, ``username``, ``password_digest``."""

    __slots__ = ("hostname", "salt", "digest", "username", "password_digest")

    def __init__(
        self,
        hostname: str | bytes,
        salt: str | bytes,
        digest: str | bytes,
        username: str | bytes = "",
        password_digest: str | bytes = "",
    ) -> None:
        self.hostname = hostname
        self.salt = salt
        self.digest = digest
        self.username = username
        self.password_digest = password_digest

    def verify(self, nonce: bytes, shared_key: str | bytes) -> bool:
        """True when the digest proves the client knows ``shared_key``."""
        expected = handshake_digest(self.salt, self.hostname, nonce, shared_key)
        return hmac.compare_digest(_as_bytes(self.digest), expected.encode())  # constant time


def parse_ping(message: Any) -> Ping:
    """Return the :class:`Ping` of a decoded PING message."""
    if not (
        isinstance(message, list)
        and len(message) in (4, 6)
        and message[0] == "PING"
        and all(isinstance(v, (str, bytes)) for v in message[1:])
    ):
        raise HandshakeError("expected PING")
    return Ping(*message[1:])


def encode_pong(
    ok: bool,
    reason: str,
    server_hostname: str,
    salt: str | bytes,
    nonce: bytes,
    shared_key: str | bytes,
) -> bytes:
    """Encode ``["PONG", ok, reason, server_hostname, digest]`` (digest empty when not ok)."""
    digest = handshake_digest(salt, server_hostname, nonce, shared_key) if ok else ""
    return _encoder.encode(["PONG", ok, reason, server_hostname, digest])


def parse_pong(
    message: Any, salt: str | bytes, nonce: bytes, shared_key: str | bytes
) -> tuple[bool, str]:
    """Check a decoded PONG: ``(True, "")`` when accepted and the server's digest matches."""
    if not (isinstance(message, list) and len(message) == 5 and message[0] == "PONG"):
        raise HandshakeError("expected PONG")
    _, ok, reason, server_hostname, digest = message
    if not ok:
        return False, str(reason)
    expected = handshake_digest(salt, server_hostname, nonce, shared_key)
    if not isinstance(digest, (str, bytes)) or not hmac.compare_digest(
        _as_bytes(digest), expected.encode()
    ):
        return False, "server digest mismatch"
    return True, ""
