"""Built-in tunnel sessions, configured by ``[plugins.tunnels]``: a plugin like any site's.

docs/tunnels.md is the contract. IKE and IPsec SA lifecycle events are joined into tunnels
(:mod:`ikefilter.plugins.tunnel_state`): each gains ``clavister.tunnel.*`` (its tunnel's id, state,
age), a closing event its ``event.duration``; a closed tunnel is summed up in one
``tunnel-summary`` event and a flapping peer raises one ``tunnel-flapping`` alert per
window. The joining runs in the enrich stage, on the values before redaction; the events it
makes are handed over in ``ikefilter_derive`` and go through redaction like every event.

Inactive without a ``[plugins.tunnels]`` table; ``disable_plugins = ["tunnels"]`` or a
site plugin of its own replaces it.
"""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec

from .. import hookimpl
from ..config import PipelineInfo, SiteConfig
from ..ecs import Event
from .tunnel_state import Tracker

log = logging.getLogger("ikefilter")

NAME = "tunnels"


class Options(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[plugins.tunnels]``: docs/tunnels.md, "The site config"."""

    flap_count: Annotated[int, msgspec.Meta(ge=2, le=10_000)] = 3
    flap_window: Annotated[int, msgspec.Meta(ge=1, le=30 * 86400)] = 600
    max_tunnels: Annotated[int, msgspec.Meta(ge=1, le=100_000_000)] = 100_000
    idle_ttl: Annotated[int, msgspec.Meta(ge=1, le=365 * 86400)] = 90_000
    snapshot: Annotated[str, msgspec.Meta(min_length=1)] | None = None


class TunnelsPlugin:
    """Tunnel sessions from ``[plugins.tunnels]``; inactive without the table."""

    name = NAME

    def __init__(self) -> None:
        self.tracker: Tracker | None = None
        self.snapshot: str | None = None

    @hookimpl
    def ikefilter_config_tables(self) -> dict[str, type]:
        """Claim ``[plugins.tunnels]``."""
        return {NAME: Options}

    @hookimpl
    def ikefilter_configure(self, config: SiteConfig, info: PipelineInfo) -> None:
        """Build the tracker from the table and take up the snapshot, if there is one."""
        options = config.plugins.get(NAME)
        self.tracker = None
        if options is None:
            return
        self.tracker = Tracker(options.flap_count, options.flap_window, options.max_tunnels,
                               options.idle_ttl)
        self.snapshot = None
        if options.snapshot is not None:
            self.snapshot = path = info.resolve(options.snapshot)
            taken = self.tracker.load(path)
            if taken:
                log.info("tunnels: %d open tunnels taken up from %s", taken, path)

    @hookimpl
    def ikefilter_enrich(self, events: list[Event]) -> None:
        """Join the batch's lifecycle events into their tunnels and annotate them."""
        if self.tracker is not None:
            self.tracker.observe(events)

    @hookimpl
    def ikefilter_derive(self) -> list[Event] | None:
        """The summaries and alerts the batch brought about."""
        if self.tracker is None or not self.tracker.pending:
            return None
        return self.tracker.take()

    @hookimpl
    def ikefilter_unconfigure(self) -> None:
        """Log what the tracker did, and write the snapshot of the tunnels still open."""
        tracker = self.tracker
        if tracker is None:
            return
        c = tracker.counts
        log.info("tunnels: %d open, %s", len(tracker.tunnels),
                 " ".join(f"{k}={v}" for k, v in msgspec.structs.asdict(c).items()))
        if self.snapshot is not None:
            try:
                tracker.save(self.snapshot)
            except OSError as exc:
                log.error("tunnels: cannot write the snapshot %s (%s): the %d open tunnels"
                          " will be seen from their middle after a restart", self.snapshot,
                          exc.strerror, len(tracker.tunnels))
