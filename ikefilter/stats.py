"""The counts of one process."""

from __future__ import annotations

import msgspec


class Stats(msgspec.Struct):
    """Counts that always add up: ``in_ == out + dropped + quarantined``."""

    in_: int = msgspec.field(default=0, name="in")
    out: int = 0
    dropped: int = 0
    quarantined: int = 0
    tagged: int = 0
    passthrough: int = 0
    dropped_by_rule: dict[str, int] = msgspec.field(default_factory=dict)
    derived: int = 0  # events plugins made (summaries, alerts): in + derived = out + ...

    def unwritten(self, count: int, reason: str) -> None:
        """``count`` records counted out were not written after all (the output refused
        them, or the next hop never acked them): they are counted dropped, under ``reason``."""
        if count:
            self.out -= count
            self.dropped += count
            self.dropped_by_rule[reason] = self.dropped_by_rule.get(reason, 0) + count
