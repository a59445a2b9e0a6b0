"""What bounds a forward server's work: the budgets' defaults, frames processed in slices,
and logging that a flood of one warning cannot turn into a flood of lines."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

# A frame's work, past its bytes (docs/threat-model.md has the measured peaks): every array,
# map, key and value decoded counts one object; every [time, record] entry one event.
DEFAULT_MAX_OBJECTS = 2_000_000
DEFAULT_MAX_EVENTS = 200_000
# Records handed to the pipeline at once; between two slices other connections are served.
SLICE = 4096
# A frame larger than this, or compressed, is decoded and processed while no other such
# frame is: the heavy work of the server is one frame's budget at a time.
HEAVY_FRAME = 64 * 1024

class RateLimit(logging.Filter):
    """Let one line of each kind through per ``interval`` seconds; the next one that passes
    says how many were held back.

    A kind is the logger and the message's format string, so ``closing connection from %s``
    is one kind whatever the peer. Warnings and errors only: info lines pass as they are.
    """

    def __init__(self, interval: float = 10.0, clock=time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this held back)"
        if len(self._last) > 1024:  # kinds are few; never grow without bound
            self._last.clear()
        return True


async def process_in_slices(processor, records: list, times: Sequence) -> list:
    """The processor's outputs for ``records``, :data:`SLICE` at a time; between two slices
    the event loop serves the other connections."""
    if len(records) <= SLICE:
        return processor.process_records(records, times) if records else []
    outputs: list = []
    for start in range(0, len(records), SLICE):
        if start:
            await asyncio.sleep(0)
        stop = start + SLICE
        outputs += processor.process_records(records[start:stop], _Slice(times, start, stop))
    return outputs


class _Slice(Sequence):
    """``items[start:stop]`` without copying (the times convert only when read)."""

    __slots__ = ("items", "start", "stop")

    def __init__(self, items: Sequence, start: int, stop: int) -> None:
        self.items, self.start, self.stop = items, start, min(stop, len(items))

    def __getitem__(self, i: int):
        if not 0 <= i < self.stop - self.start:
            raise IndexError(i)
        return self.items[self.start + i]

    def __len__(self) -> int:
        return self.stop - self.start
