"""Event times, packed entries and acks: what a forward hop sends and answers.

Event times are kept as received: EventTime as :class:`msgspec.msgpack.Ext` (code 0, 8
bytes: uint32 BE seconds, uint32 BE nanoseconds), or int, or float, so they can be
re-emitted unchanged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec.msgpack import Ext

from ..msgpack_framing import FrameError, concatenated
from .lenient import decode_message

# Below Fluent Bit in_forward's default Buffer_Max_Size (6,144,000 bytes), tag and options
# included.
DEFAULT_UPSTREAM_MAX_FRAME = 4 * 1024 * 1024
EVENT_TIME_CODE = 0

_encoder = msgspec.msgpack.Encoder()


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
    entries = _entries(times, records)
    return (concatenated(_encoder, entries) if entries else b""), len(entries)


def _entries(times: Sequence[Any], records: Sequence[Any]) -> list[tuple[Any, Any]]:
    return [(t, r) for t, r in zip(times, records, strict=True) if r is not None]


def pack_payloads(times: Sequence[Any], records: Sequence[Any], limit: int
                  ) -> list[tuple[bytes, int]]:
    """:func:`pack_entries`, cut into payloads of at most ``limit`` bytes each (an entry
    larger than that goes alone), in order: a receiver refuses a frame over its buffer.

    The entries are encoded together, in C; only a payload over the limit is cut, on entry
    boundaries, into as many parts as its size calls for, and those are encoded again.

    :return: ``(payload, number of entries)`` of each; none when every record is None.
    """
    out: list[tuple[bytes, int]] = []
    _pack(_entries(times, records), limit, out)
    return out


def _pack(entries: list[tuple[Any, Any]], limit: int, out: list[tuple[bytes, int]]) -> None:
    count = len(entries)
    if not count:
        return
    payload = concatenated(_encoder, entries)
    if len(payload) <= limit or count == 1:
        out.append((payload, count))
        return
    parts = min(count, -(-len(payload) // limit) + 1)  # one more: the entries differ in size
    step = -(-count // parts)
    for start in range(0, count, step):
        _pack(entries[start:start + step], limit, out)


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


class EventTimes(Sequence):
    """The records' event times as RFC 3339 text, each converted only if it is read (the
    fast path reads one only for an event whose line carries no time)."""

    __slots__ = ("times",)

    def __init__(self, times: list):
        self.times = times

    def __getitem__(self, i: int) -> str | None:
        raw = self.times[i]
        if raw is None:
            return None
        # "" (the pipeline's INVALID_TIME): a time that is none, which it tags
        return event_time_iso(raw) or ""

    def __len__(self) -> int:
        return len(self.times)
