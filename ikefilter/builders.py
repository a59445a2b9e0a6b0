"""The ECS builders: one per catalogued message, generated from its catalog entry.

Every path ends here. A builder takes a line's pairs (``name -> value`` text as sent, or the
message's Struct of them: :func:`message_structs`), its header fields and the time to use
when it has none, and returns the ECS event. It reads each
parameter through its kind's rule (:mod:`ikefilter.values`, cached), applies the role rule and
the severity rule, and keeps what has no ECS home under ``clavister.extra``: parameters the
message does not list, and values that do not fit their kind (the event is then tagged).
The source of each builder is assembled below from the message's entry (names and ``repr``
of catalog text only), so the Python run per event is only what that message needs.

:class:`Builders` finds the builder for an ``id`` as sent (``530``, ``00000530``); IDs the
catalog lacks, lines without an ``id`` and IDs that are not numbers get the generic builder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from . import ecs, values
from .catalog import Message
from .identity import user_fields
from .sender import observer_host
from .severity import LEVELS
from .shaping import DEFAULT, Shaping

Builder = Callable[..., ecs.Event]
"""``build(pairs, pri, time, cats, host, original, now, notes) -> Event``

:param pairs: the line's ``name -> value`` text, the header keys (``prio``, ``id``, ...)
    included (never changed); for the ``struct`` form, the message's Struct.
:param pri: the syslog PRI (0-191) or None; ``time``: RFC 3339 UTC or None (``now`` then);
    ``cats``: the category list of the header or None; ``host``: the sending host or None;
    ``original``: the line as received; ``now``: when the batch was taken in (also
    ``event.ingested``); ``notes``: what the splitter found odd (each one an error text of a
    parse failure), or None.
"""

HEADER_KEYS = ("prio", "id", "rev", "event", "action")
_PLAIN_TAGS = ("clavister", "ike")

_IKE = ("localid", "remoteid", "localikespi", "remoteikespi", "oldlocalikespi",
        "oldremoteikespi", "initiator", "algorithms", "ikeversion", "rekeytime", "reauthtime")
_IPSEC = ("inboundspi", "outboundspi", "oldinboundspi", "oldoutboundspi", "proto", "localts",
          "remotets", "lifetime")
_POOL = ("name", "ip", "count")
_IPS = ("localip", "remoteip", "srcip", "destip", "ip")


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


def _read(name: str, kind: str) -> list[str]:
    """Python reading parameter ``name`` of ``kind``, its text as sent (or None) in the
    variable of its name."""
    if kind == "text":
        return [f"    {name} = {name} or None"]
    if kind == "spi":
        # SPIs seldom repeat: no cache, but the usual form (lowercase hex) is checked in C.
        return [
            f"    if {name}:",
            f"        if {name}.strip(HEX):",
            f"            v = SPI({name})",
            "            if type(v) is Invalid:",
            f"                bad = (bad or []) + [({name!r}, {name}, v.why)]",
            "                v = None",
            f"            {name} = v",
            "    else:",
            f"        {name} = None",
        ]
    # (the cache holds what does not fit too: Invalid is checked whichever way v came)
    cache = f"C_{kind.upper()}"
    return [
        f"    if {name}:",
        f"        v = {cache}.get({name})",
        "        if v is None:",
        f"            v = {cache}.read({name})",
        "        if type(v) is Invalid:",
        f"            bad = (bad or []) + [({name!r}, {name}, v.why)]",
        "            v = None",
        f"        {name} = v",
        "    else:",
        f"        {name} = None",
    ]


def _severity(dialect: str, default: int | None) -> str:
    wire = "7 - prio" if dialect == "clavister" else "prio"
    return f"{wire} if prio is not None else (pri & 7 if pri is not None else {default})"


_WORD = re.compile(r"\b[a-z]+\b")

#: every parameter a builder maps to ECS; any other goes to ``extra``
MAPPED = frozenset(HEADER_KEYS) | values.KINDS.keys()


def listed(msg: Message) -> frozenset[str]:
    """The mapped parameters that ``msg`` lists."""
    return frozenset(HEADER_KEYS) | (set(msg.parameters) & values.KINDS.keys())


#: kinds whose values msgspec reads by the same rule (``values._integer``) while it decodes
#: a line into a message's Struct (:func:`message_struct`)
_TYPED_IN_DECODE = {"port": 65535, "count": values.LONG_MAX, "prio": 7}


def struct_fields(msg: Message) -> list[str]:
    """The fields of ``msg``'s Struct, in order: the mapped parameters it lists."""
    has = listed(msg) - {"id"}
    return [name for name in values.KINDS if name in has]


def builder_source(msg: Message, dialect: str, keep_original: bool, form: str,
                   identity_users: bool = True) -> str:
    """The Python source of a builder of ``msg``, for its pairs in one of three forms:

    - ``listed``: a dictionary of text; it hands a line with a parameter that the message
      does not list but a builder maps to its ``wide`` form (``WIDE``);
    - ``wide``: a dictionary of text, every parameter a builder maps read;
    - ``struct``: the message's Struct (:func:`message_struct`), integers read already.

    ``identity_users``: IKE identities that name a user fill ``user.*`` (``[ecs]``).
    """
    has = set(MAPPED if form == "wide" else listed(msg)) - {"id"}

    def arg(name: str) -> str:
        return name if name in has else "None"

    lines = ["def build(p, pri, time, cats, host, original, now, notes):", "    bad = None"]
    names = [name for name in values.KINDS if name in has]
    if form == "struct":
        lines += ["    extra = None", f"    {', '.join(names)}, = astuple(p)"]
    else:
        if form == "wide":
            lines.append("    extra = None if p.keys() <= SKIPPED else "
                         "{k: v for k, v in p.items() if k not in SKIPPED}")
        else:
            lines += ["    extra = None",
                      "    if not p.keys() <= LISTED:",
                      "        extra = {k: v for k, v in p.items() if k not in LISTED}",
                      "        if not extra.keys().isdisjoint(MAPPED):",
                      "            return WIDE(p, pri, time, cats, host, original, now, notes)"]
        # All the texts at once: map() calls p.get in C.
        lines.append(f"    {', '.join(names)}, = map(p.get, {tuple(names)!r})")
    for name in names:
        kind = values.KINDS[name]
        if form != "struct" or kind not in _TYPED_IN_DECODE:
            lines += _read(name, kind)
    lines += [
        f"    sev = {_severity(dialect, msg.severity_code)}",
        "    log = Log(LEVELS[sev], None if pri is None else SYSLOG[pri])",
    ]
    ips = [n for n in _IPS if n in has]
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
            f"        local = Endpoint({arg('localip')}, {arg('localport')}) "
            f"if {_some(('localip', 'localport'), has)} else None",
            f"        remote = Endpoint({arg('remoteip')}, {arg('remoteport')}) "
            f"if {_some(('remoteip', 'remoteport'), has)} else None",
            "        source, destination = "
            f"(local, remote) if {arg('initiator')} else (remote, local)",
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
            "        direction = None if initiator is None else "
            "'outbound' if initiator else 'inbound'" if "initiator" in has else
            "        direction = None",
            "        network = Network(proto.lower(), 'ipsec', family, direction) if proto else "
            "Network('udp', 'ike', family, direction)" if "proto" in has else
            "        network = Network('udp', 'ike', family, direction)",
            "    else:",
            "        network = None",
        ]
    # The user: ``userid``, else the first identity, the peer's before our own, that names one.
    who = [name for name in ("userid", "remoteid", "localid")
           if name in has and (identity_users or name == "userid")]
    if who:
        lines.append("    u = None")
        for name in who:
            call = f"{name}, True" if name == "userid" else name  # a user id always names one
            lines += [f"    if u is None and {name}:", f"        u = USER_FIELDS({call})"]
        lines.append("    user = User(*u) if u is not None else None")
    else:
        lines.append("    user = None")
    lines += [
        "    hostname, observer_ip = OBSERVER_HOST(host)",
        "    ingress = Ingress(Interface(recviface)) if recviface else None"
        if "recviface" in has else "    ingress = None",
    ]
    for var, cls, names, args in (
        ("ike", "Ike", _IKE, ", ".join(map(arg, _IKE))),
        ("ipsec", "Ipsec", _IPSEC, ", ".join(
            "proto.lower() if proto else None" if n == "proto" and n in has else arg(n)
            for n in _IPSEC)),
        ("pool", "IpPool", _POOL, ", ".join(map(arg, _POOL))),
        ("limit", "Limit", ("max",), arg("max")),
    ):
        test = _some(names, has)
        lines.append(f"    {var} = {cls}({args}) if {test} else None" if test
                     else f"    {var} = None")
    m = msg.ecs
    lines.append(f"""\
    fields = EventFields("event", "clavister", "clavister.log", {str(msg.id)!r}, {m.action!r},
                         {list(m.category)!r}, {list(m.type)!r}, {m.outcome!r}, {arg("reason")},
                         sev, {"original" if keep_original else "None"}, now)
    clav = Clavister(cats if cats is not None else {list(msg.categories)!r}, prio, rev, event,
                     action, {arg("iface")}, None, ike, ipsec, pool, limit)
    event = Event(time or now, fields, {msg.message!r}, log,
                  Observer("Clavister", "cOS Stream", "firewall", hostname, ingress,
                           observer_ip),
                  source, destination, network, user, related, None, ["clavister", "ike"],
                  clav, ECS, None, DATA_STREAM)
    if extra is not None or bad is not None or notes:
        problems(event, extra, bad, notes)
    return event""")
    body = "\n".join(lines[1:])
    # Parameters the message lacks, where the shared sections name them: the constant None.
    named = set(_WORD.findall(body))
    unset = [f"    {name} = None" for name in sorted(values.KINDS.keys() - has) if name in named]
    return "\n".join(lines[:1] + unset) + "\n" + body + "\n"


def problems(event: ecs.Event, extra: dict[str, str] | None,
             bad: list[tuple[str, str, str]] | None, notes: list[str] | None) -> None:
    """Put what has no typed home on ``event``: the splitter's notes (a parse failure), the
    values that did not fit (kept as sent in ``extra``, tagged), the other parameters."""
    if notes:
        event.tag(ecs.TAG_PARSE_FAILURE)
        for note in notes:
            event.add_error(note)
    if bad:
        extra = {} if extra is None else extra
        for name, raw, _ in bad:
            extra[name] = raw
        event.tag(ecs.TAG_INVALID_VALUE)
        event.add_error("; ".join(f"{name}: {why}" for name, _, why in bad))
    if extra:
        event.clavister.extra = values.extra_names(extra)


_GLOBALS = {
    "astuple": msgspec.structs.astuple, "LEVELS": LEVELS, "SYSLOG": ecs.SYSLOG, "ECS": ecs.ECS,
    "Invalid": values.Invalid,
    "HEX": values.HEX, "SPI": values.spi,
    "problems": problems, "USER_FIELDS": user_fields, "OBSERVER_HOST": observer_host,
    **{f"C_{kind.upper()}": cache for kind, cache in values.CACHES.items()},
    **{name: getattr(ecs, name) for name in (
        "Event", "EventFields", "Log", "Observer", "Ingress", "Interface", "Endpoint",
        "Network", "User", "Related", "Ike", "Ipsec", "IpPool", "Limit", "Clavister")},
}


def _compiled(msg: Message, dialect: str, keep_original: bool, form: str,
              namespace: dict, shaping: Shaping = DEFAULT) -> Builder:
    namespace["DATA_STREAM"] = shaping.data_stream
    source = builder_source(msg, dialect, keep_original, form, shaping.identity_users)
    code = compile(source, f"<builder {msg.id} {form}>", "exec")
    exec(code, namespace)  # noqa: S102 - source built above from the catalog, reprs only
    return namespace.pop("build")


def compile_builder(msg: Message, dialect: str, keep_original: bool,
                    ignore: frozenset[str] = frozenset(), shaping: Shaping = DEFAULT
                    ) -> Builder:
    """``msg``'s builder, compiled; it passes over the keys in ``ignore``. Its wide form is
    compiled when a line first needs it."""
    namespace = dict(_GLOBALS, LISTED=listed(msg) | ignore, MAPPED=MAPPED,
                     SKIPPED=MAPPED | ignore)

    def wide(*args):
        namespace["WIDE"] = build = _compiled(msg, dialect, keep_original, "wide",
                                              dict(namespace), shaping)
        return build(*args)

    namespace["WIDE"] = wide
    return _compiled(msg, dialect, keep_original, "listed", namespace, shaping)


def message_structs(msg: Message, dialect: str, keep_original: bool,
                    shaping: Shaping = DEFAULT) -> list[type]:
    """The Structs that a line's pairs of ``msg`` decode into, one per form of its ID (the
    number, and the eight digits some exports write), when the line has no parameter the
    message does not list (else the decode fails: the pairs then go as a dictionary).
    Integers are read by msgspec while it decodes (the rule of ``values.port`` and its kin,
    but for surrounding blanks, which fail the decode), the rest is text. Their ``build``
    method is the message's builder in the ``struct`` form, compiled on first use."""
    fields: list[tuple[str, Any, Any]] = []
    for name in struct_fields(msg):
        hi = _TYPED_IN_DECODE.get(values.KINDS[name])
        kind = str if hi is None else Annotated[int, msgspec.Meta(ge=0, le=hi)]
        fields.append((name, kind | None, None))

    def build(p, *args):
        real = _compiled(msg, dialect, keep_original, "struct", dict(_GLOBALS), shaping)
        for struct in structs:
            struct.build = real
        return real(p, *args)

    structs = [msgspec.defstruct(f"Pairs{tag}", fields, tag_field="id", tag=tag,
                                 forbid_unknown_fields=True, gc=False,
                                 namespace={"build": build})
               for tag in dict.fromkeys((str(msg.id), f"{msg.id:08d}"))]
    return structs


def generic(code: str | None, raw_id: str | None, dialect: str, keep_original: bool,
             ignore: frozenset[str], shaping: Shaping = DEFAULT) -> Builder:
    """The builder for an ID the catalog lacks (``code``), a line without one (``raw_id``
    None) or one that is not a number (``code`` None): every parameter but the header's
    goes to ``extra`` as sent."""
    clavister = dialect == "clavister"
    skipped = frozenset(HEADER_KEYS) | ignore

    def build(p, pri, time, cats, host, original, now, notes):
        bad = None
        prio = p.get("prio")
        if prio:
            value = values.read("prio", prio)
            if type(value) is values.Invalid:
                bad = [("prio", prio, value.why)]
                value = None
            prio = value
        else:
            prio = None
        if prio is not None:
            sev = 7 - prio if clavister else prio
        else:
            sev = pri & 7 if pri is not None else None
        log = None
        if sev is not None or pri is not None:
            log = ecs.Log(LEVELS[sev if sev is not None else pri & 7],
                          None if pri is None else ecs.SYSLOG[pri])
        event = ecs.Event(
            time or now,
            ecs.event_fields(code=code, severity=sev, original=original if keep_original
                             else None, ingested=now),
            log=log,
            observer=ecs.observer(host),
            tags=list(_PLAIN_TAGS),
            clavister=ecs.Clavister(cats, prio, p.get("rev") or None,
                                    p.get("event") or None, p.get("action") or None),
            ecs=ecs.ECS,
            data_stream=shaping.data_stream,
        )
        extra = {k: v for k, v in p.items() if k not in skipped}
        if raw_id is None:
            event.tag(ecs.TAG_PARSE_FAILURE)
            event.add_error("no id= in the line")
        elif code is None:
            extra["id"] = raw_id
            event.tag(ecs.TAG_PARSE_FAILURE)
            event.add_error(f"id is not a number: {raw_id!r}")
        else:
            event.tag(ecs.TAG_UNKNOWN_MESSAGE)
        problems(event, extra or None, bad, notes)
        return event

    return build
