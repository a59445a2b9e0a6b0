"""msgpack decoding that survives strings which are not UTF-8.

Fluent Bit packs raw bytes as msgpack ``str``. Such strings are decoded with U+FFFD
replacements on a slow pure-Python path, taken only by what needs it; control messages keep
them as bytes (the shared-key handshake digests the bytes sent).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec.msgpack import Ext

from ..msgpack_framing import MAX_DEPTH, FrameError

_decoder = msgspec.msgpack.Decoder()

DECODE_ERRORS = (UnicodeDecodeError, msgspec.DecodeError)


def bad_utf8(exc: Exception) -> bool:
    """Whether a decode failed only on a string that is not UTF-8.

    msgspec before 0.23 raises UnicodeDecodeError; from 0.23 on, a DecodeError that says so.
    """
    return isinstance(exc, UnicodeDecodeError) or "UTF-8" in str(exc)


def decode_lenient(data: bytes | memoryview, reader: type | None = None) -> Any:
    """msgspec decode; strings that are not UTF-8 take a slow path with U+FFFD replacements
    (or as ``reader``, a :class:`_LenientReader`, reads them)."""
    try:
        return _decoder.decode(data)
    except DECODE_ERRORS as exc:
        if not bad_utf8(exc):
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
        if depth > MAX_DEPTH:
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
    return decode_lenient(data, _RawStringReader)
