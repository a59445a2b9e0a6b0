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
msgpack object ends the run (exit status 3) once everything before it is answered: past it,
the stream cannot be framed again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import BinaryIO

import msgspec

from .. import exits
from ..pipeline import Pipeline
from .batching import CHUNK, filter_batches
from .msgpack_framing import FrameError, array_prefix, concatenated, iter_ends
from .sniff import refuse_non_map

log = logging.getLogger("ikefilter")

MAX_OBJECT = 16 * 1024 * 1024


class StreamError(ValueError):
    """The input is not a msgpack stream: nothing after this point can be framed.

    :ivar ends: the end offsets of the complete objects before the fault.
    """

    def __init__(self, message: str, ends: list[int] | None = None):
        super().__init__(message)
        self.ends = ends or []


def object_ends(buf: bytes, max_object: int = MAX_OBJECT) -> list[int]:
    """The end offsets of the complete msgpack objects at the start of ``buf``.

    What follows the last end is the start of an incomplete object. Raises
    :class:`StreamError` on a byte that cannot start a msgpack object (0xC1), on nesting
    deeper than 64, or on an object larger than ``max_object``: a stream cannot be framed
    past any of them.
    """
    ends: list[int] = []
    try:
        for end in iter_ends(buf, max_object=max_object, partial=True):
            ends.append(end)  # kept when a later object is at fault
    except FrameError as exc:
        raise StreamError(f"{exc} (object at offset {ends[-1] if ends else 0})", ends) from None
    if len(buf) - (ends[-1] if ends else 0) > max_object:
        raise StreamError(f"msgpack object larger than {max_object} bytes", ends)
    return ends


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
                objects = decoder.decode(array_prefix(len(ends)) + body)
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
        if type(obj) is list:
            records.extend(obj)
        else:
            records.append(obj)
    return records


def run(pipeline: Pipeline, source: BinaryIO, out: BinaryIO, *,
        output_format: str = "msgpack") -> None:
    """Filter a stream of msgpack maps from ``source`` to ``out``.

    :param output_format: ``"msgpack"`` (one map per written event) or anything else for
        JSON lines. (Lines in, maps out: :func:`ikefilter.adapters.lines.run` with
        :func:`maps_encoder`.)
    """
    batches = _first_a_map(iter_records(source))
    process = pipeline.process_records
    encode = maps_encoder() if output_format == "msgpack" else None
    try:
        filter_batches(pipeline, process, batches, out, encode)
    except StreamError as exc:
        out.flush()
        raise exits.Failure(exits.INPUT, f"input is not a msgpack stream: {exc}") from None


def _first_a_map(batches: Iterator[list]) -> Iterator[list]:
    """The batches, once the first has been seen to begin with a map (:func:`refuse_non_map`)."""
    for batch in batches:
        if batch:
            refuse_non_map(batch[0])
        yield batch
        break
    yield from batches


def maps_encoder() -> Callable[[list], bytes]:
    """A batch's outputs as msgpack maps back to back: the batch as one array less its
    header."""
    return functools.partial(concatenated, msgspec.msgpack.Encoder())
