"""Per-message Structs and builders for the batch fast path (:mod:`ikefilter.fastlane`).

Each catalogued message the fast path takes (:func:`takes`) gets Structs its pairs decode
into (typed as :class:`~ikefilter.normalize.Params` types them, but for addresses and SPIs,
decoded as text and checked by the builder; unknown names refused) and a builder: the exact
path's :meth:`~ikefilter.normalize.Normalizer.normalize` for that one message, its source
generated from the message's catalog entry (names and ``repr`` of catalog text only), so the
Python run per event is only what the message needs.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from . import ecs
from .catalog import Message
from .normalize import Params, ip_cache, valid_ip
from .record import HOST_KEYS, RECORD_META, TIME_KEYS
from .severity import LEVELS

# Addresses and SPIs are decoded as text and checked by the builders: a pattern on the
# Struct field costs a Python regex call per value inside the decode, four times the time.
_IP_PARAMS = frozenset({"localip", "remoteip", "srcip", "destip", "ip"})
_SPI_PARAMS = frozenset(name for name in Params.__struct_fields__ if name.endswith("spi"))
HEX = "0123456789abcdef"
_HEADER_PARAMS = ("prio", "rev", "event", "action")
_Scalar = str | int | float | bool | None

_PARAM_TYPES = typing.get_type_hints(Params, include_extras=True)


META_ATTRS = {key: "m_" + key.replace("@", "at_") for key in RECORD_META}
TIME_ATTRS = tuple(META_ATTRS[key] for key in TIME_KEYS)
HOST_ATTRS = tuple(META_ATTRS[key] for key in HOST_KEYS)


class Refused(Exception):
    """A value the fast path does not write exactly as the exact path would."""


def _message_struct(msg: Message, meta: bool, build: Callable, tag: str) -> type:
    names = list(dict.fromkeys(_HEADER_PARAMS + tuple(msg.parameters)))
    fields: list[tuple[str, Any, Any]] = [
        (name, str | None if name in _IP_PARAMS | _SPI_PARAMS else _PARAM_TYPES[name], None)
        for name in names
    ]
    rename = None
    if meta:
        # A record's own keys: read for time, host and PRI, never parameters.
        rename = {META_ATTRS[key]: key for key in RECORD_META}
        fields += [(META_ATTRS[key], _Scalar, None) for key in sorted(RECORD_META)]
    return msgspec.defstruct(
        f"Message{tag}", fields, tag_field="id", tag=tag, rename=rename,
        forbid_unknown_fields=True, gc=False, namespace={"build": build},
    )


# -- the per-message builders -------------------------------------------------------------------
#
# Each builder is the exact path's ``Normalizer.normalize`` for one message, specialized to
# the parameters that message can carry. The source is assembled from the sections below;
# parameters the message does not have are the constant None.

_IKE = ("localid", "remoteid", "localikespi", "remoteikespi", "oldlocalikespi",
        "oldremoteikespi", "initiator", "algorithms", "ikeversion", "rekeytime", "reauthtime")
_IPSEC = ("inboundspi", "outboundspi", "oldinboundspi", "oldoutboundspi", "proto", "localts",
          "remotets", "lifetime")
_POOL = ("name", "ip", "count")
# Parameters written only when not empty (the exact path's ``value or None``).
_OR_NONE = frozenset({"rev", "event", "action", "reason", "iface", "recviface", "proto",
                      "localts", "remotets", "algorithms", "userid", "localid", "remoteid",
                      "name", *_IP_PARAMS, *_SPI_PARAMS})


def _some(names: tuple[str, ...], has: set[str]) -> str | None:
    """Python for "any of ``names`` is not None", over the ones the message has."""
    return " or ".join(f"{n} is not None" for n in names if n in has) or None


def _distinct(var: str, names: list[str]) -> str:
    """Python setting ``var`` to the distinct non-None values of ``names`` in order, or None."""
    if not names:
        return f"    {var} = None"
    if len(names) == 1:
        return f"    {var} = [{names[0]}] if {names[0]} is not None else None"
    if len(names) == 2:
        a, b = names
        return (f"    if {a} is not None:\n"
                f"        {var} = [{a}] if {b} is None or {b} == {a} else [{a}, {b}]\n"
                f"    else:\n"
                f"        {var} = [{b}] if {b} is not None else None")
    return (f"    {var} = list(dict.fromkeys(x for x in ({', '.join(names)}) if x is not None))"
            " or None")


def _builder_source(msg: Message, dialect: str, keep_original: bool) -> str:
    has = set(_HEADER_PARAMS) | set(msg.parameters)

    def arg(name: str) -> str:
        return name if name in has else "None"

    lines = []
    # What the exact path would rewrite or refuse: a non-canonical address or SPI.
    for name in sorted(has & _IP_PARAMS):
        lines.append(f"    if {name} is not None and IP_CACHE.get({name}) != {name} "
                     f"and valid_ip({name}) != {name}:")
        lines.append("        raise Refused")
    for name in sorted(has & _SPI_PARAMS):
        lines.append(f"    if {name} is not None and {name}.strip(HEX):")
        lines.append("        raise Refused")

    reversed_prio = "7 - prio" if dialect == "clavister" else "prio"
    lines.append(f"    sev = {reversed_prio} if prio is not None else "
                 f"(pri & 7 if pri is not None else {msg.severity_code})")
    lines.append("    log = Log(LEVELS[sev], None if pri is None else SYSLOG[pri])")

    ips = [n for n in ("localip", "remoteip", "srcip", "destip", "ip") if n in has]
    lines.append(_distinct("related_ips", ips))
    lines.append(_distinct("users", [n for n in ("userid", "localid", "remoteid") if n in has]))
    lines.append("    related = Related(related_ips, users) "
                 "if related_ips is not None or users is not None else None")

    # The role rule: the initiator is the source.
    local_remote = _some(("localip", "remoteip", "localport", "remoteport"), has)
    src_dst = _some(("srcip", "srcport", "destip", "destport"), has)
    split = [
        f"source = Endpoint(srcip, srcport) if {_some(('srcip', 'srcport'), has)} else None",
        f"destination = Endpoint(destip, destport) if {_some(('destip', 'destport'), has)} "
        "else None",
    ] if src_dst else ["source = destination = None"]
    if local_remote:
        lines += [
            f"    if {local_remote}:",
            f"        local = Endpoint(localip, localport) "
            f"if {_some(('localip', 'localport'), has)} else None",
            f"        remote = Endpoint(remoteip, remoteport) "
            f"if {_some(('remoteip', 'remoteport'), has)} else None",
            "        source, destination = (local, remote) if initiator else (remote, local)",
            "    else:",
            *(f"        {line}" for line in split),
        ]
    elif src_dst:
        lines += [f"    {line}" for line in split]
    if not local_remote and not src_dst:
        lines.append("    source = destination = network = None")
    else:
        lines += [
            "    if source is not None or destination is not None:",
            "        family = ('ipv6' if ':' in related_ips[0] else 'ipv4') "
            "if related_ips else None",
            "        network = Network(proto.lower(), 'ipsec', family) if proto else "
            "Network('udp', 'ike', family)" if "proto" in has else
            "        network = Network('udp', 'ike', family)",
            "    else:",
            "        network = None",
        ]
    lines += [
        "    user = User(userid) if userid else None" if "userid" in has else "    user = None",
        "    ingress = Ingress(Interface(recviface)) if recviface else None"
        if "recviface" in has else "    ingress = None",
    ]
    for var, cls, names, args in (
        ("ike", "Ike", _IKE, ", ".join(map(arg, _IKE))),
        ("ipsec", "Ipsec", _IPSEC, ", ".join(
            "proto.lower() if proto else None" if n == "proto" and n in has else arg(n)
            for n in _IPSEC)),
        ("pool", "IpPool", _POOL, ", ".join(map(arg, _POOL))),
        ("limit", "Limit", ("max",), "max"),
    ):
        test = _some(names, has)
        lines.append(f"    {var} = {cls}({args}) if {test} else None" if test
                     else f"    {var} = None")
    m = msg.ecs
    lines.append(f"""\
    fields = EventFields("event", "clavister", "clavister.log", {str(msg.id)!r}, {m.action!r},
                         {list(m.category)!r}, {list(m.type)!r}, {m.outcome!r}, {arg("reason")},
                         sev, {"original" if keep_original else "None"})
    clav = Clavister(cats if cats is not None else {list(msg.categories)!r}, prio, rev, event,
                     action, {arg("iface")}, None, ike, ipsec, pool, limit)
    return Event(time or now, fields, {msg.message!r}, log,
                 Observer("Clavister", "cOS Stream", "firewall", host, ingress),
                 source, destination, network, user, related, None, ["clavister", "ike"], clav,
                 ECS)""")
    body = "\n".join(lines)
    # The parameters the body reads, bound once: ``p.name``, empty text as None.
    head = ["def build(p, pri, time, cats, host, original, now):"]
    for name in sorted(Params.__struct_fields__):
        if re.search(rf"\b{name}\b", body) is None:
            continue
        if name not in has:
            head.append(f"    {name} = None")
        elif name in _OR_NONE:
            head.append(f"    {name} = p.{name} or None")
        else:
            head.append(f"    {name} = p.{name}")
    return "\n".join(head) + "\n" + body + "\n"


_BUILDER_GLOBALS = {
    "LEVELS": LEVELS, "Refused": Refused, "valid_ip": valid_ip, "IP_CACHE": ip_cache, "HEX": HEX,
    "SYSLOG": ecs.SYSLOG, "ECS": ecs.ECS,
    **{name: getattr(ecs, name) for name in (
        "Event", "EventFields", "Log", "Observer", "Ingress",
        "Interface", "Endpoint", "Network", "User", "Related", "Ike", "Ipsec", "IpPool",
        "Limit", "Clavister")},
}


def _builder(msg: Message, dialect: str, keep_original: bool) -> Callable:
    namespace = dict(_BUILDER_GLOBALS)
    code = compile(_builder_source(msg, dialect, keep_original), f"<builder {msg.id}>", "exec")
    exec(code, namespace)  # noqa: S102 - source built above from the catalog, reprs only
    return namespace["build"]


def takes(msg: Message) -> bool:
    """Whether the fast path can take the message: every parameter is a field of Params (a
    message from a newer reference may name others; the exact path takes it)."""
    return set(msg.parameters) <= _PARAM_TYPES.keys()


def message_structs(msg: Message, dialect: str, keep_original: bool
                    ) -> tuple[list[type], list[type]]:
    """The Structs a line's pairs and a record's split pairs of ``msg`` decode into, each
    with the message's builder as its ``build`` method: one per form of the ID (the number,
    and the eight digits some exports write, "00000530")."""
    build = _builder(msg, dialect, keep_original)
    tags = dict.fromkeys((str(msg.id), f"{msg.id:08d}"))
    return ([_message_struct(msg, False, build, tag) for tag in tags],
            [_message_struct(msg, True, build, tag) for tag in tags])
