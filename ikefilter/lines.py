"""The stdin/stdout line filter behind ``ikefilter run``.

Reads bytes in chunks of at most 64 KiB, splits on ``\\n`` (a trailing ``\\r`` is dropped
later), processes each chunk's complete lines as one batch, writes exactly one JSON line
per written event, in order, and flushes after every batch so a pipeline that reads the
filter's output asynchronously (Fluentd exec_filter, Logstash pipe, Vector exec) never waits.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import msgspec

from .pipeline import Pipeline
from .sniff import TextSource

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


class Progress:
    """A one-line progress report on stderr, at most a few times a second."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.start = self.last = time.monotonic()
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= 0.25:
            self.last = now
            rate = self.count / max(now - self.start, 1e-9)
            sys.stderr.write(f"\r{self.count:,} lines, {rate:,.0f} lines/s ")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


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


def run(pipeline: Pipeline, sources: Iterable[BinaryIO], out: BinaryIO,
        progress: Progress | None = None) -> None:
    """Filter every source in turn to ``out`` as JSON lines."""
    encoder = msgspec.json.Encoder()
    write, flush = out.write, out.flush
    for source in sources:
        for batch in iter_batches(TextSource(source), max_line=pipeline.max_line):
            with whole_batch(), collector_paused():
                results = pipeline.process_lines(batch)
                write(encoder.encode_lines([r for r in results if r is not None]))
                del results
                flush()
            if progress is not None:
                progress.add(len(batch))
    if progress is not None:
        progress.done()


def open_sources(paths: list[str]) -> Iterator[BinaryIO]:
    """stdin when no path (or ``-``) is given, else each file in turn."""
    if not paths:
        yield sys.stdin.buffer
        return
    for path in paths:
        if path == "-":
            yield sys.stdin.buffer
            continue
        with open(path, "rb", buffering=0) as f:
            yield f


def stderr_is_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
