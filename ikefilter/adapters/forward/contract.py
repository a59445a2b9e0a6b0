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
        ``records``: the time of an event whose line carries none; None where the frame gave
        no time, ``""`` where it gave one that is not a time (out of range: the processor
        tags the event). A sequence that converts each time when it is read: read only the
        ones needed.
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
    upstream_refused: int = 0  # frames the next hop kept refusing (said once each)
    protocol_errors: int = 0  # connections closed for bad or oversized frames
    handshake_failures: int = 0
    processor_errors: int = 0
    timeouts: int = 0  # connections closed idle, sending a frame too slowly, not reading acks
    over_budget: int = 0  # frames over their objects or events budget (protocol errors too)
    unencodable: int = 0  # records JSON cannot carry, written as tagged failure events
    not_written: int = 0  # output records of batches the output refused: never acked
    torn_tails: int = 0  # output files found ending in part of a line, the part moved aside
    refused: int = 0  # connections refused at max_connections with none idle
    evicted: int = 0  # idle connections closed at max_connections for a new one
    accept_errors: int = 0  # times accepting failed for want of descriptors
    plaintext: int = 0  # connections to the TLS port that did not open with TLS: closed
    tls_failures: int = 0  # TLS handshakes that failed (version, cipher, timeout): closed
