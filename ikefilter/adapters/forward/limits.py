"""What bounds a forward server's work: the budgets' defaults, the size of a slice, and
logging that a flood of one warning cannot turn into a flood of lines."""

from __future__ import annotations

import logging
import time

# A frame's work, past its bytes (docs/threat-model.md has the measured peaks): every array,
# map, key and value decoded counts one object; every [time, record] entry one event.
DEFAULT_MAX_OBJECTS = 2_000_000
DEFAULT_MAX_EVENTS = 200_000
# seconds: a frame (or a handshake) once begun, and acks left unread
DEFAULT_FRAME_TIMEOUT = 120.0
DEFAULT_IDLE_TIMEOUT = 300.0  # a connection silent this long is closed
DEFAULT_DRAIN_TIMEOUT = 30.0  # in-flight frames on shutdown
# Records handed to the pipeline at once, and passed on before the next slice: a few tens of
# milliseconds of work and about 2 MB of documents (one frame to the next hop); between two
# slices the loop serves acks and the other connections.
SLICE = 2000
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


