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
