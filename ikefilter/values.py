"""The value grammar: how a parameter's text becomes its typed value, one rule per kind.

Every path reads values through these rules and nothing else: the per-message builders
(:mod:`ikefilter.builders`) look a value up in its kind's cache and call the rule on a miss.
A value that does not fit its kind comes back as :class:`Invalid`, saying why; the builder
keeps it as sent under ``clavister.extra`` and tags the event.

- text: as sent; empty is no value.
- ip: an IPv4 or IPv6 address (brackets and surrounding blanks allowed), written canonically.
- port, count, prio: an integer in JSON number syntax with an integral value (``500``,
  ``5e2``; not ``0500`` or ``+5``), surrounding blanks allowed, within the kind's range.
- spi: hexadecimal in any case, with or without ``0x``, written in lowercase without it.
- bool: ``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0``, in any case.
- ``null`` (any case) in a number or boolean, and empty text, mean no value.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

import msgspec

# The largest value a ``long`` field holds: a larger number makes an index refuse the event.
LONG_MAX = 2**63 - 1


class Invalid:
    """A value that does not fit its kind; ``why`` says how."""

    __slots__ = ("why",)

    def __init__(self, why: str):
        self.why = why

    def __repr__(self) -> str:
        return f"Invalid({self.why!r})"


_NOT_IP = Invalid("not an IP address")
_NOT_INT = Invalid("not an integer")
_NOT_SPI = Invalid("not a hexadecimal SPI")
_NOT_BOOL = Invalid("not a boolean")

# A dotted quad without leading zeros is already canonical: no need for ipaddress.
# ([0-9], not \d: \d also matches other scripts' digits, which an ip field rejects.)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_is_ipv4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}").fullmatch
# Longer than any address with brackets, an IPv4 tail and some padding.
_IP_TEXT_MAX = 64


def ip(text: str) -> str | Invalid:
    """The canonical text of an IP address (RFC 5952 for IPv6, as ``ipaddress`` writes it)."""
    if len(text) > _IP_TEXT_MAX:
        return _NOT_IP
    if _is_ipv4(text) is not None:
        return text
    text = text.strip().strip("[]")
    if ":" in text:
        # The C library reads and writes IPv6 text fifteen times faster than ipaddress and
        # writes it the same way, but for an IPv4 tail, which is left to ipaddress.
        try:
            value = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
        except (OSError, ValueError):
            pass
        else:
            if "." not in value:
                return value
    try:
        value = str(ipaddress.ip_address(text))
    except ValueError:
        return _NOT_IP
    if "%" in value:
        return _NOT_IP  # an IPv6 zone index (fe80::1%eth0): an ECS ip field rejects it
    return value


def _integer(hi: int) -> Callable[[str], int | None | Invalid]:
    out_of_range = Invalid(f"out of range 0-{hi}")

    def integer(text: str) -> int | None | Invalid:
        try:
            value = msgspec.convert(text.strip(), int | None, strict=False)
        except msgspec.ValidationError:
            return _NOT_INT
        if value is not None and not 0 <= value <= hi:
            return out_of_range
        return value

    integer.__doc__ = f"An integer from 0 to {hi}."
    return integer


port = _integer(65535)
count = _integer(LONG_MAX)
prio = _integer(7)

HEX = "0123456789abcdef"
_HEX = frozenset(HEX)


def spi(text: str) -> str | Invalid:
    """A security parameter index as lowercase hexadecimal without ``0x``."""
    value = text.strip().lower()
    if value.startswith("0x"):
        value = value[2:]
    if not value or not _HEX.issuperset(value):
        return _NOT_SPI
    return value


_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False, "null": None}


def boolean(text: str) -> bool | None | Invalid:
    """A boolean."""
    value = _BOOLEANS.get(text.strip().lower(), _NOT_BOOL)
    return value  # type: ignore[return-value]


def text(value: str) -> str:
    """Text as sent."""
    return value


#: each kind's rule; ``text`` is the default
RULES: dict[str, Callable[[str], object]] = {
    "text": text, "ip": ip, "port": port, "count": count, "prio": prio, "spi": spi,
    "bool": boolean,
}

#: the kind of every parameter the builders map to ECS; any other parameter goes to
#: ``clavister.extra`` as sent, under its :func:`extra_name`
KINDS: dict[str, str] = {
    "prio": "prio", "rev": "text", "event": "text", "action": "text",
    "localip": "ip", "remoteip": "ip", "localport": "port", "remoteport": "port",
    "srcip": "ip", "destip": "ip", "srcport": "port", "destport": "port",
    "localid": "text", "remoteid": "text",
    "localikespi": "spi", "remoteikespi": "spi", "oldlocalikespi": "spi",
    "oldremoteikespi": "spi", "initiator": "bool", "algorithms": "text",
    "rekeytime": "count", "reauthtime": "count", "ikeversion": "count",
    "reason": "text", "iface": "text", "recviface": "text",
    "inboundspi": "spi", "outboundspi": "spi", "oldinboundspi": "spi", "oldoutboundspi": "spi",
    "proto": "text", "localts": "text", "remotets": "text", "lifetime": "count",
    "ip": "ip", "name": "text", "count": "count", "max": "count", "userid": "text",
}


def extra_name(name: str) -> str:
    """The name a parameter is written under in ``clavister.extra``: as sent, with every dot
    as ``_`` and an empty name as ``_`` (``x.y`` -> ``x_y``, ``a..b`` -> ``a__b``, ``.a`` ->
    ``_a``). Elasticsearch reads a dot in a field name as a path: ``x`` beside ``x.y`` is a
    mapping conflict, and an empty segment is refused."""
    return name.replace(".", "_") or "_"


def extra_names(extra: dict[str, str]) -> dict[str, str]:
    """``extra`` under the names :func:`extra_name` gives; ``extra`` itself when none
    changes. Where two meet (``x_y=1 x.y=2``), a name sent as it is written keeps it and the
    rewritten one takes the first free of ``x_y_2``, ``x_y_3``, ...: no value overwrites
    another."""
    for name in extra:
        if not name or "." in name:
            break
    else:
        return extra
    taken = {name for name in extra if name and "." not in name}
    out = {}
    for name, value in extra.items():
        if name in taken:
            out[name] = value
            continue
        safe = base = extra_name(name)
        n = 1
        while safe in taken:
            n += 1
            safe = f"{base}_{n}"
        taken.add(safe)
        out[safe] = value
    return out


class Cache(dict):
    """Text -> the typed value of one kind, or :class:`Invalid` for a text that does not
    fit it. Bounded."""

    __slots__ = ("rule",)
    MAX = 65536
    KEY_MAX = 128  # a longer text is read every time, never kept

    def __init__(self, rule: Callable[[str], object]):
        super().__init__()
        self.rule = rule

    def read(self, raw: str) -> object:
        """The rule's reading of ``raw``, kept (a value, or :class:`Invalid`: a host name
        asked of every event is read once)."""
        value = self.rule(raw)
        if value is not None and len(raw) <= self.KEY_MAX:
            if len(self) >= self.MAX:
                self.clear()
            self[raw] = value
        return value


#: one cache per kind whose values repeat, shared by every builder
CACHES: dict[str, Cache] = {kind: Cache(RULES[kind])
                            for kind in ("ip", "port", "count", "prio", "bool")}


def read(kind: str, raw: str) -> object:
    """``raw`` read as ``kind``: the value, None for no value, or :class:`Invalid`."""
    if not raw:
        return None
    cache = CACHES.get(kind)
    if cache is None:
        return RULES[kind](raw)
    value = cache.get(raw)
    return cache.read(raw) if value is None else value


def valid_ip(text: str) -> str | None:
    """The canonical text of an IP address, or None when ``text`` is not one."""
    value = read("ip", text)
    return value if type(value) is str else None
