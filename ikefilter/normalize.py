"""Turn a :class:`~ikefilter.wire.Decoded` line into an ECS :class:`~ikefilter.ecs.Event`.

Catalog-driven and free of I/O. A value that does not fit its ECS type never lands in the
typed field: it stays under ``clavister.extra`` and the event is tagged.
"""

from __future__ import annotations

import ipaddress
import re
import typing
from typing import Annotated, Literal

import msgspec

from . import ecs
from .catalog import Catalog, Message
from .severity import LEVELS
from .wire import Decoded

SeverityDialect = Literal["clavister", "syslog"]

# Wire header keys, kept under clavister.* rather than clavister.extra.
_HEADER_KEYS = frozenset({"prio", "id", "rev", "event", "action"})

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})
_HEX = frozenset("0123456789abcdef")

#: text -> its canonical IP address, or None; read directly where a call costs too much
ip_cache: dict[str, str | None] = {}
_MISS = object()
_IP_CACHE_MAX = 65536
# Longer than any address with brackets, an IPv4 tail and some padding.
_IP_TEXT_MAX = 64


# A dotted quad without leading zeros is already canonical: no need for ipaddress.
# ([0-9], not \d: \d also matches other scripts' digits, which an ip field rejects.)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
_is_ipv4 = _IPV4.fullmatch


def valid_ip(text: str) -> str | None:
    """The canonical text of an IP address, or None when ``text`` is not one. Cached."""
    value = ip_cache.get(text, _MISS)
    if value is not _MISS:
        return value  # type: ignore[return-value]
    if len(text) > _IP_TEXT_MAX:
        return None  # never an address, and never a cache key (65536 long keys: gigabytes)
    if _is_ipv4(text) is not None:
        value = text
    else:
        try:
            value = str(ipaddress.ip_address(text.strip().strip("[]")))
        except ValueError:
            value = None
        if value is not None and "%" in value:
            value = None  # an IPv6 zone index (fe80::1%eth0): an ECS ip field rejects it
    if len(ip_cache) >= _IP_CACHE_MAX:
        ip_cache.clear()
    ip_cache[text] = value
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
    if not raw:
        return None
    value = valid_ip(raw)
    if value is None:
        probs.bad(name, raw, "not an IP address")
    return value


# The largest value a ``long`` field holds: a larger number makes an index refuse the event.
LONG_MAX = 2**63 - 1


def _int(p: dict[str, str], name: str, probs: _Problems, hi: int = LONG_MAX) -> int | None:
    """An integer as msgspec reads one from text, so that both paths agree: JSON number
    syntax with an integral value ("500", "5e2"), never " 500", "+5" or "0500"; "null" in
    any case is no value."""
    raw = p.get(name)
    if not raw:
        return None
    try:
        value = _convert(raw, int | None, strict=False)
    except msgspec.ValidationError:
        probs.bad(name, raw, "not an integer")
        return None
    if value is None:
        return None
    if value < 0 or value > hi:
        probs.bad(name, raw, f"out of range 0-{hi}")
        return None
    return value


_convert = msgspec.convert
_is_spi = re.compile(r"[0-9a-f]+").fullmatch


def _spi(p: dict[str, str], name: str, probs: _Problems) -> str | None:
    raw = p.get(name)
    if not raw:
        return None
    if _is_spi(raw) is not None:
        return raw
    value = raw.strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    if not value or not _HEX.issuperset(value):
        probs.bad(name, raw, "not a hexadecimal SPI")
        return None
    return value


def _bool(p: dict[str, str], name: str, probs: _Problems) -> bool | None:
    """What msgspec reads as a boolean (or as no value: "null"), so that both paths agree;
    else yes/no/on/off too, in any case."""
    raw = p.get(name)
    if not raw:
        return None
    try:
        return _convert(raw, bool | None, strict=False)
    except msgspec.ValidationError:
        pass
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


_Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
_Count = Annotated[int, msgspec.Meta(ge=0, le=LONG_MAX)]
_Spi = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]+\Z")]  # (\Z: "$" takes "ab\n")


class Params(msgspec.Struct, gc=False):
    """Every parameter the catalog knows, typed. Strings are as sent ("" kept)."""

    prio: Annotated[int, msgspec.Meta(ge=0, le=7)] | None = None
    rev: str | None = None
    event: str | None = None
    action: str | None = None
    localip: str | None = None
    remoteip: str | None = None
    localport: _Port | None = None
    remoteport: _Port | None = None
    srcip: str | None = None
    destip: str | None = None
    srcport: _Port | None = None
    destport: _Port | None = None
    localid: str | None = None
    remoteid: str | None = None
    localikespi: _Spi | None = None
    remoteikespi: _Spi | None = None
    oldlocalikespi: _Spi | None = None
    oldremoteikespi: _Spi | None = None
    initiator: bool | None = None
    algorithms: str | None = None
    rekeytime: _Count | None = None
    reauthtime: _Count | None = None
    ikeversion: _Count | None = None
    reason: str | None = None
    iface: str | None = None
    recviface: str | None = None
    inboundspi: _Spi | None = None
    outboundspi: _Spi | None = None
    oldinboundspi: _Spi | None = None
    oldoutboundspi: _Spi | None = None
    proto: str | None = None
    localts: str | None = None
    remotets: str | None = None
    lifetime: _Count | None = None
    ip: str | None = None
    name: str | None = None
    count: _Count | None = None
    max: _Count | None = None
    userid: str | None = None


# Every parameter name the IKE chapter uses: a field of Params. Any other name goes to
# clavister.extra as sent.
KNOWN_PARAMETERS = frozenset(Params.__struct_fields__) - _HEADER_KEYS
_CONSUMED = _HEADER_KEYS | KNOWN_PARAMETERS


def _text(p: dict[str, str], name: str, probs: _Problems) -> str | None:
    return _str(p, name)


def _port(p: dict[str, str], name: str, probs: _Problems) -> int | None:
    return _int(p, name, probs, hi=65535)


def _prio(p: dict[str, str], name: str, probs: _Problems) -> int | None:
    return _int(p, name, probs, hi=7)


_IP_FIELDS = frozenset({"localip", "remoteip", "srcip", "destip", "ip"})


def _exact_typer(name: str, declared: object):
    """The exact conversion of one Params field, from its declared type (``X | None``)."""
    if name in _IP_FIELDS:
        return _ip
    if name == "prio":
        return _prio
    kind = typing.get_args(declared)[0]
    for known, typer in ((_Port, _port), (_Spi, _spi), (_Count, _int), (bool, _bool),
                         (str, _text)):
        if kind is known:
            return typer
    raise TypeError(f"Params.{name}: no exact conversion for {kind!r}")


_EXACT = {
    name: _exact_typer(name, declared)
    for name, declared in typing.get_type_hints(Params, include_extras=True).items()
}


def typed_exact(p: dict[str, str], probs: _Problems) -> Params:
    """Type every known parameter one by one; a value that does not fit goes to extra."""
    return Params(**{name: typed(p, name, probs) for name, typed in _EXACT.items()})




def typed_fast(p: dict[str, str]) -> Params | None:
    """The common case in C: msgspec types every parameter at once. None when any value
    does not fit, or when a value could come out differently from :func:`typed_exact`
    (an empty or non-canonical value); the caller then takes the exact path."""
    try:
        t = _convert(p, Params, strict=False)
    except msgspec.ValidationError:
        return None
    for ip in (t.localip, t.remoteip, t.srcip, t.destip, t.ip):
        if ip is not None and (not ip or valid_ip(ip) != ip):
            return None
    return t


class Normalizer:
    """Built once per process from a catalog; :meth:`normalize` is called per event."""

    def __init__(
        self,
        catalog: Catalog,
        severity_dialect: SeverityDialect = "clavister",
        keep_original: bool = True,
        fast: bool = True,
    ):
        self.messages: dict[int, Message] = catalog.by_id()
        self.severity_dialect = severity_dialect
        self.keep_original = keep_original
        # The msgspec fast path; off only to check it against the exact path.
        self.fast = fast

    def severity(self, prio: int | None, pri: int | None, msg: Message | None) -> int | None:
        """The wire wins: ``prio`` (reversed against syslog in Clavister's dialect), then
        the ``<PRI>`` header, then the catalog's default."""
        if prio is not None:
            return 7 - prio if self.severity_dialect == "clavister" else prio
        if pri is not None:
            return pri & 7
        return msg.severity_code if msg is not None else None

    def normalize(self, d: Decoded, now: str) -> ecs.Event:
        p = d.params
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
        extra = {} if p.keys() <= _CONSUMED else {
            k: v for k, v in p.items() if k not in _CONSUMED
        }
        if msg is None:
            # Unknown (or missing) ID: decoded generically, every parameter as sent.
            extra.update({k: v for k, v in p.items() if k in KNOWN_PARAMETERS})
            p = {k: v for k, v in p.items() if k in _HEADER_KEYS}
        probs = _Problems(extra)
        t = typed_fast(p) if self.fast else None
        if t is None:
            t = typed_exact(p, probs)
        sev = self.severity(t.prio, d.pri, msg)
        event = ecs.Event(
            timestamp=d.time or now,
            event=ecs.event_fields(code=code, severity=sev),
            tags=["clavister", "ike"],
            observer=ecs.observer(d.host),
            ecs=ecs.ecs_block(),
        )
        if sev is not None:
            event.log = ecs.Log(level=LEVELS[sev])
        if d.pri is not None and d.pri < 192:
            if event.log is None:
                event.log = ecs.Log(level=LEVELS[d.pri & 7])
            event.log.syslog = ecs.SYSLOG[d.pri]
        if self.keep_original:
            event.event.original = d.original
        clav = ecs.Clavister(
            categories=d.categories,
            prio=t.prio,
            rev=t.rev or None,
            event=t.event or None,
            action=t.action or None,
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
            self._known(event, clav, msg, t)
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

    def _known(self, event: ecs.Event, clav: ecs.Clavister, msg: Message, t: Params) -> None:
        m = msg.ecs
        ev = event.event
        ev.action = m.action
        ev.category = list(m.category)
        ev.type = list(m.type)
        ev.outcome = m.outcome
        ev.reason = t.reason or None
        event.message = msg.message
        if clav.categories is None:
            clav.categories = list(msg.categories)

        local_ip, remote_ip = t.localip, t.remoteip
        local_port, remote_port = t.localport, t.remoteport
        src_ip, dst_ip, src_port, dst_port = t.srcip, t.destip, t.srcport, t.destport
        initiator = t.initiator
        if _any(local_ip, remote_ip, local_port, remote_port):
            # No empty {} for a side whose values were all missing or invalid.
            local = ecs.Endpoint(local_ip, local_port) if _any(local_ip, local_port) else None
            remote = ecs.Endpoint(remote_ip, remote_port) if _any(remote_ip, remote_port) else None
            # The role rule: the initiator is the source.
            if initiator:
                event.source, event.destination = local, remote
            else:
                event.source, event.destination = remote, local
        elif _any(src_ip, dst_ip, src_port, dst_port):
            if _any(src_ip, src_port):
                event.source = ecs.Endpoint(src_ip, src_port)
            if _any(dst_ip, dst_port):
                event.destination = ecs.Endpoint(dst_ip, dst_port)

        proto = t.proto or None
        pool_ip = t.ip
        ips = [ip for ip in (local_ip, remote_ip, src_ip, dst_ip, pool_ip) if ip is not None]
        if event.source is not None or event.destination is not None:
            family = None
            if ips:
                family = "ipv6" if ":" in ips[0] else "ipv4"
            if proto:
                event.network = ecs.Network(proto.lower(), "ipsec", family)
            else:
                event.network = ecs.Network("udp", "ike", family)

        userid = t.userid or None
        local_id = t.localid or None
        remote_id = t.remoteid or None
        if userid:
            event.user = ecs.User(userid)
        users = [u for u in (userid, local_id, remote_id) if u]
        if ips or users:
            event.related = ecs.Related(
                ip=list(dict.fromkeys(ips)) or None,
                user=list(dict.fromkeys(users)) or None,
            )

        if t.recviface:
            event.observer.ingress = ecs.Ingress(ecs.Interface(t.recviface))
        clav.iface = t.iface or None

        ike = ecs.Ike(
            local_id, remote_id, t.localikespi, t.remoteikespi, t.oldlocalikespi,
            t.oldremoteikespi, initiator, t.algorithms or None, t.ikeversion, t.rekeytime,
            t.reauthtime,
        )
        if ike != _EMPTY_IKE:
            clav.ike = ike
        ipsec = ecs.Ipsec(
            t.inboundspi, t.outboundspi, t.oldinboundspi, t.oldoutboundspi,
            proto.lower() if proto else None, t.localts or None, t.remotets or None, t.lifetime,
        )
        if ipsec != _EMPTY_IPSEC:
            clav.ipsec = ipsec
        pool = ecs.IpPool(t.name or None, pool_ip, t.count)
        if pool != _EMPTY_POOL:
            clav.ip_pool = pool
        if t.max is not None:
            clav.limit = ecs.Limit(t.max)


_EMPTY_IKE = ecs.Ike()
_EMPTY_IPSEC = ecs.Ipsec()
_EMPTY_POOL = ecs.IpPool()
