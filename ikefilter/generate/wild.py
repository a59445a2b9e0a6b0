"""The wild mix: what a site's day brings (see :mod:`ikefilter.generate`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import msgspec

from ..catalog import Catalog, Message
from .clean import FIREWALLS, JSON_SHAPES, LOCAL_V4, MONTHS, SHAPES, Gen, unquote

WILD_SHAPES = (
    "bracketed", "bare", "rfc3164", "rfc3164-plain", "rfc5424", "receiver", "kv-only",
    "json-log", "json-message", "syslog-ng", "rsyslog", "split",
)
# rfc3164-plain: <PRI>Mmm dd hh:mm:ss host EFW: IKE: kv  (no bracketed device time)
# kv-only:       the name=value body alone, as a shipper that cut the header off writes it
ALL_SHAPES = SHAPES + ("rfc3164-plain", "kv-only")
WILD_TEXT_SHAPES = tuple(s for s in WILD_SHAPES if s not in JSON_SHAPES)
WILD_JSON_SHAPES = tuple(s for s in WILD_SHAPES if s in JSON_SHAPES)

# name: (what it is, share of the wild mix's records that can carry it which do)
VARIANTS: dict[str, tuple[str, float]] = {
    "spi-0x": ("SPIs with a 0x prefix (localikespi=0xb48efa0b1f0abd80)", 0.08),
    "spi-upper": ("SPIs in uppercase hex (localikespi=B48EFA0B1F0ABD80)", 0.08),
    "bool-word": ("booleans as yes/no or on/off (initiator=yes)", 0.06),
    "bool-case": ("booleans in mixed or upper case (initiator=True, FALSE, Yes, ON)", 0.04),
    "bool-digit": ("booleans as 1/0 (initiator=1)", 0.04),
    "quoted": ('bare values quoted although they need not be (localport="500"); '
               "some lines quote every value", 0.10),
    "trailing-space": ("one or two spaces after the last pair", 0.10),
    "double-space": ("two spaces between some pairs", 0.05),
    "unknown-param": ("a parameter the catalog does not list (natt=yes, vendorid=...), "
                      "anywhere in the line", 0.08),
    "padded-id": ("the ID zero-padded to eight digits (id=00000530)", 0.12),
    "shuffled": ("the pairs in another order than the catalog's", 0.04),
    "empty-value": ('a text parameter sent empty (reason="", remoteid="")', 0.05),
    "other-category": ("a Clavister record of another category (CONN, ALG, NETCON, SYSTEM, "
                       "REASSEMBLY) with its own ID", 0.03),
    "not-clavister": ("a record from another program (sshd, kernel, cron, systemd, postfix)",
                      0.03),
}
RECORD_KINDS = ("other-category", "not-clavister")
VALUE_VARIANTS = tuple(v for v in VARIANTS if v not in RECORD_KINDS)
_BOOL_VARIANTS = ("bool-word", "bool-case", "bool-digit")
_SPI_VARIANTS = ("spi-0x", "spi-upper")
# variants of the line's text, which a record the shipper already split cannot show
_TEXT_ONLY = frozenset({"quoted", "trailing-space", "double-space"})
_TEXT_PARAMS = ("reason", "remoteid", "localid", "userid", "iface")
_UNKNOWN = (
    ("natt", ("yes", "no")), ("vendorid", ("4048b7d56ebce885", "afcad71368a1f1c96b8696fc7757")),
    ("dpd", ("on", "off")), ("fragmentation", ("yes", "no")), ("mobike", ("no",)),
    ("saindex", ("17", "212", "4096")), ("cookie", ("9a0c3e1b77d2f5a4",)),
    ("ikeproposal", ('"AES-256 SHA256 DH14"', '"AES-128-GCM PRF-SHA256 DH19"')),
)

# How often each message comes in a site's day: tunnels come up, rekey and go down all day;
# failures and limits are rare. Messages not listed weigh 1.
_DAY_WEIGHTS = {
    530: 10, 590: 9, 616: 8, 155: 10, 183: 9, 628: 8, 1694: 3, 1691: 3, 1693: 3, 737: 3,
    803: 3, 642: 4, 419: 3, 556: 2,
}
_LEVELS = ("Emerg", "Alert", "Crit", "Error", "Warning", "Notice", "Info", "Debug")


class Sample(msgspec.Struct, frozen=True):
    """One generated record and what it was made of."""

    line: str
    shape: str
    kind: str            # "ike", "other-category" or "not-clavister"
    variants: tuple[str, ...] = ()
    id: int | None = None


def variant_help() -> str:
    """The variants, one a line, for ``--help``."""
    width = max(map(len, VARIANTS)) + 2
    return "\n".join(f"  {name:<{width}}{text} ({rate:.0%} in the wild mix)"
                     for name, (text, rate) in VARIANTS.items())


def applies(variant: str, params: tuple[str, ...] | list[str], shape: str) -> bool:
    """Whether a message with these parameters, in this shape, can carry the variant."""
    if variant in RECORD_KINDS:
        return True
    if variant in _TEXT_ONLY and shape == "split":
        return False
    if variant in _SPI_VARIANTS:
        return any(p.endswith("spi") for p in params)
    if variant in _BOOL_VARIANTS:
        return "initiator" in params
    if variant == "empty-value":
        return any(p in _TEXT_PARAMS for p in params)
    return True


def samples(catalog: Catalog, count: int, seed: int = 1, shapes: tuple[str, ...] | None = None,
            mix: str = "wild", variants: tuple[str, ...] = (),
            start: datetime | None = None) -> Iterator[Sample]:
    """Yield ``count`` labelled records, reproducibly for one seed.

    ``mix="wild"``: records as a site's day brings them, every shape interleaved, messages
    weighted by how often they come, each variant at its rate in :data:`VARIANTS`, other
    categories and other programs' records among them. With ``variants``: every record
    carries exactly those variants (only messages that can are used), messages and shapes
    in turn as in the clean corpus.
    """
    shapes = tuple(shapes) if shapes else (WILD_SHAPES if not variants else ("bracketed",))
    bad = [s for s in shapes if s not in ALL_SHAPES]
    if bad:
        raise ValueError(f"unknown shape {bad[0]!r}; known: {', '.join(ALL_SHAPES)}")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown variant {bad[0]!r}; known: {', '.join(VARIANTS)}")
    kinds = [v for v in variants if v in RECORD_KINDS]
    if kinds and len(variants) > 1:
        raise ValueError(f"{kinds[0]!r} is a kind of record: it takes no other variant")
    if len([v for v in variants if v in _BOOL_VARIANTS]) > 1:
        raise ValueError("a line carries one spelling of booleans")
    g = Gen(seed)
    w = _Wild(g, catalog, msgspec.json.Encoder().encode)
    t0 = start or datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)
    if variants:
        pairs = [(m, s) for s in shapes for m in catalog.messages
                 if all(applies(v, m.parameters, s) for v in variants)]
        if not pairs:
            raise ValueError(f"no message in shapes {', '.join(shapes)} can carry "
                             f"{', '.join(variants)}")
        usable = [m for m in catalog.messages if any(m is p[0] for p in pairs)]
        shapes_ok = [s for s in shapes if any(s == p[1] for p in pairs)]
    for i in range(count):
        t = t0 + timedelta(seconds=i // 7)
        if not variants:
            yield w.wild_one(shapes, t)
            continue
        if kinds:
            shape = shapes[i % len(shapes)]
            yield w.other(kinds[0], shape, t)
            continue
        msg = usable[i % len(usable)]
        shape = shapes_ok[(i // len(usable)) % len(shapes_ok)]
        if not all(applies(v, msg.parameters, shape) for v in variants):
            shape = next(s for s in shapes_ok
                         if all(applies(v, msg.parameters, s) for v in variants))
        yield w.ike(msg, shape, t, tuple(variants))


class _Wild:
    def __init__(self, g: Gen, catalog: Catalog, encode):
        self.g = g
        self.r = g.r
        self.encode = encode
        self.messages = list(catalog.messages)
        self.weights = [_DAY_WEIGHTS.get(m.id, 1) for m in self.messages]

    # -- one record of the day's mix ------------------------------------------------------

    def wild_one(self, shapes: tuple[str, ...], t: datetime) -> Sample:
        r = self.r
        shape = r.choice(shapes)
        x = r.random()
        for kind in RECORD_KINDS:
            rate = VARIANTS[kind][1]
            if x < rate:
                return self.other(kind, shape, t)
            x -= rate
        msg = r.choices(self.messages, self.weights)[0]
        chosen = []
        spelled = False
        for v in VALUE_VARIANTS:
            if not applies(v, msg.parameters, shape):
                continue
            if v in _BOOL_VARIANTS:
                if spelled:
                    continue
                # one spelling per line: the three rates add up
                if r.random() < VARIANTS[v][1] / (1 - sum(
                        VARIANTS[b][1] for b in _BOOL_VARIANTS[:_BOOL_VARIANTS.index(v)])):
                    chosen.append(v)
                    spelled = True
                continue
            if r.random() < VARIANTS[v][1]:
                chosen.append(v)
        return self.ike(msg, shape, t, tuple(chosen))

    # -- IKE records ----------------------------------------------------------------------

    def ike(self, msg: Message, shape: str, t: datetime, variants: tuple[str, ...]) -> Sample:
        g, r = self.g, self.r
        ctx = {"family": "6" if r.random() < 0.2 else "4"}
        ident = f"{msg.id:08d}" if "padded-id" in variants else str(msg.id)
        pairs = [["prio", str(7 - msg.severity_code)], ["id", ident], ["rev", "1"],
                 ["event", msg.ecs.action.replace("-", "_")]]
        pairs += [[name, g.value(name, ctx)] for name in msg.parameters]
        self.vary(pairs, variants)
        pri = 16 * 8 + msg.severity_code
        line = self.dress(pairs, shape, t, list(msg.categories), pri, msg.severity_code,
                          variants)
        return Sample(line, shape, "ike", variants, msg.id)

    def vary(self, pairs: list[list[str]], variants: tuple[str, ...]) -> None:
        r = self.r
        for pair in pairs:
            name, value = pair
            if name.endswith("spi"):
                if "spi-upper" in variants:
                    value = value.upper()
                if "spi-0x" in variants:
                    value = "0x" + value
            elif name == "initiator":
                truth = value == "true"
                if "bool-word" in variants:
                    value = r.choice((("no", "yes"), ("off", "on")))[truth]
                elif "bool-digit" in variants:
                    value = "1" if truth else "0"
                elif "bool-case" in variants:
                    word = r.choice((("false", "true"), ("no", "yes"), ("off", "on")))[truth]
                    value = r.choice((word.capitalize(), word.upper()))
            pair[1] = value
        if "empty-value" in variants:
            text = [p for p in pairs if p[0] in _TEXT_PARAMS]
            reason = [p for p in text if p[0] == "reason"]
            (reason[0] if reason and r.random() < 0.7 else r.choice(text))[1] = '""'
        if "quoted" in variants:
            bare = [p for p in pairs if p[1] and not p[1].startswith('"')]
            if r.random() < 0.3:
                picked = bare
            else:
                picked = r.sample(bare, min(len(bare), r.randint(1, 3)))
            for p in picked:
                p[1] = f'"{p[1]}"'
        if "shuffled" in variants:
            before = [p[0] for p in pairs]
            while [p[0] for p in pairs] == before:
                r.shuffle(pairs)
        if "unknown-param" in variants:
            for _ in range(r.choice((1, 1, 1, 2))):
                name, values = r.choice(_UNKNOWN)
                if any(p[0] == name for p in pairs):
                    continue
                pairs.insert(r.randrange(len(pairs) + 1), [name, r.choice(values)])

    # -- other records --------------------------------------------------------------------

    def other(self, kind: str, shape: str, t: datetime) -> Sample:
        if kind == "other-category":
            cats, pairs, sev = self.other_clavister()
            line = self.dress(pairs, shape, t, [cats], 16 * 8 + sev, sev, ())
        else:
            line = self.foreign(shape, t)
        return Sample(line, shape, kind, (kind,))

    def other_clavister(self) -> tuple[str, list[list[str]], int]:
        """One line of another category, in the style of the public cOS Core captures."""
        g, r = self.g, self.r
        lan = f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
        which = r.choice(("conn-open", "conn-close", "conn-close", "alg", "netcon", "system",
                          "reassembly"))
        if which.startswith("conn"):
            nat = r.choice(LOCAL_V4)
            sport, dport = str(r.randrange(1024, 65536)), r.choice(("443", "80", "53", "22"))
            proto = "UDP" if dport == "53" else "TCP"
            opening = which == "conn-open"
            pairs = [["prio", "1"], ["id", "00600004" if opening else "00600005"],
                     ["rev", "1"],
                     ["event", "conn_open_natsat" if opening else "conn_close_natsat"],
                     ["action", "allow" if opening else "close"],
                     ["rule", r.choice(("lan_to_wan", "local_to_wan_http_alg"))],
                     ["conn", "open" if opening else "close"], ["connipproto", proto],
                     ["connrecvif", "lan"], ["connsrcip", lan], ["connsrcport", sport],
                     ["conndestif", "wan"], ["conndestip", g.v4()], ["conndestport", dport],
                     ["connnewsrcip", nat], ["connnewsrcport", sport]]
            if not opening:
                pairs += [["origsent", str(r.randrange(60, 90000))],
                          ["termsent", str(r.randrange(60, 900000))]]
            return "CONN", pairs, 6
        if which == "alg":
            return "ALG", [
                ["prio", "2"], ["id", "00200125"], ["rev", "2"], ["event", "request_url"],
                ["action", "allow"], ["categories", '"Business oriented"'], ["audit", "off"],
                ["override", "no"], ["connipproto", "TCP"], ["connrecvif", "lan"],
                ["connsrcip", lan], ["connsrcport", str(r.randrange(1024, 65536))],
                ["conndestif", "wan"], ["conndestip", g.v4()], ["conndestport", "80"],
                ["url", r.choice(('"www.example.org/favicon.ico"', '"intranet.example/"'))],
                ["algname", "local_http_alg"], ["algmod", "http"],
                ["algsesid", str(r.randrange(100000, 999999))]], 5
        if which == "netcon":
            return "NETCON", [["prio", "1"], ["id", "02300001"], ["rev", "1"],
                              ["event", "init_complete"]], 6
        if which == "system":
            return "SYSTEM", [
                ["prio", "2"], ["id", "03204001"], ["rev", "1"],
                ["event", "accept_configuration"], ["action", "using_new_config"],
                ["username", "admin"], ["userdb", "AdminUsers"], ["client_ip", lan],
                ["config_system", "HTTP"]], 5
        return "REASSEMBLY", [
            ["prio", "4"], ["id", "04800004"], ["rev", "1"],
            ["event", "mismatching_data_in_overlapping_tcp_segment"],
            ["action", "correct the data"], ["connipproto", "TCP"], ["connrecvif", "wan"],
            ["connsrcip", g.v4()], ["connsrcport", str(r.randrange(1024, 65536))]], 3

    def foreign(self, shape: str, t: datetime) -> str:
        """A record from another program on the same log stream."""
        r, g = self.r, self.g
        host = r.choice(("bastion", "web-01", "mail.example.org", "nas"))
        pid = str(r.randrange(300, 65000))
        prog, text, pri = r.choice((
            ("sshd", f"Accepted publickey for deploy from 10.1.{r.randrange(256)}.7 port "
                     f"{r.randrange(1024, 65536)} ssh2: ED25519 SHA256:Qm9vYmFyYmF6", 38),
            ("sshd", f"Failed password for invalid user admin from {g.v4()} port "
                     f"{r.randrange(1024, 65536)} ssh2", 38),
            ("kernel", f"[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC={g.v4()} "
                       f"DST=10.0.0.5 LEN=60 TTL=52 ID={r.randrange(65536)} DF PROTO=TCP "
                       f"SPT={r.randrange(1024, 65536)} DPT=22 WINDOW=64240 SYN URGP=0", 4),
            ("kernel", "e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex", 6),
            ("CRON", "(root) CMD (cd / && run-parts --report /etc/cron.hourly)", 78),
            ("systemd", f"Started Session {r.randrange(1, 999)} of user deploy.", 30),
            ("postfix/smtpd", f"connect from unknown[{g.v4()}]", 22),
        ))
        tag = prog if prog == "kernel" else f"{prog}[{pid}]"
        bsd = f"{MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}"
        iso = f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
        stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        plain = f"<{pri}>{bsd} {host} {tag}: {text}"
        if shape in ("bare", "kv-only"):
            return f"{bsd} {host} {tag}: {text}"
        if shape == "rfc5424":
            return f"<{pri}>1 {iso} {host} {prog} {pid} - - {text}"
        if shape == "receiver":
            fac = ("Kern", "User", "Mail", "Daemon", "Auth", "Syslog", "Lpr", "News", "Uucp",
                   "Cron")[pri >> 3]
            return f"{t:%Y-%m-%d %H:%M:%S}\t{fac}.{_LEVELS[pri & 7]}\t{host}\t{tag}: {text}"
        if shape == "json-log":
            return self.encode({"log": plain}).decode()
        if shape == "json-message":
            return self.encode({"message": plain, "host": host, "@timestamp": stamp}).decode()
        if shape == "syslog-ng":
            return self.encode({"MESSAGE": text, "HOST": host, "PROGRAM": prog,
                                "PID": pid}).decode()
        if shape == "rsyslog":
            return self.encode({"msg": f" {text}", "rawmsg": plain, "hostname": host,
                                "timereported": stamp, "pri": str(pri), "syslogtag": f"{tag}:",
                                "programname": prog}).decode()
        if shape == "split":
            return self.encode({"@timestamp": stamp, "host": host, "program": prog,
                                "pid": pid, "message": text}).decode()
        return plain

    # -- headers and wrappers -------------------------------------------------------------

    def dress(self, pairs: list[list[str]], shape: str, t: datetime, categories: list[str],
              pri: int, severity: int, variants: tuple[str, ...]) -> str:
        """The pairs as a line (or a record) of the given shape."""
        r = self.r
        host = r.choice(FIREWALLS)
        stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        if shape == "split":
            record: dict[str, str] = {"@timestamp": stamp, "host": host}
            record.update((k, unquote(v)) for k, v in pairs)
            return self.encode(record).decode()
        seps = [" "] * (len(pairs) - 1)
        if "double-space" in variants and seps:
            for k in r.sample(range(len(seps)), min(len(seps), r.choice((1, 1, 2, 3)))):
                seps[k] = "  "
        body = "".join(f"{k}={v}{sep}" for (k, v), sep in zip(pairs, seps + [""], strict=True))
        if "trailing-space" in variants:
            body += r.choice((" ", " ", "  "))
        cats = ",".join(categories)
        dev = t.strftime("%Y-%m-%d %H:%M:%S")
        bsd = f"{MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}"
        iso = f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
        bracketed = f"[{dev}] EFW: {cats}: {body}"
        if shape in ("json-log", "json-message"):
            inner = r.choice(("bracketed", "rfc3164", "rfc3164-plain", "rfc5424"))
            line = self.dress_text(inner, body, cats, bracketed, pri, severity, host, t, bsd,
                                   iso)
            if shape == "json-log":
                return self.encode({"log": line}).decode()
            return self.encode({"message": line, "host": host, "@timestamp": stamp}).decode()
        if shape == "syslog-ng":
            return self.encode({"MESSAGE": bracketed, "HOST": host, "PROGRAM": "EFW"}).decode()
        if shape == "rsyslog":
            return self.encode({
                "msg": f" {cats}: {body}", "rawmsg": f"<{pri}>{bracketed}", "hostname": host,
                "timereported": stamp, "pri": str(pri), "syslogtag": "EFW:",
                "programname": "EFW",
            }).decode()
        return self.dress_text(shape, body, cats, bracketed, pri, severity, host, t, bsd, iso)

    @staticmethod
    def dress_text(shape, body, cats, bracketed, pri, severity, host, t, bsd, iso) -> str:
        if shape in ("bracketed", "raw-ids"):
            return f"<{pri}>{bracketed}"
        if shape == "bare":
            return bracketed
        if shape == "rfc3164":
            return f"<{pri}>{bsd} {host} {bracketed}"
        if shape == "rfc3164-plain":
            return f"<{pri}>{bsd} {host} EFW: {cats}: {body}"
        if shape == "rfc5424":
            return f"<{pri}>1 {iso} {host} EFW - - - {cats}: {body}"
        if shape == "receiver":
            return f"{t:%Y-%m-%d %H:%M:%S}\tLocal0.{_LEVELS[severity]}\t{host}\t{bracketed}"
        if shape == "kv-only":
            return body
        raise AssertionError(shape)
