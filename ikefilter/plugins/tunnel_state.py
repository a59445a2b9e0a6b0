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

import heapq
import logging
from collections import OrderedDict

from .. import ecs
from . import tunnel_snapshot
from .tunnel_events import alert, mark, summary
from .tunnel_flapping import Flaps
from .tunnel_model import (
    CLOSE_REASON,
    CLOSED,
    DOWN,
    FAILED,
    IDLE_GRACE,
    NS,
    ROLES,
    TAG_FLAPPING,
    TAG_OUT_OF_ORDER,
    UP,
    Counts,
    Tunnel,
    event_peer,
    learn,
    pair,
    to_ns,
    tunnel_id,
)

log = logging.getLogger("ikefilter")

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
        self.max_tunnels = max_tunnels
        self.idle_ttl = idle_ttl * NS
        self.tunnels: OrderedDict[str, Tunnel] = OrderedDict()  # by id, least recent first
        self.by_ike: dict[str, Tunnel] = {}
        self.by_ipsec: dict[str, Tunnel] = {}
        self.by_pool: dict[str, Tunnel] = {}
        self.pool_pending: OrderedDict[str, int] = OrderedDict()  # acquired, no SA yet
        self.closed: OrderedDict[str, str] = OrderedDict()  # SA pairs of closed tunnels -> id
        self.flaps = Flaps(flap_count, flap_window * NS, max_tunnels)
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
        times: dict[str, int | None] = {}  # a batch's events share few times
        for ev in events:
            role = roles.get(ev.event.code)
            if role is None or ev.clavister is None:
                continue
            stamp = ev.timestamp
            t = times.get(stamp, -1)
            if t == -1:
                t = times[stamp] = to_ns(stamp)
            if t is None:
                continue
            if t > self.now:
                self.now = t
                if self.expiry and self.expiry[0][0] <= t:
                    self._expire(t)
            handlers[role](ev, t)
            if self.flaps.peers:
                self._tag_flapping(ev, t)

    def take(self) -> list[ecs.Event]:
        """The summaries and alerts made since the last call."""
        made, self.pending = self.pending, []
        return made

    # -- IKE SAs ----------------------------------------------------------------------------

    def _ike_up(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        key = pair(ike.local_spi, ike.remote_spi) if ike is not None else None
        if key is None:
            return
        tun = self.by_ike.get(key)
        if tun is None:
            if key in self.closed:
                mark(self.counts, ev, self.closed[key], CLOSED, out_of_order=True)
                return
            tun = self._open(key, ev, t, partial=False)
            mark(self.counts, ev, tun.id, UP, tunnel=tun)
            return
        # The establishment of a tunnel first seen from its middle (a rekey or an IPsec SA
        # that came first): its start is known now.
        late = tun.partial or t < tun.start
        if late:
            tun.start, tun.partial = t, False
        learn(tun, ev)
        self._touch(tun, t)
        mark(self.counts, ev, tun.id, UP, tunnel=tun, out_of_order=late or None)

    def _ike_rekey(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        if ike is None:
            return
        old = pair(ike.old_local_spi, ike.old_remote_spi)
        new = pair(ike.local_spi, ike.remote_spi)
        if new is None:
            return
        tun = (self.by_ike.get(old) if old else None) or self.by_ike.get(new)
        if tun is None:
            gone = self.closed.get(old) if old else None
            if gone is not None or new in self.closed:
                mark(self.counts, ev, gone or self.closed[new], CLOSED, out_of_order=True)
                return
            # A rekey before its establishment: the tunnel is seen from its middle.
            tun = self._open(old or new, ev, t, partial=True)
            if old:
                self._rekey(tun, old, new)
            mark(self.counts, ev, tun.id, UP, tunnel=tun, out_of_order=True)
            return
        if tun.ike == old:
            self._rekey(tun, old, new)
        learn(tun, ev)
        self._touch(tun, t)
        mark(self.counts, ev, tun.id, UP, tunnel=tun)

    def _rekey(self, tun: Tunnel, old: str, new: str) -> None:
        if tun.old_ike is not None and tun.old_ike != old:
            self.by_ike.pop(tun.old_ike, None)
        tun.old_ike, tun.ike = old, new
        self.by_ike[old] = self.by_ike[new] = tun
        tun.rekeys += 1

    def _ike_down(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        key = pair(ike.local_spi, ike.remote_spi) if ike is not None else None
        reason = CLOSE_REASON[ev.event.code]
        tun = self.by_ike.get(key) if key else None
        if tun is None:
            gone = self.closed.get(key) if key else None
            # A delete of an SA never seen: its tunnel still went down.
            mark(self.counts, ev, gone, CLOSED, out_of_order=gone is None)
            if gone is None and reason in DOWN:
                self._down(event_peer(ev), t, None, ev)
            return
        if key != tun.ike and reason == "deleted":
            # The SA a rekey replaced, deleted after it: the tunnel goes on.
            self._touch(tun, t)
            mark(self.counts, ev, tun.id, UP, tunnel=tun)
            return
        learn(tun, ev)
        tun.last = max(tun.last, t)
        mark(self.counts, ev, tun.id, CLOSED, tunnel=tun)
        ev.event.duration = tun.last - tun.start
        self._close(tun, reason, tun.last)

    def _ike_failure(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        key = pair(ike.local_spi, ike.remote_spi) if ike is not None else None
        tun = self.by_ike.get(key) if key else None
        if tun is None:
            mark(self.counts, ev, self.closed.get(key) if key else None, FAILED)
            return
        self._touch(tun, t)
        mark(self.counts, ev, tun.id, UP, tunnel=tun)

    # -- IPsec SAs --------------------------------------------------------------------------

    def _child_keys(self, ev: ecs.Event) -> tuple[str | None, str | None, str | None]:
        """(this IPsec SA's pair, the pair it replaced, its IKE SA's pair)."""
        ipsec, ike = ev.clavister.ipsec, ev.clavister.ike
        child = old = parent = None
        if ipsec is not None:
            child = pair(ipsec.inbound_spi, ipsec.outbound_spi)
            old = pair(ipsec.old_inbound_spi, ipsec.old_outbound_spi)
        if ike is not None:
            parent = pair(ike.local_spi, ike.remote_spi)
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
            mark(self.counts, ev, gone, CLOSED if gone else None, out_of_order=gone is None)
            return None
        tun = self._open(parent, ev, t, partial=True)
        mark(self.counts, ev, tun.id, UP, out_of_order=True)  # the IPsec SA before its IKE SA
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
        mark(self.counts, ev, tun.id, UP, tunnel=tun, out_of_order=_flagged(ev))

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
        mark(self.counts, ev, tun.id, UP, tunnel=tun, out_of_order=_flagged(ev))

    def _child_down(self, ev: ecs.Event, t: int) -> None:
        child, _, parent = self._child_keys(ev)
        tun = self._child_tunnel(ev, t, child, parent)
        if tun is None:
            return
        if child in tun.children:
            tun.children.remove(child)
            self.by_ipsec.pop(child, None)
        self._touch(tun, t)
        mark(self.counts, ev, tun.id, UP, tunnel=tun, out_of_order=_flagged(ev))

    def _child_failure(self, ev: ecs.Event, t: int) -> None:
        child, _, parent = self._child_keys(ev)
        tun = next((self.by_ipsec.get(k) or self.by_ike.get(k) for k in (child, parent)
                    if k and (k in self.by_ipsec or k in self.by_ike)), None)
        if tun is None:
            mark(self.counts, ev, None, FAILED)
            return
        self._touch(tun, t)
        mark(self.counts, ev, tun.id, UP, tunnel=tun)

    # -- users and pool addresses ---------------------------------------------------------

    def _user(self, ev: ecs.Event, t: int) -> None:
        ike = ev.clavister.ike
        key = pair(ike.local_spi, ike.remote_spi) if ike is not None else None
        tun = self.by_ike.get(key) if key else None
        if tun is None:
            mark(self.counts, ev, self.closed.get(key) if key else None, None)
            return
        user = ev.user
        if user is not None:  # the identity as sent: an e-mail address, DOMAIN\name, a name
            tun.user = user.email or (f"{user.domain}\\{user.name}" if user.domain and user.name
                                      else user.name)
        self._touch(tun, t)
        mark(self.counts, ev, tun.id, UP, tunnel=tun)

    def _pool_address(self, ev: ecs.Event) -> str | None:
        pool = ev.clavister.ip_pool
        return pool.address if pool is not None else None

    def _pool(self, ev: ecs.Event, t: int) -> None:
        tun = self.by_pool.get(self._pool_address(ev) or "")
        if tun is not None:
            self._touch(tun, t)
            mark(self.counts, ev, tun.id, UP, tunnel=tun)

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
            mark(self.counts, ev, tun.id, UP, tunnel=tun)

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
        learn(tun, ev)
        self.tunnels[tun.id] = tun
        self.by_ike[key] = tun
        heapq.heappush(self.expiry, (t + self.limit(tun), tun.id))
        self.counts.tunnels_opened += 1
        if partial:
            self.counts.tunnels_partial += 1
        while len(self.tunnels) > self.max_tunnels:
            _, oldest = self.tunnels.popitem(last=False)
            self.counts.tunnels_evicted += 1
            self._close(oldest, "evicted", oldest.last, listed=False)
        if len(self.expiry) > 2 * len(self.tunnels) + 1024:
            self.rebuild_expiry()
        return tun

    def rebuild_expiry(self) -> None:
        """The expiry heap made again from the tunnels held (its stale entries gone)."""
        self.expiry = [(x.last + self.limit(x), x.id) for x in self.tunnels.values()]
        heapq.heapify(self.expiry)

    def limit(self, tun: Tunnel) -> int:
        """How long ``tun`` may stay silent before it counts as gone, in nanoseconds."""
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
            due = tun.last + self.limit(tun)
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
        self.pending.append(summary(tun, reason, end))
        if reason in DOWN:
            self._down(tun.peer(), end, tun, None)

    # -- flapping ---------------------------------------------------------------------------

    def _down(self, peer: tuple[str, str, str], t: int, tun: Tunnel | None,
              ev: ecs.Event | None) -> None:
        downs = self.flaps.down(peer, t)
        if downs is not None:
            self.counts.alerts += 1
            self.pending.append(alert(peer, downs, tun, ev, self.flaps.count,
                                      self.flaps.window))

    def _tag_flapping(self, ev: ecs.Event, t: int) -> None:
        tunnel = ev.clavister.tunnel
        tun = self.tunnels.get(tunnel.id) if tunnel is not None and tunnel.id else None
        if self.flaps.flapping(tun.peer() if tun is not None else event_peer(ev), t):
            ev.tag(TAG_FLAPPING)

    # -- the snapshot -----------------------------------------------------------------------

    def save(self, path: str) -> None:
        """Write the open tunnels and recent peer downs to ``path``, atomically, mode 0600."""
        tunnel_snapshot.save(self, path)

    def load(self, path: str) -> int:
        """Take up the tunnels of a snapshot (:func:`.tunnel_snapshot.load`)."""
        return tunnel_snapshot.load(self, path)


def _flagged(ev: ecs.Event) -> bool | None:
    return True if ev.tags is not None and TAG_OUT_OF_ORDER in ev.tags else None
