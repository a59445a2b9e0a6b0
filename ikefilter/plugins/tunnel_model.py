"""The state the tunnels plugin keeps: tunnels, peers, counts and the snapshot's form, with
the joining rules' table and the times they use."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime

import msgspec

from .. import ecs

NS = 1_000_000_000

# What each message does to its tunnel: the one table of the joining rules.
ROLES = {
    "530": "ike-up", "616": "ike-rekey", "590": "ike-down", "803": "ike-down",
    "419": "ike-failure", "642": "ike-failure", "161": "ike-failure",
    "155": "child-up", "628": "child-rekey", "183": "child-down",
    "556": "child-failure", "172": "child-failure",
    "737": "user",
    "1693": "pool", "1694": "pool-acquired", "1690": "pool-released", "1691": "pool-released",
    "1692": "pool", "1695": "pool", "1713": "pool",
}
CLOSE_REASON = {"590": "deleted", "803": "peer-dead"}
#: close reasons that count as the peer's tunnel going down (for flapping)
DOWN = frozenset({"deleted", "peer-dead"})

UP, CLOSED, FAILED = "up", "closed", "failed"
TAG_FLAPPING = "tunnel_flapping"
TAG_OUT_OF_ORDER = "tunnel_out_of_order"
DATASET = "clavister.tunnel"
SNAPSHOT_VERSION = 1
# A tunnel that announced a rekey time is gone once silent for twice that and this grace.
IDLE_GRACE = 60 * NS


def tunnel_id(ike_pair: str) -> str:
    """The tunnel's id: a digest of the first IKE SPI pair seen (``local:remote``), so every
    process that saw the same start names the tunnel alike."""
    return hashlib.blake2b(ike_pair.encode(), digest_size=8).hexdigest()


def to_ns(stamp: str) -> int | None:
    """``@timestamp`` (RFC 3339 UTC, ``Z``) as nanoseconds since the epoch; None if unreadable."""
    try:
        base = datetime(int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]), int(stamp[11:13]),
                        int(stamp[14:16]), int(stamp[17:19]))
    except (ValueError, IndexError):
        return None
    ns = (base - _EPOCH).days * 86400 * NS + (base - _EPOCH).seconds * NS
    frac = stamp[19:].rstrip("Z")
    if frac[:1] == "." and frac[1:].isdigit():
        ns += int((frac[1:] + "000000000")[:9])
    return ns


_EPOCH = datetime(1970, 1, 1)


def to_text(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC to the millisecond, the one form every
    time is written in."""
    seconds, frac = divmod(ns, NS)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{frac // 1_000_000:03d}Z"


def pair(a: str | None, b: str | None) -> str | None:
    return f"{a}:{b}" if a and b else None


class Tunnel(msgspec.Struct, gc=False, omit_defaults=True, kw_only=True):
    """One tracked tunnel: an IKE SA (and the ones that rekeyed it) with its IPsec SAs."""

    id: str
    ike: str                          # current IKE SPI pair
    start: int                        # ns: first seen (its 530 when seen)
    last: int                         # ns: latest event
    partial: bool = False             # its start was not seen
    old_ike: str | None = None        # the pair the last rekey replaced (late lines join)
    rekeys: int = 0
    ipsec_sas: int = 0
    ipsec_rekeys: int = 0
    children: list[str] = []          # open IPsec SA pairs
    rekey_time: int | None = None     # seconds, as the IKE SA announced it
    local_ip: str | None = None
    local_port: int | None = None
    remote_ip: str | None = None
    remote_port: int | None = None
    local_id: str | None = None
    remote_id: str | None = None
    initiator: bool | None = None
    version: int | None = None
    algorithms: str | None = None
    user: str | None = None
    pool_address: str | None = None
    host: str | None = None           # the firewall (observer.hostname)

    def peer(self) -> tuple[str, str, str]:
        return (self.local_ip or "", self.remote_ip or "", self.remote_id or "")


class Peer(msgspec.Struct, gc=False, kw_only=True):
    """A peer with recent tunnel downs: their times (ns), and when it was last alerted."""

    downs: list[int] = []
    alerted: int | None = None


class Counts(msgspec.Struct, kw_only=True):
    """What the tracker did, logged at exit."""

    tunnels_opened: int = 0
    tunnels_closed: int = 0
    tunnels_idle: int = 0
    tunnels_evicted: int = 0
    tunnels_partial: int = 0
    out_of_order: int = 0
    summaries: int = 0
    alerts: int = 0


class Snapshot(msgspec.Struct, kw_only=True):
    version: int
    saved: str
    now: int
    tunnels: list[Tunnel]
    peers: list[tuple[tuple[str, str, str], Peer]] = []


def learn(tun: Tunnel, ev: ecs.Event) -> None:
    """What the event says of the tunnel's peers, identities and lifetime."""
    ike = ev.clavister.ike
    if ike is not None:
        if ike.initiator is not None and (tun.initiator is None or ev.event.code == "530"):
            tun.initiator = ike.initiator
        tun.local_id = ike.local_id or tun.local_id
        tun.remote_id = ike.remote_id or tun.remote_id
        tun.version = ike.version or tun.version
        tun.algorithms = tun.algorithms if ev.clavister.ipsec is not None \
            else ike.algorithms or tun.algorithms
        tun.rekey_time = ike.rekey_time or tun.rekey_time
    if tun.remote_ip is None or ev.event.code == "530":
        [remote], [local] = ev.endpoints("remote"), ev.endpoints("local")
        if remote is not None and remote.ip is not None:
            tun.remote_ip, tun.remote_port = remote.ip, remote.port
        if local is not None and local.ip is not None:
            tun.local_ip, tun.local_port = local.ip, local.port
    tun.host = host_of(ev) or tun.host


def host_of(ev: ecs.Event) -> str | None:
    """The firewall that logged ``ev``, as its builder was given it: a name or an address."""
    obs = ev.observer
    if obs is None:
        return None
    return obs.hostname or (obs.ip[0] if obs.ip else None)


def event_peer(ev: ecs.Event) -> tuple[str, str, str]:
    """The peer of an event: (local address, remote address, remote identity)."""
    ike = ev.clavister.ike
    [local], [remote] = ev.endpoints("local"), ev.endpoints("remote")
    return (local.ip or "" if local is not None else "",
            remote.ip or "" if remote is not None else "",
            ike.remote_id or "" if ike is not None else "")
