"""The stdin/stdout line filter behind ``ikefilter run``.

Reads bytes in chunks of at most 64 KiB, splits on ``\\n`` (a trailing ``\\r`` is dropped
later), processes each chunk's complete lines as one batch, writes exactly one JSON line
per written event, in order, and flushes after every batch so a pipeline that reads the
filter's output asynchronously (Fluentd exec_filter, Logstash pipe, Vector exec) never waits.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from ..pipeline import Pipeline
from .batching import filter_batches, iter_batches
from .sniff import TextSource


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


def run(pipeline: Pipeline, sources: Iterable[BinaryIO], out: BinaryIO,
        progress: Progress | None = None,
        encode: Callable[[list], bytes] | None = None) -> None:
    """Filter every source in turn to ``out``: JSON lines, or what ``encode`` makes of a
    batch's outputs."""
    batches = (batch for source in sources
               for batch in iter_batches(TextSource(source), max_line=pipeline.max_line))
    filter_batches(pipeline, pipeline.process_lines, batches, out, encode,
                   progress=None if progress is None else progress.add)
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
