"""Decoding one complete forward frame into a :class:`Frame`.

Message, Forward, PackedForward and CompressedPackedForward are accepted; packed entries
may be msgpack ``bin`` or ``str`` holding binary (Fluentd writes ``str32``), and are read as
raw bytes. Event times are kept as received (see :mod:`.entries`).
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec
from msgspec.msgpack import Ext

from ..msgpack_framing import (
    Budget,
    FrameError,
    OverBudget,
    array_prefix,
    count_objects,
    iter_ends,
    walk,
)
from .lenient import DECODE_ERRORS, bad_utf8, decode_lenient

DEFAULT_MAX_DECOMPRESSED = 64 * 1024 * 1024
_INFLATE_STEP = 1024 * 1024  # gzip is inflated this much at a time, each piece walked

_decoder = msgspec.msgpack.Decoder()


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


def decode_frame(
    frame: bytes | memoryview, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED, *,
    max_objects: int | None = None, max_events: int | None = None,
) -> Frame | None:
    """Decode one complete frame; return None for a heartbeat (nil).

    :param frame: exactly one msgpack object, as cut by :class:`FrameSplitter`.
    :param max_decompressed: largest gzip-decompressed payload accepted, in bytes.
    :param max_objects: most objects the packed entries may decode into, counted while
        they are walked (and while gzip inflates), before they are decoded; the frame's own
        objects are counted by the :class:`FrameSplitter` that cut it.
    :param max_events: most entries a frame may hold.
    :raises FrameError: the frame is not a valid forward frame, or is over a budget
        (:class:`~ikefilter.adapters.msgpack_framing.OverBudget`).
    """
    limits = (max_decompressed, max_objects)
    try:
        try:
            items = _decoder.decode(frame)
        except DECODE_ERRORS as exc:
            if not bad_utf8(exc):
                raise FrameError(f"malformed msgpack: {exc}") from None
            # packed entries sent as str (Fluentd's str32) or a record string not UTF-8
            decoded = _decode_raw_frame(memoryview(frame), limits)
        else:
            decoded = _frame_from_items(items, limits)
    except RecursionError:
        raise FrameError("msgpack nesting too deep") from None
    if (decoded is not None and max_events is not None
            and len(decoded.records) + decoded.invalid > max_events):
        raise OverBudget(f"frame over budget: more than {max_events} events")
    return decoded


def _frame_from_items(items: Any, limits: tuple[int, int | None]) -> Frame | None:
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
        return _decode_packed(tag, payload, items[2] if len(items) == 3 else None, limits)
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


def _decode_raw_frame(view: memoryview, limits: tuple[int, int | None]) -> Frame | None:
    """The slow path: slice packed entries as raw bytes, or decode strings leniently."""
    count, pos = _array_header(view, 0)
    if not 2 <= count <= 4:
        raise FrameError("a forward frame is an array of 2 to 4 items")
    tag, pos = _read_raw(view, pos, "tag")
    if pos < len(view) and view[pos] in _RAW_HEADERS:
        if count > 3:
            raise FrameError("PackedForward frame with 4 items")
        payload, pos = _read_raw(view, pos, "entries")
        option = decode_lenient(view[pos:]) if count == 3 else None
        return _decode_packed(_text(tag), payload, option, limits)
    return _frame_from_items(decode_lenient(view), limits)


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
    tag: str, payload: bytes | memoryview, option: Any, limits: tuple[int, int | None]
) -> Frame:
    option = _option(option)
    max_decompressed, max_objects = limits
    mode = "packed"
    size = option.get("size")
    if type(size) is not int or not 0 < size < 1 << 32:
        size = None  # the walk counts them
    compressed = option.get("compressed")
    if compressed == "gzip":
        flat = None if max_objects is None else _FLAT_BYTES_PER_OBJECT * max_objects
        payload, counted = _gunzip(payload, max_decompressed, max_objects, flat)
        mode = "compressed"
        size = counted if counted is not None else size
    elif compressed not in (None, "text"):
        raise FrameError(f"unsupported compression {compressed!r}")
    else:
        counted = None
    if max_objects is not None and counted is None and len(payload) > max_objects:
        # fewer bytes than the budget cannot hold more objects than it: only a larger
        # payload is walked (which also counts its entries), unless its entries are flat
        flat = _decode_flat(payload, size, max_objects)
        if flat is not None:
            times, records = flat
            return Frame(tag, times, records, option.get("chunk"), mode, 0)
        size = count_objects(payload, Budget(max_objects))
    entries = _decode_entries(payload, size)
    times, records, invalid = _split_entries(entries)
    return Frame(tag, times, records, option.get("chunk"), mode, invalid)


# Entries whose time is a number, an EventTime or Fluent Bit's [EventTime, metadata], and
# whose record and metadata map text to text, as the usual shipper sends them. Such
# entries hold no container but their own, and each object they make costs bytes: a new
# text is two characters at least (CPython shares the empty and one-character ones), so
# three bytes; each entry makes at most six objects besides its texts.
_FlatTime = int | float | Ext | tuple[Ext, dict[str, str]] | None
_flat_decoder = msgspec.msgpack.Decoder(list[tuple[_FlatTime, dict[str, str]]])
_FLAT_BYTES_PER_OBJECT = 3
_FLAT_OBJECTS_PER_ENTRY = 6


def _decode_flat(payload: bytes | bytearray | memoryview, size: int | None, max_objects: int
                 ) -> tuple[list, list[dict]] | None:
    """The times and records of ``size`` flat entries (see above), decoded without a walk
    when the most objects they could make is within ``max_objects``; None when they may
    not, or are not flat (the walk then counts them)."""
    if size is None or (_FLAT_OBJECTS_PER_ENTRY * size + len(payload) // _FLAT_BYTES_PER_OBJECT
                        > max_objects):
        return None
    try:
        entries = _flat_decoder.decode(array_prefix(size) + payload)
    except DECODE_ERRORS:
        return None
    times = [t[0] if type(t) is tuple else t for t, _ in entries]
    return times, [record for _, record in entries]


def _option(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FrameError("frame option is not a map")
    return value


def _gunzip(data: bytes | memoryview, limit: int, max_objects: int | None = None,
            unwalked: int | None = None) -> tuple[bytes | bytearray, int | None]:
    """Decompress one or more concatenated gzip members, at most ``limit`` bytes out.

    With ``max_objects``, each inflated piece past the first ``unwalked`` bytes is walked as
    it comes (those before it once they are passed), so a bomb of tiny objects is refused
    once it has inflated past its budget, not at ``limit``.

    :return: the entries, and their count when they were walked.
    """
    out = bytearray()
    budget = Budget(max_objects) if max_objects is not None else None
    if unwalked is None:
        unwalked = 0
    stack = [sys.maxsize]
    pos = 0
    data = bytes(data)
    while data:
        inflater = zlib.decompressobj(wbits=31)
        while not inflater.eof:
            try:
                part = inflater.decompress(data, min(_INFLATE_STEP, limit - len(out) + 1))
            except zlib.error as exc:
                raise FrameError(f"bad gzip data: {exc}") from None
            data = inflater.unconsumed_tail
            if not part and not data:
                raise FrameError("truncated gzip data")
            out += part
            if len(out) > limit:
                raise FrameError(f"decompressed entries larger than {limit} bytes")
            if budget is not None and len(out) > unwalked:
                pos, _ = walk(out, pos, stack, sys.maxsize, budget)
        data = inflater.unused_data
    if budget is None or pos == 0 < len(out):
        return out, None
    if pos != len(out) or len(stack) != 1:
        raise FrameError("truncated packed entries")
    return out, sys.maxsize - stack[0]


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
        except DECODE_ERRORS:
            pass
    try:
        return _decoder.decode(array_prefix(count_objects(payload)) + payload)
    except DECODE_ERRORS as exc:
        if not bad_utf8(exc):
            raise FrameError(f"malformed packed entries: {exc}") from None
        return _decode_entries_one_by_one(memoryview(payload))


def _decode_entries_one_by_one(view: memoryview) -> list:
    """Decode entry by entry so that only the entries holding bad UTF-8 take the slow path."""
    entries = []
    start = 0
    for end in iter_ends(view):
        entries.append(decode_lenient(view[start:end]))
        start = end
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


def batches(frames: Sequence[Frame], size: int
            ) -> Iterator[tuple[list[dict], list[Any], list[tuple[str, int]]]]:
    """The frames' records in batches of at most ``size``, in order: the records of each,
    their times, and its runs of one tag as ``(tag, end index in the batch)``.

    A big frame is cut into several batches (each processed and sent on while the next one
    waits, so a frame of many thousand records never holds the loop for seconds); the small
    frames of one read go together.
    """
    records: list[dict] = []
    times: list[Any] = []
    runs: list[tuple[str, int]] = []
    for frame in frames:
        start = 0
        total = len(frame.records)
        while start < total:
            stop = min(total, start + size - len(records))
            records += frame.records[start:stop]
            times += frame.times[start:stop]
            if runs and runs[-1][0] == frame.tag:
                runs[-1] = (frame.tag, len(records))
            else:
                runs.append((frame.tag, len(records)))
            start = stop
            if len(records) >= size:
                yield records, times, runs
                records, times, runs = [], [], []
    if records:
        yield records, times, runs
