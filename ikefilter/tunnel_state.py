"""Tunnel sessions: SA lifecycle events joined into tunnels, with their rekeys, IPsec SAs,
closes and flapping peers. The state of the ``tunnels`` plugin (docs/tunnels.md).

One :class:`Tracker` per process. It reads the events of a batch before redaction (the
enrich stage), annotates each lifecycle event in place with ``clavister.tunnel.*``, and
queues the summary and alert events it makes for the plugin to hand over in
``ikefilter_derive``. Times are the events' own (``@timestamp``), never the clock: a
replayed day gives the same report as the live one.

Keys: an IKE SA by its SPI pair (``local:remote``), followed across rekeys (616 carries the
old and new pairs); an IPsec SA by ``inbound:outbound`` (628 carries the old pair), tied to
its IKE SA by the IKE SPIs it carries; a peer by local address, remote address and remote
identity; an address-pool address by the IPsec SA whose remote selector is that address.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import time
from collections import OrderedDict
from datetime import datetime

import msgspec

from . import ecs
from .severity import LEVELS

log = logging.getLogger("ikefilter")

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
    """Nanoseconds since the epoch as RFC 3339 UTC, to the millisecond when not whole."""
    seconds, frac = divmod(ns, NS)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{frac // 1_000_000:03d}Z" if frac else f"{text}Z"


def _pair(a: str | None, b: str | None) -> str | None:
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


class Tracker:
    """Tunnels, peers and the events made of them.

    :param flap_count: tunnel downs of one peer within ``flap_window`` that make it flapping.
    :param flap_window: seconds.
    :param max_tunnels: open tunnels tracked at most; the least recently seen is evicted
        (summed up with ``close_reason: "evicted"``, counted in ``tunnels_evicted``).
    :param idle_ttl: seconds a tunnel may stay silent before it is closed as ``idle``.
    """

    def __init__(self, flap_count: int = 3, flap_window: int = 600, max_tunnels: int = 100_000,
                 idle_ttl: int = 90_000):
        self.flap_count = flap_count
        self.flap_window = flap_window * NS
        self.max_tunnels = max_tunnels
        self.idle_ttl = idle_ttl * NS
        self.tunnels: OrderedDict[str, Tunnel] = OrderedDict()  # by id, least recent first
        self.by_ike: dict[str, Tunnel] = {}
        self.by_ipsec: dict[str, Tunnel] = {}
        self.by_pool: dict[str, Tunnel] = {}
        self.pool_pending: OrderedDict[str, int] = OrderedDict()  # acquired, no SA yet
        self.closed: OrderedDict[str, str] = OrderedDict()  # SA pairs of closed tunnels -> id
        self.peers: OrderedDict[tuple, Peer] = OrderedDict()
        self.flapping: dict[tuple, int] = {}  # peer -> tag its events until (ns)
        self.expiry: list[tuple[int, str]] = []  # heap of (due, id), refreshed lazily
        self.now = 0
        self.pending: list[ecs.Event] = []
        self.counts = Counts()
        self._handlers = {
            "ike-up": self._ike_up, "ike-rekey": self._ike_rekey, "ike-down": self._ike_down,
            "ike-failure": self._ike_failure, "child-up": self._child_up,
            "child-rekey": self._child_rekey, "child-down": self._child_down,
            "child-failure": self._child_failure, "user": self._user, "pool": self._pool,
            "pool-acquired": self._pool_acquired, "pool-released": self._pool_released,
        }

    # -- the batch --------------------------------------------------------------------------

    def observe(self, events: list[ecs.Event]) -> None:
        """Join each lifecycle event of the batch into its tunnel and annotate it."""
        roles, handlers = ROLES, self._handlers
        head, base = None, 0  # the second of the last time read: most events share it
        for ev in events:
            role = roles.get(ev.event.code)
            if role is None or ev.clavister is None:
                continue
            stamp = ev.timestamp
            if stamp[:19] == head and len(stamp) == 20:
                t = base
            else:
                t = to_ns(stamp)
                if t is None:
                    continue
                if len(stamp) == 20:
                    head, base = stamp[:19], t
            if t > self.now:
                self.now = t
                if self.expiry and self.expiry[0][0] <= t:
                    self._expire(t)
            handlers[role](ev, t)
            if self.flapping:
                self._tag_flapping(ev, t)

    def take(self) -> list[ecs.Event]:
        """The summaries and alerts made since the last call."""
        made, self.pending = self.pending, []
        return made

    # -- IKE SAs ----------------------------------------------------------------------------

    def _ike_up(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        key = _pair(ike.local_spi, ike.remote_spi) if ike is not None else None
        if key is None:
            return
        tun = self.by_ike.get(key)
        if tun is None:
            if key in self.closed:
                self._mark(ev, self.closed[key], CLOSED, out_of_order=True)
                return
            tun = self._open(key, ev, t, partial=False)
            self._mark(ev, tun.id, UP, tunnel=tun)
            return
        # The establishment of a tunnel first seen from its middle (a rekey or an IPsec SA
        # that came first): its start is known now.
        late = tun.partial or t < tun.start
        if tun.partial or t < tun.start:
            tun.start = min(tun.start, t) if not tun.partial else t
            tun.partial = False
        self._learn(tun, ev)
        self._touch(tun, t)
        self._mark(ev, tun.id, UP, tunnel=tun, out_of_order=late or None)

    def _ike_rekey(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        if ike is None:
            return
        old = _pair(ike.old_local_spi, ike.old_remote_spi)
        new = _pair(ike.local_spi, ike.remote_spi)
        if new is None:
            return
        tun = (self.by_ike.get(old) if old else None) or self.by_ike.get(new)
        if tun is None:
            gone = self.closed.get(old) if old else None
            if gone is not None or new in self.closed:
                self._mark(ev, gone or self.closed[new], CLOSED, out_of_order=True)
                return
            # A rekey before its establishment: the tunnel is seen from its middle.
            tun = self._open(old or new, ev, t, partial=True)
            if old:
                self._rekey(tun, old, new)
            self._mark(ev, tun.id, UP, tunnel=tun, out_of_order=True)
            return
        if tun.ike == old:
            self._rekey(tun, old, new)
        self._learn(tun, ev)
        self._touch(tun, t)
        self._mark(ev, tun.id, UP, tunnel=tun)

    def _rekey(self, tun: Tunnel, old: str, new: str) -> None:
        if tun.old_ike is not None and tun.old_ike != old:
            self.by_ike.pop(tun.old_ike, None)
        tun.old_ike, tun.ike = old, new
        self.by_ike[old] = self.by_ike[new] = tun
        tun.rekeys += 1

    def _ike_down(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        key = _pair(ike.local_spi, ike.remote_spi) if ike is not None else None
        reason = CLOSE_REASON[ev.event.code]
        tun = self.by_ike.get(key) if key else None
        if tun is None:
            gone = self.closed.get(key) if key else None
            # A delete of an SA never seen: its tunnel still went down.
            self._mark(ev, gone, CLOSED, out_of_order=gone is None)
            if gone is None and reason in DOWN:
                self._down(self._event_peer(ev), t, None, ev)
            return
        if key != tun.ike and reason == "deleted":
            # The SA a rekey replaced, deleted after it: the tunnel goes on.
            self._touch(tun, t)
            self._mark(ev, tun.id, UP, tunnel=tun)
            return
        self._learn(tun, ev)
        tun.last = max(tun.last, t)
        self._mark(ev, tun.id, CLOSED, tunnel=tun)
        ev.event.duration = tun.last - tun.start
        self._close(tun, reason, tun.last)

    def _ike_failure(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        key = _pair(ike.local_spi, ike.remote_spi) if ike is not None else None
        tun = self.by_ike.get(key) if key else None
        if tun is None:
            self._mark(ev, self.closed.get(key) if key else None, FAILED)
            return
        self._touch(tun, t)
        self._mark(ev, tun.id, UP, tunnel=tun)

    # -- IPsec SAs --------------------------------------------------------------------------

    def _child_keys(self, ev: ecs.Event) -> tuple[str | None, str | None, str | None]:
        """(this IPsec SA's pair, the pair it replaced, its IKE SA's pair)."""
        ipsec, ike = ev.clavister.ipsec, ev.clavister.ike
        child = old = parent = None
        if ipsec is not None:
            child = _pair(ipsec.inbound_spi, ipsec.outbound_spi)
            old = _pair(ipsec.old_inbound_spi, ipsec.old_outbound_spi)
        if ike is not None:
            parent = _pair(ike.local_spi, ike.remote_spi)
        return child, old, parent

    def _child_tunnel(self, ev: ecs.Event, t: int, *keys: str | None) -> Tunnel | None:
        """The tunnel of an IPsec SA event; a partial one opened from its IKE SA's pair when
        none is known (the IPsec SA came before its IKE SA, or from a tunnel's middle)."""
        for key in keys:
            if key:
                tun = self.by_ipsec.get(key) or self.by_ike.get(key)
                if tun is not None:
                    return tun
        parent = keys[-1]
        gone = next((self.closed[k] for k in keys if k and k in self.closed), None)
        if gone is not None or parent is None:
            # A late line of a closed tunnel, or an IPsec SA of an IKE SA never named.
            self._mark(ev, gone, CLOSED if gone else None, out_of_order=gone is None)
            return None
        tun = self._open(parent, ev, t, partial=True)
        self._mark(ev, tun.id, UP, out_of_order=True)  # the IPsec SA before its IKE SA
        return tun

    def _child_up(self, ev: ecs.Event, t: int) -> None:
        child, _, parent = self._child_keys(ev)
        tun = self._child_tunnel(ev, t, child, parent)
        if tun is None:
            return
        if child and child not in tun.children:
            tun.children.append(child)
            self.by_ipsec[child] = tun
            tun.ipsec_sas += 1
            self._pool_join(tun, ev)
        self._touch(tun, t)
        self._mark(ev, tun.id, UP, tunnel=tun, out_of_order=_flagged(ev))

    def _child_rekey(self, ev: ecs.Event, t: int) -> None:
        child, old, parent = self._child_keys(ev)
        tun = self._child_tunnel(ev, t, old, child, parent)
        if tun is None:
            return
        if child and child not in tun.children:
            if old in tun.children:
                tun.children.remove(old)
                self.by_ipsec.pop(old, None)
            else:
                tun.ipsec_sas += 1  # an IPsec SA whose creation was not seen
            tun.children.append(child)
            self.by_ipsec[child] = tun
            tun.ipsec_rekeys += 1
        self._touch(tun, t)
        self._mark(ev, tun.id, UP, tunnel=tun, out_of_order=_flagged(ev))

    def _child_down(self, ev: ecs.Event, t: int) -> None:
        child, _, parent = self._child_keys(ev)
        tun = self._child_tunnel(ev, t, child, parent)
        if tun is None:
            return
        if child in tun.children:
            tun.children.remove(child)
            self.by_ipsec.pop(child, None)
        self._touch(tun, t)
        self._mark(ev, tun.id, UP, tunnel=tun, out_of_order=_flagged(ev))

    def _child_failure(self, ev: ecs.Event, t: int) -> None:
        child, _, parent = self._child_keys(ev)
        tun = next((self.by_ipsec.get(k) or self.by_ike.get(k) for k in (child, parent)
                    if k and (k in self.by_ipsec or k in self.by_ike)), None)
        if tun is None:
            self._mark(ev, None, FAILED)
            return
        self._touch(tun, t)
        self._mark(ev, tun.id, UP, tunnel=tun)

    # -- users and pool addresses ---------------------------------------------------------

    def _user(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        key = _pair(ike.local_spi, ike.remote_spi) if ike is not None else None
        tun = self.by_ike.get(key) if key else None
        if tun is None:
            self._mark(ev, self.closed.get(key) if key else None, None)
            return
        if ev.user is not None:
            tun.user = ev.user.name
        self._touch(tun, t)
        self._mark(ev, tun.id, UP, tunnel=tun)

    def _pool_address(self, ev: ecs.Event) -> str | None:
        pool = ev.clavister.ip_pool
        return pool.address if pool is not None else None

    def _pool(self, ev: ecs.Event, t: int) -> None:
        tun = self.by_pool.get(self._pool_address(ev) or "")
        if tun is not None:
            self._touch(tun, t)
            self._mark(ev, tun.id, UP, tunnel=tun)

    def _pool_acquired(self, ev: ecs.Event, t: int) -> None:
        address = self._pool_address(ev)
        if address is None:
            return
        if address in self.by_pool:
            self._pool(ev, t)
            return
        self.pool_pending[address] = t
        self.pool_pending.move_to_end(address)
        if len(self.pool_pending) > self.max_tunnels:
            self.pool_pending.popitem(last=False)

    def _pool_released(self, ev: ecs.Event, t: int) -> None:
        address = self._pool_address(ev)
        self.pool_pending.pop(address or "", None)
        tun = self.by_pool.pop(address or "", None)
        if tun is not None:
            self._touch(tun, t)
            self._mark(ev, tun.id, UP, tunnel=tun)

    def _pool_join(self, tun: Tunnel, ev: ecs.Event) -> None:
        """An address handed out by a pool is the remote selector of the client's IPsec SA."""
        if not self.pool_pending:
            return
        ts = ev.clavister.ipsec.remote_ts or ""
        address = ts[:-3] if ts.endswith("/32") else ts[:-4] if ts.endswith("/128") else None
        if address is not None and self.pool_pending.pop(address, None) is not None:
            tun.pool_address = address
            self.by_pool[address] = tun

    # -- tunnels ----------------------------------------------------------------------------

    def _open(self, key: str, ev: ecs.Event, t: int, partial: bool) -> Tunnel:
        tun = Tunnel(id=tunnel_id(key), ike=key, start=t, last=t, partial=partial)
        self._learn(tun, ev)
        self.tunnels[tun.id] = tun
        self.by_ike[key] = tun
        heapq.heappush(self.expiry, (t + self._limit(tun), tun.id))
        self.counts.tunnels_opened += 1
        if partial:
            self.counts.tunnels_partial += 1
        while len(self.tunnels) > self.max_tunnels:
            _, oldest = self.tunnels.popitem(last=False)
            self.counts.tunnels_evicted += 1
            self._close(oldest, "evicted", oldest.last, listed=False)
        if len(self.expiry) > 2 * len(self.tunnels) + 1024:
            self.expiry = [(x.last + self._limit(x), x.id) for x in self.tunnels.values()]
            heapq.heapify(self.expiry)
        return tun

    def _learn(self, tun: Tunnel, ev: ecs.Event) -> None:
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
            initiator = ike.initiator if ike is not None else None
            local, remote = (ev.source, ev.destination) if initiator else \
                (ev.destination, ev.source)
            if remote is not None and remote.ip is not None:
                tun.remote_ip, tun.remote_port = remote.ip, remote.port
            if local is not None and local.ip is not None:
                tun.local_ip, tun.local_port = local.ip, local.port
        if ev.observer is not None and ev.observer.hostname:
            tun.host = ev.observer.hostname

    def _limit(self, tun: Tunnel) -> int:
        if tun.rekey_time:
            return min(self.idle_ttl, 2 * tun.rekey_time * NS + IDLE_GRACE)
        return self.idle_ttl

    def _touch(self, tun: Tunnel, t: int) -> None:
        if t > tun.last:
            tun.last = t
        self.tunnels.move_to_end(tun.id)

    def _expire(self, now: int) -> None:
        """Close the tunnels silent past their limit: ``idle``, ending at their last event."""
        heap = self.expiry
        while heap and heap[0][0] <= now:
            _, tid = heapq.heappop(heap)
            tun = self.tunnels.get(tid)
            if tun is None:
                continue
            due = tun.last + self._limit(tun)
            if due > now:
                heapq.heappush(heap, (due, tid))
                continue
            self.counts.tunnels_idle += 1
            self._close(tun, "idle", tun.last)

    def _close(self, tun: Tunnel, reason: str, end: int, listed: bool = True) -> None:
        if listed:
            self.tunnels.pop(tun.id, None)
        for key in (tun.ike, tun.old_ike, *tun.children):
            if key is not None:
                if self.by_ike.get(key) is tun:
                    del self.by_ike[key]
                if self.by_ipsec.get(key) is tun:
                    del self.by_ipsec[key]
                self.closed[key] = tun.id
                self.closed.move_to_end(key)
        while len(self.closed) > self.max_tunnels:
            self.closed.popitem(last=False)
        if tun.pool_address is not None and self.by_pool.get(tun.pool_address) is tun:
            del self.by_pool[tun.pool_address]
        self.counts.tunnels_closed += 1
        self.counts.summaries += 1
        self.pending.append(self._summary(tun, reason, end))
        if reason in DOWN:
            self._down(tun.peer(), end, tun, None)

    # -- flapping ---------------------------------------------------------------------------

    def _event_peer(self, ev: ecs.Event) -> tuple[str, str, str]:
        ike = ev.clavister.ike
        initiator = ike.initiator if ike is not None else None
        local, remote = (ev.source, ev.destination) if initiator else (ev.destination, ev.source)
        return (local.ip or "" if local is not None else "",
                remote.ip or "" if remote is not None else "",
                ike.remote_id or "" if ike is not None else "")

    def _down(self, peer: tuple[str, str, str], t: int, tun: Tunnel | None,
              ev: ecs.Event | None) -> None:
        if not peer[1]:
            return
        window = self.flap_window
        peers = self.peers
        # Least recently down first: a peer whose last down left the window is forgotten.
        while peers:
            first = next(iter(peers.values()))
            if first.downs[-1] > t - window:
                break
            peers.popitem(last=False)
        p = self.peers.get(peer)
        if p is None:
            p = self.peers[peer] = Peer()
            if len(self.peers) > self.max_tunnels:
                self.peers.popitem(last=False)
        else:
            self.peers.move_to_end(peer)
        downs = [d for d in p.downs if d > t - window]
        downs.append(t)
        p.downs = downs[-self.flap_count:]
        if len(p.downs) < self.flap_count:
            return
        self.flapping[peer] = t + window
        if p.alerted is None or t - p.alerted >= window:
            p.alerted = t
            self.counts.alerts += 1
            self.pending.append(self._alert(peer, p.downs, tun, ev))

    def _tag_flapping(self, ev: ecs.Event, t: int) -> None:
        tunnel = ev.clavister.tunnel
        tun = self.tunnels.get(tunnel.id) if tunnel is not None and tunnel.id else None
        peer = tun.peer() if tun is not None else self._event_peer(ev)
        until = self.flapping.get(peer)
        if until is None:
            return
        if until >= t:
            ev.tag(TAG_FLAPPING)
        elif until < self.now:
            del self.flapping[peer]

    # -- annotations and the events made ----------------------------------------------------

    def _mark(self, ev: ecs.Event, tid: str | None, state: str | None, *,
              tunnel: Tunnel | None = None, out_of_order: bool | None = None) -> None:
        fields = ecs.Tunnel(id=tid, state=state)
        if tunnel is not None:
            if ev.event.code != "530" or tunnel.partial:
                fields.age = (tunnel.last - tunnel.start) // NS
            fields.partial = tunnel.partial or None
            if state == CLOSED:
                fields.rekeys, fields.ipsec_sas = tunnel.rekeys, tunnel.ipsec_sas
                fields.ipsec_rekeys = tunnel.ipsec_rekeys
        if out_of_order:
            fields.out_of_order = True
            if TAG_OUT_OF_ORDER not in (ev.tags or ()):
                self.counts.out_of_order += 1
            ev.tag(TAG_OUT_OF_ORDER)
        ev.clavister.tunnel = fields

    def _endpoints(self, tun: Tunnel) -> tuple[ecs.Endpoint | None, ecs.Endpoint | None]:
        local = ecs.Endpoint(ip=tun.local_ip, port=tun.local_port) if tun.local_ip else None
        remote = ecs.Endpoint(ip=tun.remote_ip, port=tun.remote_port) if tun.remote_ip else None
        return (local, remote) if tun.initiator else (remote, local)

    def _common(self, tun: Tunnel | None, peer: tuple[str, str, str], stamp: str,
                fields: ecs.EventFields, message: str) -> ecs.Event:
        if tun is not None:
            source, destination = self._endpoints(tun)
            ips = [ip for ip in (tun.local_ip, tun.remote_ip, tun.pool_address) if ip]
            users = [u for u in (tun.local_id, tun.remote_id, tun.user) if u]
            ike = ecs.Ike(local_id=tun.local_id, remote_id=tun.remote_id,
                          local_spi=tun.ike.partition(":")[0],
                          remote_spi=tun.ike.partition(":")[2], initiator=tun.initiator,
                          algorithms=tun.algorithms, version=tun.version,
                          rekey_time=tun.rekey_time)
            host = tun.host
        else:
            local, remote, rid = peer
            source = ecs.Endpoint(ip=remote) if remote else None
            destination = ecs.Endpoint(ip=local) if local else None
            ips = [ip for ip in (local, remote) if ip]
            users = [rid] if rid else []
            ike = ecs.Ike(remote_id=rid or None)
            host = None
        family = "ipv6" if any(":" in ip for ip in ips[:2]) else "ipv4"
        return ecs.Event(
            timestamp=stamp, event=fields, message=message,
            log=ecs.Log(level=LEVELS[fields.severity]), observer=ecs.observer(host),
            source=source, destination=destination,
            network=ecs.Network(transport="udp", protocol="ike", type=family),
            user=ecs.User(tun.user) if tun is not None and tun.user else None,
            related=ecs.Related(ip=list(dict.fromkeys(ips)) or None,
                                user=list(dict.fromkeys(users)) or None)
            if ips or users else None,
            tags=["clavister", "ike"],
            clavister=ecs.Clavister(ike=ike, ip_pool=ecs.IpPool(address=tun.pool_address)
                                    if tun is not None and tun.pool_address else None),
            ecs=ecs.ECS)

    def _summary(self, tun: Tunnel, reason: str, end: int) -> ecs.Event:
        stamp = to_text(end)
        duration = end - tun.start
        fields = ecs.EventFields(
            "state", "clavister", DATASET, action="tunnel-summary",
            category=["network", "session"], type=["end"], severity=6,
            start=to_text(tun.start), end=stamp, duration=duration)
        lower = " at least" if tun.partial else ""
        message = (f"IKE/IPsec tunnel closed ({reason}) after{lower} {_span(duration)}: "
                   f"{_n(tun.rekeys, 'IKE rekey')}, {_n(tun.ipsec_sas, 'IPsec SA')}.")
        ev = self._common(tun, tun.peer(), stamp, fields, message)
        ev.clavister.tunnel = ecs.Tunnel(
            id=tun.id, state=CLOSED, age=duration // NS, rekeys=tun.rekeys,
            ipsec_sas=tun.ipsec_sas, ipsec_rekeys=tun.ipsec_rekeys, close_reason=reason,
            partial=tun.partial or None)
        return ev

    def _alert(self, peer: tuple[str, str, str], downs: list[int], tun: Tunnel | None,
               ev: ecs.Event | None) -> ecs.Event:
        t = downs[-1]
        fields = ecs.EventFields(
            "alert", "clavister", DATASET, action="tunnel-flapping", category=["network"],
            type=["info"], outcome="failure", severity=4, start=to_text(downs[0]),
            end=to_text(t), duration=t - downs[0])
        message = (f"IKE peer's tunnels went down {len(downs)} times in "
                   f"{_span(t - downs[0])} (flapping: {self.flap_count} in "
                   f"{_span(self.flap_window)}).")
        alert = self._common(tun, peer, to_text(t), fields, message)
        if tun is None and ev is not None and ev.observer is not None:
            alert.observer = ecs.observer(ev.observer.hostname)
        alert.clavister.tunnel = ecs.Tunnel(id=tun.id if tun is not None else None,
                                            flaps=len(downs))
        return alert

    # -- the snapshot -----------------------------------------------------------------------

    def save(self, path: str) -> None:
        """Write the open tunnels and recent peer downs to ``path``, atomically, mode 0600."""
        snap = Snapshot(version=SNAPSHOT_VERSION, saved=to_text(time.time_ns()), now=self.now,
                        tunnels=list(self.tunnels.values()),
                        peers=[(k, p) for k, p in self.peers.items()])
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

    def load(self, path: str) -> int:
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
        except ValueError as exc:  # msgspec's DecodeError and ValidationError among them
            # The type only: the text may quote the file's addresses and identities.
            why = str(exc) if type(exc) is ValueError else type(exc).__name__
            log.warning("tunnel snapshot %s ignored, it cannot be read (%s): tunnels open"
                        " before this start are seen from their middle", path, why)
            return 0
        self.now = max(self.now, snap.now)
        for tun in snap.tunnels[-self.max_tunnels:]:
            self.tunnels[tun.id] = tun
            for key in (tun.ike, tun.old_ike):
                if key is not None:
                    self.by_ike[key] = tun
            for key in tun.children:
                self.by_ipsec[key] = tun
            if tun.pool_address is not None:
                self.by_pool[tun.pool_address] = tun
        self.expiry = [(x.last + self._limit(x), x.id) for x in self.tunnels.values()]
        heapq.heapify(self.expiry)
        for key, peer in snap.peers[-self.max_tunnels:]:
            self.peers[tuple(key)] = peer
        return len(self.tunnels)


def _flagged(ev: ecs.Event) -> bool | None:
    return True if ev.tags is not None and TAG_OUT_OF_ORDER in ev.tags else None


def _n(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def _span(ns: int) -> str:
    seconds = ns // NS
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "min"))
             if v] + ([f"{seconds}s"] if seconds or not (days or hours or minutes) else [])
    return " ".join(parts)
