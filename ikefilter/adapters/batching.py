"""What every adapter that reads a stream shares: lines read in batches with the
``max_line`` guard, a batch processed and written whole before SIGTERM is taken, no cycle
collection while a batch is in flight, and the loop of ``run`` and the msgpack stream
(:func:`filter_batches`).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec

from .. import ecs

if TYPE_CHECKING:
    from ..pipeline import Pipeline

CHUNK = 65536


def iter_batches(stream: BinaryIO, chunk: int = CHUNK,
                 max_line: int | None = None) -> Iterator[list[bytes]]:
    """Yield batches of complete lines (without ``\\n``); the last line may lack one.

    With ``max_line``, a line is never held longer than ``max_line + 1`` bytes: the rest of
    it is read and discarded, and the pipeline, seeing it over its limit, cuts and tags it.
    """
    read = getattr(stream, "read1", stream.read)
    rest = b""
    skipping = False  # inside an over-long line: drop its bytes up to its newline
    while True:
        data = read(chunk)
        if not data:
            break
        if skipping:
            end = data.find(b"\n")
            if end < 0:
                continue
            skipping = False
            data = data[end:]
        data = rest + data if rest else data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            # A line longer than the chunk: keep reading until its end.
            if max_line is not None and len(rest) > max_line:
                rest = rest[:max_line + 1]
                skipping = True
            continue
        rest = data[cut + 1:]
        yield data[:cut].split(b"\n")
    if rest:
        yield [rest]


class Terminated(BaseException):
    """SIGTERM arrived; raised where no batch is half done, so every ``finally`` runs."""


class _Shutdown:
    """A batch is processed and written whole, or not counted at all: SIGTERM during one
    is held until it is written and flushed."""

    busy = False
    requested = False

    @classmethod
    def on_sigterm(cls, signum, frame) -> None:
        if cls.busy:
            cls.requested = True
        else:
            raise Terminated

    @classmethod
    @contextlib.contextmanager
    def batch(cls) -> Iterator[None]:
        cls.busy = True
        try:
            yield
        finally:
            cls.busy = False
        if cls.requested:
            raise Terminated


on_sigterm = _Shutdown.on_sigterm
whole_batch = _Shutdown.batch


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cycle collection while a batch is in flight.

    A batch's events hold no reference cycles and all die once it is written; collecting
    while they are alive walks them for nothing (about a tenth of the run time). Objects
    freed at the end of the batch also take back the allocations that would have
    triggered it. The collector runs as usual between batches."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def encode_lines(encoder: msgspec.json.Encoder, items: list[Any]) -> tuple[bytes, list[Any]]:
    """``items`` as JSON lines, and the items that could not be encoded.

    A record JSON cannot carry (a msgpack ext value, a map key that is nil or a boolean)
    never takes its batch with it: it alone is written as a failure event tagged
    ``ikefilter_unencodable``, saying why but holding none of its values.
    """
    try:
        return encoder.encode_lines(items), []
    except (TypeError, ValueError, OverflowError):
        pass
    kept = list(items)
    bad = []
    now = ecs.now()
    for i, item in enumerate(kept):
        try:
            encoder.encode(item)
        except (TypeError, ValueError, OverflowError) as exc:
            bad.append(item)
            kept[i] = ecs.failure(f"record cannot be written as JSON: {exc}",
                                  ["clavister", ecs.TAG_UNENCODABLE], now)
    return encoder.encode_lines(kept), bad


def unwritten_reason(exc: OSError) -> str:
    """How a refused write is counted: the reader went away, or the output failed."""
    return "stdout_closed" if isinstance(exc, BrokenPipeError) else "not_written"


def write_batch(stats, write, flush, data: bytes, count: int) -> None:
    """Write and flush one batch's output of ``count`` records. When the output refuses it
    (a full disk, a reader gone), the records the pipeline counted out were written by
    nobody: they are counted dropped, under the reason, and the error goes on."""
    try:
        write(data)
        flush()
    except OSError as exc:
        # the whole batch: what of it reached a reader that went away cannot be known
        stats.unwritten(count, unwritten_reason(exc))
        raise


def filter_batches(pipeline: Pipeline, process: Callable[[list], list], batches: Iterable[list],
                   out: BinaryIO, encode: Callable[[list], bytes] | None = None,
                   progress: Callable[[int], None] | None = None) -> None:
    """Process each batch with ``process`` (a :class:`~ikefilter.pipeline.Pipeline` entry
    point) and write what it keeps to ``out``, flushed, each batch whole before SIGTERM is
    taken: the loop of ``ikefilter run``, lines or msgpack.

    :param encode: the written outputs of a batch as bytes; by default JSON lines, where a
        record JSON cannot carry is written as a tagged failure event and counted as one.
    :param progress: called with the size of each batch once it is written.
    """
    json_encoder = msgspec.json.Encoder()
    write, flush = out.write, out.flush
    for batch in batches:
        with whole_batch(), collector_paused():
            results = [r for r in process(batch) if r is not None]
            if results:
                if encode is not None:
                    data = encode(results)
                else:
                    data, unencodable = encode_lines(json_encoder, results)
                    if unencodable:
                        pipeline.count_unencodable(unencodable)
                write_batch(pipeline.stats, write, flush, data, len(results))
                del results, data
        if progress is not None:
            progress(len(batch))
