"""The clean corpus: line ``i`` is message ``i mod len(catalog)`` in shape
``(i div len(catalog)) mod len(shapes)``: any 28 x 11 lines cover every pair, and every
value is written the one way the catalog describes. Its output must not change: the tests
and the benchmark compare against it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from ..catalog import Catalog, Message

SHAPES = (
    "bracketed",      # <PRI>[YYYY-MM-DD hh:mm:ss] EFW: IKE: kv
    "bare",           # [YYYY-MM-DD hh:mm:ss] EFW: IKE: kv (no PRI)
    "rfc3164",        # <PRI>Mmm dd hh:mm:ss host [time] EFW: IKE: kv
    "rfc5424",        # <PRI>1 ISO-TIME host EFW - - - IKE: kv
    "receiver",       # receiver columns, tab-separated, then the bracketed line
    "json-log",       # {"log": line}  (Fluent Bit, Fluentd)
    "json-message",   # {"message": line, "host": ...}  (Logstash, Vector)
    "syslog-ng",      # {"MESSAGE": body after the header, "HOST": ...}
    "rsyslog",        # rsyslog fulljson: msg, rawmsg, hostname, timereported, pri
    "split",          # pairs already split into fields by the shipper
    "raw-ids",        # bracketed, with IDs zero-padded as older firmware writes them
)
JSON_SHAPES = frozenset({"json-log", "json-message", "syslog-ng", "rsyslog", "split"})
MIXES = ("clean", "wild")

FIREWALLS = ("fw-hq-01", "fw-branch-07", "gw.example.net")
LOCAL_V4 = ("203.0.113.1", "203.0.113.2", "198.51.100.254")
_LOCAL_V6 = ("2001:db8:0:1::1", "2001:db8:0:2::1")
_IDS = (
    "CN=vpn.example.com, O=Example AB, C=SE",
    "alice@example.com",
    "gw1.example.net",
    "bob.smith@corp.example",
    "CN=branch-07, OU=Stores, O=Example AB",
)
_USERS = ("alice@example.com", "bob", "carol.jones@example.org", "dave")
_ALGS = (
    "AES-256 SHA256 DH14", "AES-128-GCM PRF-SHA256 DH19", "AES-256-GCM PRF-SHA384 DH20",
    "3DES SHA1 DH2",
)
_REASONS = (
    "No proposal chosen", "Authentication failed", "Timeout", "Invalid syntax",
    "Peer sent \\\"INVALID_KE_PAYLOAD\\\"", "TS unacceptable",
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def v4(self) -> str:
        r = self.r
        first = r.choice((81, 92, 185, 62, 88))
        return f"{first}.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"

    def v6(self) -> str:
        r = self.r
        a, b, c = r.randrange(0x10000), r.randrange(0x10000), r.randrange(1, 0x10000)
        return f"2a02:{a:x}:{b:x}::{c:x}"

    def spi(self, nbytes: int) -> str:
        return "".join(f"{self.r.randrange(256):02x}" for _ in range(nbytes))

    def value(self, name: str, ctx: dict[str, str]) -> str:
        r = self.r
        six = ctx["family"] == "6"
        if name == "localip":
            return r.choice(_LOCAL_V6 if six else LOCAL_V4)
        if name in ("remoteip", "srcip", "destip"):
            return self.v6() if six else self.v4()
        if name == "ip":
            return f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}"
        if name in ("localport", "remoteport"):
            return r.choice(("500", "4500"))
        if name in ("srcport", "destport"):
            return str(r.randrange(1024, 65536))
        if name in ("localid", "remoteid"):
            return quote(r.choice(_IDS))
        if name.endswith("ikespi"):
            return self.spi(8)
        if name.endswith("boundspi"):
            return self.spi(4)
        if name == "initiator":
            return r.choice(("true", "false"))
        if name == "algorithms":
            return quote(r.choice(_ALGS))
        if name in ("rekeytime", "reauthtime"):
            return str(r.choice((3600, 7200, 28800, 86400)))
        if name == "lifetime":
            return str(r.choice((1800, 3600, 28800)))
        if name == "ikeversion":
            return r.choice(("2", "2", "1"))
        if name == "reason":
            return quote(r.choice(_REASONS))
        if name == "iface":
            return r.choice(("wan", "ipsec_tun1", "ipsec_branch07"))
        if name == "recviface":
            return r.choice(("wan", "wan2"))
        if name == "proto":
            return r.choice(("ESP", "ESP", "AH"))
        if name in ("localts", "remotets"):
            return f"10.{r.randrange(256)}.{r.randrange(256)}.0/24"
        if name == "name":
            return r.choice(("vpn_pool", "roadwarrior_pool"))
        if name == "count":
            return str(r.randrange(1, 254))
        if name == "max":
            return str(r.choice((16, 64, 1000)))
        if name == "userid":
            return quote(r.choice(_USERS))
        return "x"


def quote(value: str) -> str:
    return f'"{value}"' if (" " in value or "=" in value or '"' in value) else value


def unquote(value: str) -> str:
    if value.startswith('"') and value.endswith('"'):
        return value[1:-1].replace('\\"', '"')
    return value


def _render(g: Gen, msg: Message, shape: str, t: datetime, encode) -> str:
    r = g.r
    ctx = {"family": "6" if r.random() < 0.2 else "4"}
    prio = 7 - msg.severity_code
    ident = f"{msg.id:08d}" if shape == "raw-ids" else str(msg.id)
    pairs = [("prio", str(prio)), ("id", ident), ("rev", "1"),
             ("event", msg.ecs.action.replace("-", "_"))]
    pairs += [(name, g.value(name, ctx)) for name in msg.parameters]
    body = " ".join(f"{k}={v}" for k, v in pairs)
    cats = ",".join(msg.categories)
    host = r.choice(FIREWALLS)
    pri = 16 * 8 + msg.severity_code
    dev = t.strftime("%Y-%m-%d %H:%M:%S")
    bracketed = f"[{dev}] EFW: {cats}: {body}"
    if shape in ("bracketed", "raw-ids", "json-log"):
        line = f"<{pri}>{bracketed}"
        return encode({"log": line}).decode() if shape == "json-log" else line
    if shape == "bare":
        return bracketed
    if shape in ("rfc3164", "json-message"):
        line = f"<{pri}>{MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S} {host} {bracketed}"
        if shape == "json-message":
            return encode({"message": line, "host": host, "@timestamp": t.isoformat()}).decode()
        return line
    if shape == "rfc5424":
        stamp = f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
        return f"<{pri}>1 {stamp} {host} EFW - - - {cats}: {body}"
    if shape == "receiver":
        level = ("Emerg", "Alert", "Crit", "Error", "Warning", "Notice", "Info", "Debug")
        return f"{t:%Y-%m-%d %H:%M:%S}\tLocal0.{level[msg.severity_code]}\t{host}\t{bracketed}"
    if shape == "syslog-ng":
        return encode({"MESSAGE": bracketed, "HOST": host, "PROGRAM": "EFW"}).decode()
    if shape == "rsyslog":
        raw = f"<{pri}>{bracketed}"
        return encode({
            "msg": f" {cats}: {body}", "rawmsg": raw, "hostname": host,
            "timereported": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "pri": str(pri),
            "syslogtag": "EFW:", "programname": "EFW",
        }).decode()
    if shape == "split":
        record: dict[str, str] = {"@timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "host": host}
        record.update((k, unquote(v)) for k, v in pairs)
        return encode(record).decode()
    if shape == "rfc3164-plain":
        return f"<{pri}>{MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S} {host} EFW: {cats}: {body}"
    if shape == "kv-only":
        return body
    raise AssertionError(shape)


# -- the wild mix ------------------------------------------------------------------------------


def clean_lines(catalog: Catalog, count: int, seed: int, shapes: tuple[str, ...],
                t0: datetime, encode) -> Iterator[str]:
    """The clean corpus's ``count`` lines in ``shapes``."""
    g = Gen(seed)
    messages = catalog.messages
    for i in range(count):
        msg = messages[i % len(messages)]
        shape = shapes[(i // len(messages)) % len(shapes)]
        t = t0 + timedelta(seconds=i // 7, milliseconds=0)
        yield _render(g, msg, shape, t, encode)
