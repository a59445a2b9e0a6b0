"""Turn a :class:`~ikefilter.wire.Decoded` line into an ECS :class:`~ikefilter.ecs.Event`.

Catalog-driven and free of I/O. A value that does not fit its ECS type never lands in the
typed field: it stays under ``clavister.extra`` and the event is tagged.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from . import ecs
from .catalog import Catalog, Message
from .severity import LEVELS
from .wire import Decoded

SeverityDialect = Literal["clavister", "syslog"]

# Wire header keys, kept under clavister.* rather than clavister.extra.
_HEADER_KEYS = frozenset({"prio", "id", "rev", "event", "action"})

# Every parameter name the IKE chapter uses, mapped below. Any other name goes to
# clavister.extra as sent.
KNOWN_PARAMETERS = frozenset({
    "localip", "localport", "remoteip", "remoteport", "srcip", "srcport", "destip", "destport",
    "localid", "remoteid", "localikespi", "remoteikespi", "oldlocalikespi", "oldremoteikespi",
    "initiator", "algorithms", "rekeytime", "reauthtime", "ikeversion", "reason", "iface",
    "recviface", "inboundspi", "outboundspi", "oldinboundspi", "oldoutboundspi", "proto",
    "localts", "remotets", "lifetime", "ip", "name", "count", "max", "userid",
})
_CONSUMED = _HEADER_KEYS | KNOWN_PARAMETERS

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})
_HEX = frozenset("0123456789abcdef")

_ip_cache: dict[str, str | None] = {}
_IP_CACHE_MAX = 65536


def valid_ip(text: str) -> str | None:
    """The canonical text of an IP address, or None when ``text`` is not one. Cached."""
    try:
        return _ip_cache[text]
    except KeyError:
        pass
    try:
        value: str | None = str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        value = None
    if len(_ip_cache) >= _IP_CACHE_MAX:
        _ip_cache.clear()
    _ip_cache[text] = value
    return value


class _Problems:
    """Collects values that did not fit their type, for clavister.extra and error.message."""

    __slots__ = ("extra", "reasons")

    def __init__(self, extra: dict[str, str]):
        self.extra = extra
        self.reasons: list[str] = []

    def bad(self, name: str, value: str, why: str) -> None:
        self.extra[name] = value
        self.reasons.append(f"{name}: {why}")


def _ip(p: dict[str, str], name: str, probs: _Problems) -> str | None:
    raw = p.get(name)
    if raw is None or raw == "":
        return None
    value = valid_ip(raw)
    if value is None:
        probs.bad(name, raw, "not an IP address")
    return value


def _int(p: dict[str, str], name: str, probs: _Problems, hi: int | None = None) -> int | None:
    raw = p.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        probs.bad(name, raw, "not an integer")
        return None
    if value < 0 or (hi is not None and value > hi):
        probs.bad(name, raw, f"out of range 0-{hi}" if hi is not None else "negative")
        return None
    return value


def _spi(p: dict[str, str], name: str, probs: _Problems) -> str | None:
    raw = p.get(name)
    if raw is None or raw == "":
        return None
    value = raw.strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    if not value or not _HEX.issuperset(value):
        probs.bad(name, raw, "not a hexadecimal SPI")
        return None
    return value


def _bool(p: dict[str, str], name: str, probs: _Problems) -> bool | None:
    raw = p.get(name)
    if raw is None or raw == "":
        return None
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    probs.bad(name, raw, "not a boolean")
    return None


def _str(p: dict[str, str], name: str) -> str | None:
    value = p.get(name)
    return value if value else None


def _any(*values: object) -> bool:
    for v in values:
        if v is not None:
            return True
    return False


class Normalizer:
    """Built once per process from a catalog; :meth:`normalize` is called per event."""

    def __init__(
        self,
        catalog: Catalog,
        severity_dialect: SeverityDialect = "clavister",
        keep_original: bool = True,
    ):
        self.messages: dict[int, Message] = catalog.by_id()
        self.severity_dialect = severity_dialect
        self.keep_original = keep_original

    def severity(self, prio: int | None, pri: int | None, msg: Message | None) -> int | None:
        """WIRE.md: ``prio`` wins (reversed against syslog in Clavister's dialect), then
        the ``<PRI>`` header, then the catalog's default."""
        if prio is not None:
            return 7 - prio if self.severity_dialect == "clavister" else prio
        if pri is not None:
            return pri & 7
        return msg.severity_code if msg is not None else None

    def normalize(self, d: Decoded, now: str) -> ecs.Event:
        p = d.params
        tags = ["clavister", "ike"]
        raw_id = p.get("id")
        msg: Message | None = None
        code: str | None = None
        if raw_id is not None:
            try:
                code = str(int(raw_id))
            except ValueError:
                code = None
            else:
                msg = self.messages.get(int(code))
        extra = {k: v for k, v in p.items() if k not in _CONSUMED}
        if msg is None:
            # Unknown (or missing) ID: decoded generically, every parameter as sent.
            extra.update({k: v for k, v in p.items() if k in KNOWN_PARAMETERS})
        probs = _Problems(extra)
        prio = _int(p, "prio", probs, hi=7)
        sev = self.severity(prio, d.pri, msg)
        event = ecs.Event(
            timestamp=d.time or now,
            event=ecs.event_fields(code=code, severity=sev),
            tags=tags,
            observer=ecs.observer(d.host),
            ecs=ecs.ecs_block(),
        )
        if sev is not None:
            event.log = ecs.Log(level=LEVELS[sev])
        if d.pri is not None and d.pri < 192:
            fac, psev = divmod(d.pri, 8)
            if event.log is None:
                event.log = ecs.Log(level=LEVELS[psev])
            event.log.syslog = ecs.Syslog(
                priority=d.pri,
                facility=ecs.SyslogCode(fac),
                severity=ecs.SyslogCode(psev, LEVELS[psev]),
            )
        if self.keep_original:
            event.event.original = d.original
        clav = ecs.Clavister(
            categories=d.categories,
            prio=prio,
            rev=_str(p, "rev"),
            event=_str(p, "event"),
            action=_str(p, "action"),
        )
        event.clavister = clav
        if raw_id is None:
            event.tag(ecs.TAG_PARSE_FAILURE)
            event.add_error("no id= in the line")
        elif code is None:
            extra["id"] = raw_id
            event.tag(ecs.TAG_PARSE_FAILURE)
            event.add_error(f"id is not a number: {raw_id!r}")
        elif msg is None:
            event.tag(ecs.TAG_UNKNOWN_MESSAGE)
        else:
            self._known(event, clav, msg, p, probs)
        if d.notes:
            event.tag(ecs.TAG_PARSE_FAILURE)
            for note in d.notes:
                event.add_error(note)
        if probs.reasons:
            event.tag(ecs.TAG_INVALID_VALUE)
            event.add_error("; ".join(probs.reasons))
        if extra:
            clav.extra = extra
        return event

    def _known(
        self,
        event: ecs.Event,
        clav: ecs.Clavister,
        msg: Message,
        p: dict[str, str],
        probs: _Problems,
    ) -> None:
        m = msg.ecs
        ev = event.event
        ev.action = m.action
        ev.category = list(m.category)
        ev.type = list(m.type)
        ev.outcome = m.outcome
        ev.reason = _str(p, "reason")
        event.message = msg.message
        if clav.categories is None:
            clav.categories = list(msg.categories)

        local_ip = _ip(p, "localip", probs)
        remote_ip = _ip(p, "remoteip", probs)
        local_port = _int(p, "localport", probs, hi=65535)
        remote_port = _int(p, "remoteport", probs, hi=65535)
        initiator = _bool(p, "initiator", probs)
        src_ip = _ip(p, "srcip", probs)
        dst_ip = _ip(p, "destip", probs)
        src_port = _int(p, "srcport", probs, hi=65535)
        dst_port = _int(p, "destport", probs, hi=65535)
        if _any(local_ip, remote_ip, local_port, remote_port):
            local = ecs.Endpoint(ip=local_ip, port=local_port)
            remote = ecs.Endpoint(ip=remote_ip, port=remote_port)
            # SCHEMA.md role rule: the initiator is the source.
            if initiator:
                event.source, event.destination = local, remote
            else:
                event.source, event.destination = remote, local
        elif _any(src_ip, dst_ip, src_port, dst_port):
            event.source = ecs.Endpoint(ip=src_ip, port=src_port)
            event.destination = ecs.Endpoint(ip=dst_ip, port=dst_port)

        proto = _str(p, "proto")
        pool_ip = _ip(p, "ip", probs)
        ips = [ip for ip in (local_ip, remote_ip, src_ip, dst_ip, pool_ip) if ip is not None]
        if event.source is not None:
            family = None
            if ips:
                family = "ipv6" if ":" in ips[0] else "ipv4"
            if proto:
                event.network = ecs.Network(proto.lower(), "ipsec", family)
            else:
                event.network = ecs.Network("udp", "ike", family)

        userid = _str(p, "userid")
        local_id = _str(p, "localid")
        remote_id = _str(p, "remoteid")
        if userid:
            event.user = ecs.User(userid)
        users = [u for u in (userid, local_id, remote_id) if u]
        if ips or users:
            event.related = ecs.Related(
                ip=list(dict.fromkeys(ips)) or None,
                user=list(dict.fromkeys(users)) or None,
            )

        recviface = _str(p, "recviface")
        if recviface:
            event.observer.ingress = ecs.Ingress(ecs.Interface(recviface))
        clav.iface = _str(p, "iface")

        ike = ecs.Ike(
            local_id=local_id,
            remote_id=remote_id,
            local_spi=_spi(p, "localikespi", probs),
            remote_spi=_spi(p, "remoteikespi", probs),
            old_local_spi=_spi(p, "oldlocalikespi", probs),
            old_remote_spi=_spi(p, "oldremoteikespi", probs),
            initiator=initiator,
            algorithms=_str(p, "algorithms"),
            version=_int(p, "ikeversion", probs),
            rekey_time=_int(p, "rekeytime", probs),
            reauth_time=_int(p, "reauthtime", probs),
        )
        if ike != _EMPTY_IKE:
            clav.ike = ike
        ipsec = ecs.Ipsec(
            inbound_spi=_spi(p, "inboundspi", probs),
            outbound_spi=_spi(p, "outboundspi", probs),
            old_inbound_spi=_spi(p, "oldinboundspi", probs),
            old_outbound_spi=_spi(p, "oldoutboundspi", probs),
            protocol=proto.lower() if proto else None,
            local_ts=_str(p, "localts"),
            remote_ts=_str(p, "remotets"),
            lifetime=_int(p, "lifetime", probs),
        )
        if ipsec != _EMPTY_IPSEC:
            clav.ipsec = ipsec
        pool = ecs.IpPool(_str(p, "name"), pool_ip, _int(p, "count", probs))
        if pool != _EMPTY_POOL:
            clav.ip_pool = pool
        limit_max = _int(p, "max", probs)
        if limit_max is not None:
            clav.limit = ecs.Limit(limit_max)


_EMPTY_IKE = ecs.Ike()
_EMPTY_IPSEC = ecs.Ipsec()
_EMPTY_POOL = ecs.IpPool()
