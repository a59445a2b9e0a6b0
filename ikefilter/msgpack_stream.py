"""A stream of msgpack maps in and out, for Fluentd's ``exec_filter``.

Fluentd's msgpack formatter writes each record as one bare msgpack map, back to back, with no
array, tag or time around it (``record.to_msgpack``); its msgpack parser reads back a stream
of maps (or arrays of maps) the same way. So ``ikefilter run --input-format msgpack
--output-format msgpack`` reads concatenated maps on stdin and writes one map per written
event on stdout, in order, flushed after every batch.

msgspec has no streaming unpacker: :func:`object_ends` walks the msgpack headers to find where
each complete object in the buffer ends (skipping ``str``/``bin`` payloads by their length),
then all complete objects are decoded in one call behind an array header. A batch is what one
read returned: at most 64 KiB, never waiting for more input. A byte that cannot start a
msgpack object ends the run (exit status 1) once everything before it is answered: past it,
the stream cannot be framed again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import BinaryIO

import msgspec

from .lines import CHUNK, iter_batches, whole_batch
from .pipeline import Pipeline

log = logging.getLogger("ikefilter")

MAX_OBJECT = 16 * 1024 * 1024
_MAX_DEPTH = 64


class StreamError(ValueError):
    """The input is not a msgpack stream: nothing after this point can be framed.

    :ivar ends: the end offsets of the complete objects before the fault.
    """

    def __init__(self, message: str, ends: list[int] | None = None):
        super().__init__(message)
        self.ends = ends or []


def _sizes() -> tuple[tuple[int, ...], dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
    fixed = [0] * 256
    for b in range(0x00, 0x80):  # positive fixint
        fixed[b] = 1
    for b in range(0xE0, 0x100):  # negative fixint
        fixed[b] = 1
    for b in range(0xA0, 0xC0):  # fixstr
        fixed[b] = 1 + (b & 0x1F)
    for b, n in {0xC0: 1, 0xC2: 1, 0xC3: 1, 0xCA: 5, 0xCB: 9, 0xCC: 2, 0xCD: 3, 0xCE: 5,
                 0xCF: 9, 0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9, 0xD4: 3, 0xD5: 4, 0xD6: 6,
                 0xD7: 10, 0xD8: 18}.items():
        fixed[b] = n
    # first byte -> (length bytes, bytes after the length: the ext type)
    payload = {0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xD9: (1, 0), 0xDA: (2, 0),
               0xDB: (4, 0), 0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1)}
    # first byte -> (count bytes, items per count)
    containers = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}
    return tuple(fixed), payload, containers


_FIXED, _PAYLOAD, _CONTAINERS = _sizes()


def object_ends(buf: bytes, max_object: int = MAX_OBJECT) -> list[int]:
    """The end offsets of the complete msgpack objects at the start of ``buf``.

    What follows the last end is the start of an incomplete object. Raises
    :class:`StreamError` on a byte that cannot start a msgpack object (0xC1) or on an object
    larger than ``max_object``: a stream cannot be framed past either.
    """
    fixed, payload, containers = _FIXED, _PAYLOAD, _CONTAINERS
    n = len(buf)
    ends: list[int] = []
    end = pos = 0
    stack: list[int] = []  # items still to walk in each open container
    while pos < n:
        b = buf[pos]
        size = fixed[b]
        if size:
            pos += size
        elif 0x80 <= b <= 0x9F:  # fixmap, fixarray
            items = (b & 0x0F) * 2 if b < 0x90 else b & 0x0F
            pos += 1
            if items:
                if len(stack) >= _MAX_DEPTH:
                    raise StreamError("msgpack nesting too deep", ends)
                stack.append(items)
                continue
        elif b in payload:
            width, extra = payload[b]
            if pos + 1 + width > n:
                break
            pos += 1 + width + extra + int.from_bytes(buf[pos + 1:pos + 1 + width], "big")
        elif b in containers:
            width, per = containers[b]
            if pos + 1 + width > n:
                break
            items = int.from_bytes(buf[pos + 1:pos + 1 + width], "big") * per
            pos += 1 + width
            if items:
                if len(stack) >= _MAX_DEPTH:
                    raise StreamError("msgpack nesting too deep", ends)
                stack.append(items)
                continue
        else:
            raise StreamError(f"invalid msgpack byte 0x{b:02x} at offset {pos}", ends)
        while stack:
            left = stack[-1] - 1
            if left:
                stack[-1] = left
                break
            stack.pop()
        if not stack and pos <= n:
            ends.append(pos)
            end = pos
    if pos - end > max_object:
        raise StreamError(f"msgpack object larger than {max_object} bytes", ends)
    return ends


def _array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


class _Undecodable:
    """Stands for an object msgspec could not decode; the pipeline tags it a parse failure."""

    __slots__ = ("why",)

    def __init__(self, why: str):
        self.why = why

    def __repr__(self) -> str:
        return f"<undecodable msgpack object: {self.why}>"


def iter_records(stream: BinaryIO, chunk: int = CHUNK,
                 max_object: int = MAX_OBJECT) -> Iterator[list]:
    """Yield the records of each read: maps as dicts, arrays of maps flattened (as Fluentd's
    msgpack parser does); anything else is yielded as is, for the pipeline to tag.

    A read returns what is there (``read1``: one system call), so a batch never waits for
    more input than the writer has sent.
    """
    decoder = msgspec.msgpack.Decoder()
    read = getattr(stream, "read1", stream.read)
    rest = b""
    while True:
        data = read(chunk)
        if not data:
            break
        buf = rest + data if rest else data
        fault = None
        try:
            ends = object_ends(buf, max_object)
        except StreamError as exc:
            ends, fault = exc.ends, exc
        if ends:
            end = ends[-1]
            rest = buf[end:]
            body = buf[:end] if end < len(buf) else buf
            try:
                objects = decoder.decode(_array_header(len(ends)) + body)
            except (msgspec.DecodeError, UnicodeDecodeError):
                objects = _decode_each(decoder, body, ends)
            yield _records(objects)
        else:
            rest = buf
        if fault is not None:
            raise fault
    if rest:
        yield [_Undecodable(f"truncated at end of input ({len(rest)} bytes)")]


def _decode_each(decoder: msgspec.msgpack.Decoder, body: bytes, ends: list[int]) -> list:
    """The slow path: one decode per object, so one bad object spoils only itself."""
    objects = []
    start = 0
    for end in ends:
        try:
            objects.append(decoder.decode(body[start:end]))
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            objects.append(_Undecodable(str(exc)))
        start = end
    return objects


def _records(objects: list) -> list:
    records = []
    for obj in objects:
        if type(obj) is dict:
            records.append(_text_values(obj))
        elif type(obj) is list:
            records.extend(_text_values(o) if type(o) is dict else o for o in obj)
        else:
            records.append(obj)
    return records


def _text_values(record: dict) -> dict:
    """Fluentd packs binary-encoded Ruby strings as msgpack ``bin``: read them as text."""
    for key, value in record.items():
        if type(value) is bytes:
            record[key] = value.decode("utf-8", "replace")
    return record


def _strip_array_header(packed: bytes) -> bytes:
    first = packed[0]
    if first == 0xDC:
        return packed[3:]
    if first == 0xDD:
        return packed[5:]
    return packed[1:]


def run(pipeline: Pipeline, source: BinaryIO, out: BinaryIO, *,
        input_format: str = "msgpack", output_format: str = "msgpack") -> None:
    """Filter ``source`` to ``out``; either side may be msgpack maps or JSON lines.

    :param input_format: ``"msgpack"`` (a stream of maps) or anything else for lines (text
        or JSON records, as ``ikefilter run`` reads them).
    :param output_format: ``"msgpack"`` (one map per written event) or anything else for
        JSON lines.
    """
    msgpack_out = output_format == "msgpack"
    encode = msgspec.msgpack.Encoder().encode if msgpack_out else None
    json_encoder = msgspec.json.Encoder()
    write, flush = out.write, out.flush
    if input_format == "msgpack":
        batches = iter_records(source)
        process = pipeline.process_records
    else:
        batches = iter_batches(source, max_line=pipeline.max_line)
        process = pipeline.process_lines
    try:
        for batch in batches:
            with whole_batch():
                results = [r for r in process(batch) if r is not None]
                if results:
                    if msgpack_out:
                        write(_strip_array_header(encode(results)))
                    else:
                        write(json_encoder.encode_lines(results))
                    flush()
    except StreamError as exc:
        flush()
        log.error("input is not a msgpack stream: %s", exc)
        raise SystemExit(1) from None
