"""What a forward server needs from its processor, and the counts it keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec


class Processor(Protocol):
    """What the server calls once per batch of records."""

    def process_records(
        self, records: list[dict], times: Sequence[str | None] | None = None
    ) -> list[object | None]:
        """Return one output record or None per input record, in the same order.

        ``times`` are the records' event times as RFC 3339 UTC text, aligned with
        ``records``: the time of an event whose line carries none. A sequence that
        converts each time when it is read: read only the ones needed.
        """
        ...


class ForwardStats(msgspec.Struct):
    """Counters of one server run; every count is updated once per batch."""

    connections: int = 0
    frames: int = 0
    heartbeats: int = 0
    events: int = 0  # records handed to the processor
    emitted: int = 0  # output records written or passed upstream
    dropped: int = 0  # None results: dropped or quarantined by the processor
    invalid: int = 0  # entries that were not [time, map]: never reach the processor
    acks: int = 0
    undelivered: int = 0  # passed upstream, never acked by it before shutdown
    protocol_errors: int = 0  # connections closed for bad or oversized frames
    handshake_failures: int = 0
    processor_errors: int = 0
    timeouts: int = 0  # connections closed idle, or sending a frame too slowly
