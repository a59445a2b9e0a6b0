"""The events the tunnels plugin makes: a tunnel's summary when it closes, and a flapping
peer's alert."""

from __future__ import annotations

from .. import ecs
from ..identity import user_fields
from ..severity import LEVELS
from .tunnel_model import (
    CLOSED,
    DATASET,
    NS,
    TAG_OUT_OF_ORDER,
    Counts,
    Tunnel,
    host_of,
    to_text,
)


def _endpoints(tun: Tunnel) -> tuple[ecs.Endpoint | None, ecs.Endpoint | None]:
    local = ecs.Endpoint(ip=tun.local_ip, port=tun.local_port) if tun.local_ip else None
    remote = ecs.Endpoint(ip=tun.remote_ip, port=tun.remote_port) if tun.remote_ip else None
    return (local, remote) if tun.initiator else (remote, local)

def _common(tun: Tunnel | None, peer: tuple[str, str, str], stamp: str,
            fields: ecs.EventFields, message: str) -> ecs.Event:
    if tun is not None:
        source, destination = _endpoints(tun)
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
        user=ecs.User(*user_fields(tun.user, always=True))
        if tun is not None and tun.user else None,
        related=ecs.Related(ip=list(dict.fromkeys(ips)) or None,
                            user=list(dict.fromkeys(users)) or None)
        if ips or users else None,
        tags=["clavister", "ike"],
        clavister=ecs.Clavister(ike=ike, ip_pool=ecs.IpPool(address=tun.pool_address)
                                if tun is not None and tun.pool_address else None),
        ecs=ecs.ECS)

def summary(tun: Tunnel, reason: str, end: int) -> ecs.Event:
    """The summary event of a tunnel that closed at ``end`` for ``reason``."""
    stamp = to_text(end)
    duration = end - tun.start
    fields = ecs.EventFields(
        "state", "clavister", DATASET, action="tunnel-summary",
        category=["network", "session"], type=["end"], severity=6,
        start=to_text(tun.start), end=stamp, duration=duration)
    lower = " at least" if tun.partial else ""
    message = (f"IKE/IPsec tunnel closed ({reason}) after{lower} {_span(duration)}: "
               f"{_n(tun.rekeys, 'IKE rekey')}, {_n(tun.ipsec_sas, 'IPsec SA')}.")
    ev = _common(tun, tun.peer(), stamp, fields, message)
    ev.clavister.tunnel = ecs.Tunnel(
        id=tun.id, state=CLOSED, age=duration // NS, rekeys=tun.rekeys,
        ipsec_sas=tun.ipsec_sas, ipsec_rekeys=tun.ipsec_rekeys, close_reason=reason,
        partial=tun.partial or None)
    return ev

def alert(peer: tuple[str, str, str], downs: list[int], tun: Tunnel | None,
          ev: ecs.Event | None, flap_count: int, flap_window: int) -> ecs.Event:
    """The flapping alert of a peer whose tunnels went down at ``downs``."""
    t = downs[-1]
    fields = ecs.EventFields(
        "alert", "clavister", DATASET, action="tunnel-flapping", category=["network"],
        type=["info"], outcome="failure", severity=4, start=to_text(downs[0]),
        end=to_text(t), duration=t - downs[0])
    message = (f"IKE peer's tunnels went down {len(downs)} times in "
               f"{_span(t - downs[0])} (flapping: {flap_count} in "
               f"{_span(flap_window)}).")
    alert = _common(tun, peer, to_text(t), fields, message)
    if tun is None and ev is not None and ev.observer is not None:
        alert.observer = ecs.observer(host_of(ev))
    alert.clavister.tunnel = ecs.Tunnel(id=tun.id if tun is not None else None,
                                        flaps=len(downs))
    return alert


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


def mark(counts: Counts, ev: ecs.Event, tid: str | None, state: str | None, *,
         tunnel: Tunnel | None = None, out_of_order: bool | None = None) -> None:
    """Annotate a lifecycle event with its tunnel (``clavister.tunnel.*``)."""
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
            counts.out_of_order += 1
        ev.tag(TAG_OUT_OF_ORDER)
    ev.clavister.tunnel = fields
