"""The tunnels plugin's snapshot: the open tunnels written at exit and taken up at start, so
a restart does not forget them. Written atomically and only for the service user."""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import msgspec

from .tunnel_model import SNAPSHOT_VERSION, Snapshot, to_text

if TYPE_CHECKING:
    from .tunnel_state import Tracker

log = logging.getLogger("ikefilter")


def save(tracker: Tracker, path: str) -> None:
    """Write the open tunnels and recent peer downs to ``path``, atomically, mode 0600."""
    snap = Snapshot(version=SNAPSHOT_VERSION, saved=to_text(time.time_ns()), now=tracker.now,
                    tunnels=list(tracker.tunnels.values()),
                    peers=[(k, p) for k, p in tracker.flaps.peers.items()])
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.encode(snap))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

def load(tracker: Tracker, path: str) -> int:
    """Take up the tunnels of a snapshot; a missing file is no snapshot, a corrupt one is
    ignored with a warning. Returns the number of tunnels taken up."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    try:
        snap = msgspec.json.decode(data, type=Snapshot)
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"version {snap.version}, not {SNAPSHOT_VERSION}")
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        # The type only: the text may quote the file's addresses and identities.
        why = str(exc) if type(exc) is ValueError else type(exc).__name__
        log.warning("tunnel snapshot %s ignored, it cannot be read (%s): tunnels open"
                    " before this start are seen from their middle", path, why)
        return 0
    tracker.now = max(tracker.now, snap.now)
    for tun in snap.tunnels[-tracker.max_tunnels:]:
        tracker.tunnels[tun.id] = tun
        for key in (tun.ike, tun.old_ike):
            if key is not None:
                tracker.by_ike[key] = tun
        for key in tun.children:
            tracker.by_ipsec[key] = tun
        if tun.pool_address is not None:
            tracker.by_pool[tun.pool_address] = tun
    tracker.rebuild_expiry()
    for key, peer in snap.peers[-tracker.max_tunnels:]:
        tracker.flaps.peers[tuple(key)] = peer
    return len(tracker.tunnels)
