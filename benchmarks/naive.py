"""The naive reference filter: the baseline every ratio in ``run.py`` is measured against.

What a competent engineer writes in an afternoon with the standard library: one regex for the
syslog header, one for the ``name=value`` pairs, plain dicts, ``json.loads`` / ``json.dumps``,
one line at a time. It reads the same input shapes (every header, no header at all, the
JSON records pipelines wrap lines in, records a shipper already split) and value forms
(quoted or bare, multi-word bare values, IDs with leading zeros, SPIs with ``0x`` or in
uppercase, booleans spelled yes/no, on/off or 1/0 in any case, unknown parameters), and
writes the same ECS document for the main fields (``@timestamp``, ``event.*``, ``message``,
``log.*``, ``observer.*``, ``source``/``destination``, ``network``, ``user``, ``related``,
``clavister.*``), with the message text and ECS classification taken from the same catalog JSON.

It is not deliberately slow: the two obvious one-line wins are in (``functools.lru_cache`` on
IP parsing and on the keyed hash), and nothing is validated that ikefilter does not validate
too. It is not part of the product and handles the odd line only as well as such code would.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import ipaddress
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

LEVELS = ("emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug")
SEVERITY_NAMES = {name: code for code, name in enumerate(LEVELS)} | {
    "emerg": 0, "crit": 2, "err": 3, "warn": 4, "info": 6, "information": 6,
}
FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
              "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")
EMAIL = re.compile(r"([^\s@\\=,\"<>()\[\]]+)@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                   r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)")
LOGON = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,63})\\([^\s\\@=,\"]+)")
DATA_STREAM = {"type": "logs", "dataset": "clavister.log", "namespace": "default"}

HEADER = re.compile(
    r"^(?:<(?P<pri>\d{1,3})>)?"
    r"(?:(?P<recv>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\t(?P<recvpri>[^\t]*)\t(?P<recvhost>[^\t]*)\t"
    r"|1 (?P<iso>\S+) (?P<host5424>\S+) \S+ \S+ \S+ \S+ "
    r"|(?P<bsd>[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d) (?P<bsdhost>\S+) )?"
    r"(?:\[(?P<dev>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] *)?"
    r"(?:EFW: *)?(?P<cats>[A-Z][A-Z0-9_,]*): *(?P<body>.*)$"
)
BODY_ONLY = re.compile(r"[A-Za-z_][\w.\-]*=")
# a bare value runs over several words up to the next name= (action=correct the data)
PAIR = re.compile(
    r'([A-Za-z_][\w.\-]*)=(?:"((?:[^"\\]|\\.)*)"|(\S*(?: (?![A-Za-z_][\w.\-]*=)[^\s=]+)*))'
)
ESCAPE = re.compile(r"\\(.)")
IP_TEXT = re.compile(
    r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})"
    r"(?![\w:]|\.\d)"
)

SOURCE_KEYS = ("log", "message", "rawmsg", "MESSAGE", "msg")
TIME_KEYS = ("@timestamp", "timestamp", "time", "timereported", "DATE")
HOST_KEYS = ("host", "hostname", "HOST", "fromhost")
RECORD_META = set(TIME_KEYS + HOST_KEYS + ("tag", "source", "pri", "severity", "facility"))
HEADER_KEYS = {"prio", "id", "rev", "event", "action"}
KNOWN = {
    "localip", "localport", "remoteip", "remoteport", "srcip", "srcport", "destip", "destport",
    "localid", "remoteid", "localikespi", "remoteikespi", "oldlocalikespi", "oldremoteikespi",
    "initiator", "algorithms", "rekeytime", "reauthtime", "ikeversion", "reason", "iface",
    "recviface", "inboundspi", "outboundspi", "oldinboundspi", "oldoutboundspi", "proto",
    "localts", "remotets", "lifetime", "ip", "name", "count", "max", "userid",
}
MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


@functools.lru_cache(maxsize=65536)
def canonical_ip(text):
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None


def to_int(value, hi=None):
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    if n < 0 or (hi is not None and n > hi):
        return None
    return n


def to_bool(value):
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off"):
        return False
    return None


def to_spi(value):
    v = value.strip().lower()
    if v.startswith("0x"):
        v = v[2:]
    try:
        int(v, 16)
    except ValueError:
        return None
    return v


def iso_time(text):
    try:
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def column_pri(text):
    """A receiver's ``Local0.Info`` column as a PRI."""
    facility, _, severity = text.lower().rpartition(".")
    if facility in FACILITIES and severity in SEVERITY_NAMES:
        return FACILITIES.index(facility) * 8 + SEVERITY_NAMES[severity]
    return None


def user_of(identity, always=False):
    m = EMAIL.fullmatch(identity)
    if m:
        return {"name": m[1], "email": identity, "domain": m[2].lower()}
    m = LOGON.fullmatch(identity)
    if m:
        return {"name": m[2], "domain": m[1]}
    return {"name": identity} if always else None


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NaiveFilter:
    """Line in, ECS dict out.

    :param catalog_path: the catalog JSON (``catalog/ike.json``).
    :param redact_key: when set, IPs and identities are replaced by keyed HMAC-SHA256 tokens
        (IPs move to ``*.address``) and ``event.original`` is dropped.
    :param severity_rules: ``[{"field": "event.action", "values": [...], "severity": "critical"}]``;
        the first matching rule sets the severity.
    """

    def __init__(self, catalog_path=None, redact_key=None, severity_rules=()):
        path = Path(catalog_path or Path(__file__).resolve().parent.parent / "catalog/ike.json")
        with open(path, encoding="utf-8") as f:
            catalog = json.load(f)
        self.messages = {m["id"]: m for m in catalog["messages"]}
        self.redact_key = redact_key
        self.rules = [
            (r["field"], set(r["values"]), SEVERITY_NAMES[r["severity"]]) for r in severity_rules
        ]
        if redact_key is not None:
            self.token = functools.lru_cache(maxsize=65536)(self._token)

    # -- input shapes -----------------------------------------------------------------------

    def process_line(self, line):
        if line.startswith("{"):
            return self.process_record(json.loads(line), line)
        return self.process_text(line)

    def process_text(self, line):
        m = HEADER.match(line)
        if m is None:
            if BODY_ONLY.match(line):  # a shipper cut the header off: the pairs alone
                params = self.split_pairs(line)
                if "id" in params:
                    return self.normalize(params, line, None, None, None, None)
            return {"message": line}
        params = self.split_pairs(m.group("body"))
        pri = int(m.group("pri")) if m.group("pri") else None
        if pri is None and m.group("recvpri"):
            pri = column_pri(m.group("recvpri"))
        if m.group("dev"):
            time = m.group("dev").replace(" ", "T") + ".000Z"
        elif m.group("iso"):
            time = iso_time(m.group("iso"))
        elif m.group("bsd"):
            time = self.bsd_time(m.group("bsd"))
        elif m.group("recv"):
            time = m.group("recv").replace(" ", "T") + ".000Z"
        else:
            time = None
        host = m.group("host5424") or m.group("bsdhost") or m.group("recvhost") or None
        return self.normalize(params, line, pri, time, host, m.group("cats").split(","))

    def process_record(self, record, original=None):
        line = None
        for key in SOURCE_KEYS:
            if isinstance(record.get(key), str):
                line = record[key]
                break
        host = next((record[k] for k in HOST_KEYS if record.get(k)), None)
        rtime = next((record[k] for k in TIME_KEYS if record.get(k)), None)
        rtime = iso_time(rtime) if rtime else None
        pri = int(record["pri"]) if str(record.get("pri", "")).isdigit() else None
        if line is not None:
            doc = self.process_text(line)
            if "event" not in doc:
                return record
            if doc["@timestamp"] is None:
                doc["@timestamp"] = rtime
            if host and "hostname" not in doc["observer"] and "ip" not in doc["observer"]:
                self.set_host(doc["observer"], host)
            return doc
        if "id" in record:
            params = {k: v if isinstance(v, str) else json.dumps(v)
                      for k, v in record.items() if k not in RECORD_META and v is not None}
            if original is None:
                original = json.dumps(record)
            return self.normalize(params, original, pri, rtime, host, None)
        return record

    def split_pairs(self, body):
        params = {}
        for name, quoted, bare in PAIR.findall(body):
            if quoted:
                params[name] = ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
            else:
                params[name] = bare
        return params

    def bsd_time(self, text):
        month, day, clock = text.split()
        now = datetime.now(timezone.utc)
        year = now.year
        if (MONTHS[month], int(day)) > (now.month, now.day + 1):
            year -= 1
        return f"{year:04d}-{MONTHS[month]:02d}-{int(day):02d}T{clock}.000Z"

    def set_host(self, observer, host):
        ip = canonical_ip(host)
        if ip is None:
            observer["hostname"] = host
        else:
            observer["ip"] = [ip]

    # -- the ECS document -------------------------------------------------------------------

    def normalize(self, p, original, pri, time, host, categories):
        msg = None
        code = None
        if "id" in p:
            try:
                code = str(int(p["id"]))
                msg = self.messages.get(int(p["id"]))
            except ValueError:
                pass
        extra = {k: v for k, v in p.items() if k not in HEADER_KEYS and k not in KNOWN}
        prio = to_int(p.get("prio"), 7)
        if prio is not None:
            severity = 7 - prio
        elif pri is not None:
            severity = pri & 7
        elif msg is not None:
            severity = msg["severity_code"]
        else:
            severity = None

        event = {"kind": "event", "module": "clavister", "dataset": "clavister.log"}
        doc = {"@timestamp": time, "event": event}
        if code is not None:
            event["code"] = code
        observer = {"vendor": "Clavister", "product": "cOS Stream", "type": "firewall"}
        if host:
            self.set_host(observer, host)
        clav = {"categories": categories}
        if prio is not None:
            clav["prio"] = prio
        for key in ("rev", "event", "action"):
            if p.get(key):
                clav[key] = p[key]

        if msg is not None:
            ecs = msg["ecs"]
            event["action"] = ecs["action"]
            event["category"] = ecs["category"]
            event["type"] = ecs["type"]
            if ecs.get("outcome"):
                event["outcome"] = ecs["outcome"]
            if p.get("reason"):
                event["reason"] = p["reason"]
            doc["message"] = msg["message"]
            if categories is None:
                clav["categories"] = msg["categories"]
            self.known_fields(doc, clav, observer, p, extra)
        else:
            extra.update({k: v for k, v in p.items() if k in KNOWN})
        if severity is not None:
            event["severity"] = severity
            doc["log"] = {"level": LEVELS[severity]}
        if pri is not None and pri < 192:
            doc.setdefault("log", {"level": LEVELS[pri & 7]})
            doc["log"]["syslog"] = {
                "priority": pri,
                "facility": {"code": pri >> 3, "name": FACILITIES[pri >> 3]},
                "severity": {"code": pri & 7, "name": LEVELS[pri & 7]},
            }
        event["original"] = original
        event["ingested"] = now_iso()
        doc["observer"] = observer
        doc["tags"] = ["clavister", "ike"] if msg is not None else ["clavister", "ike",
                                                                    "ikefilter_unknown_message"]
        if clav["categories"] is None:
            del clav["categories"]
        if extra:
            clav["extra"] = extra
        doc["clavister"] = clav
        doc["ecs"] = {"version": "9.5.0"}
        doc["data_stream"] = dict(DATA_STREAM)
        if self.rules:
            self.apply_rules(doc)
        if self.redact_key is not None:
            self.redact(doc)
        return doc

    def known_fields(self, doc, clav, observer, p, extra):
        def ip(name):
            if not p.get(name):
                return None
            value = canonical_ip(p[name])
            if value is None:
                extra[name] = p[name]
            return value

        def num(name, hi=None):
            if not p.get(name):
                return None
            value = to_int(p[name], hi)
            if value is None:
                extra[name] = p[name]
            return value

        local_ip, remote_ip = ip("localip"), ip("remoteip")
        local_port, remote_port = num("localport", 65535), num("remoteport", 65535)
        src_ip, dst_ip = ip("srcip"), ip("destip")
        src_port, dst_port = num("srcport", 65535), num("destport", 65535)
        initiator = to_bool(p["initiator"]) if p.get("initiator") else None
        if any(v is not None for v in (local_ip, remote_ip, local_port, remote_port)):
            local = {k: v for k, v in (("ip", local_ip), ("port", local_port)) if v is not None}
            remote = {k: v for k, v in (("ip", remote_ip), ("port", remote_port)) if v is not None}
            doc["source"], doc["destination"] = (local, remote) if initiator else (remote, local)
        elif any(v is not None for v in (src_ip, dst_ip, src_port, dst_port)):
            doc["source"] = {k: v for k, v in (("ip", src_ip), ("port", src_port)) if v is not None}
            doc["destination"] = {
                k: v for k, v in (("ip", dst_ip), ("port", dst_port)) if v is not None
            }

        pool_ip = ip("ip")
        ips = [v for v in (local_ip, remote_ip, src_ip, dst_ip, pool_ip) if v is not None]
        proto = p.get("proto")
        if "source" in doc:
            network = {"transport": proto.lower(), "protocol": "ipsec"} if proto else {
                "transport": "udp", "protocol": "ike"}
            if ips:
                network["type"] = "ipv6" if ":" in ips[0] else "ipv4"
            if initiator is not None:
                network["direction"] = "outbound" if initiator else "inbound"
            doc["network"] = network
        users = [p[k] for k in ("userid", "localid", "remoteid") if p.get(k)]
        user = user_of(p["userid"], True) if p.get("userid") else None
        for key in ("remoteid", "localid"):
            if user is None and p.get(key):
                user = user_of(p[key])
        if user:
            doc["user"] = user
        if ips or users:
            related = {}
            if ips:
                related["ip"] = list(dict.fromkeys(ips))
            if users:
                related["user"] = list(dict.fromkeys(users))
            doc["related"] = related
        if p.get("recviface"):
            observer["ingress"] = {"interface": {"name": p["recviface"]}}
        if p.get("iface"):
            clav["iface"] = p["iface"]

        ike = {
            "local_id": p.get("localid") or None,
            "remote_id": p.get("remoteid") or None,
            "initiator": initiator,
            "algorithms": p.get("algorithms") or None,
            "version": num("ikeversion"),
            "rekey_time": num("rekeytime"),
            "reauth_time": num("reauthtime"),
        }
        for key, name in (("local_spi", "localikespi"), ("remote_spi", "remoteikespi"),
                          ("old_local_spi", "oldlocalikespi"), ("old_remote_spi",
                                                                "oldremoteikespi")):
            if p.get(name):
                ike[key] = to_spi(p[name])
        ike = {k: v for k, v in ike.items() if v is not None}
        if ike:
            clav["ike"] = ike
        ipsec = {
            "protocol": proto.lower() if proto else None,
            "local_ts": p.get("localts") or None,
            "remote_ts": p.get("remotets") or None,
            "lifetime": num("lifetime"),
        }
        for key, name in (("inbound_spi", "inboundspi"), ("outbound_spi", "outboundspi"),
                          ("old_inbound_spi", "oldinboundspi"),
                          ("old_outbound_spi", "oldoutboundspi")):
            if p.get(name):
                ipsec[key] = to_spi(p[name])
        ipsec = {k: v for k, v in ipsec.items() if v is not None}
        if ipsec:
            clav["ipsec"] = ipsec
        pool = {"name": p.get("name") or None, "address": pool_ip, "count": num("count")}
        pool = {k: v for k, v in pool.items() if v is not None}
        if pool:
            clav["ip_pool"] = pool
        if p.get("max"):
            clav["limit"] = {"max": num("max")}

    # -- site rules and redaction -----------------------------------------------------------

    def apply_rules(self, doc):
        for field, values, severity in self.rules:
            section, _, key = field.partition(".")
            if doc.get(section, {}).get(key) in values:
                old = doc["event"].get("severity")
                if old is not None and old != severity:
                    doc["clavister"]["original_severity"] = old
                doc["event"]["severity"] = severity
                doc.setdefault("log", {})["level"] = LEVELS[severity]
                return

    def _token(self, value):
        return hmac.new(self.redact_key, value.encode(), hashlib.sha256).hexdigest()[:16]

    def scrub(self, text):
        return IP_TEXT.sub(lambda m: self.token(m[0]) if canonical_ip(m[0]) else m[0], text)

    def redact(self, doc):
        """Pseudonyms are not IPs, so they move to ``*.address`` and ``related.ip``
        goes; identities, IPs in free text and in ``clavister.extra`` are replaced too."""
        token = self.token
        doc["event"].pop("original", None)
        for side in ("source", "destination"):
            endpoint = doc.get(side)
            if endpoint and "ip" in endpoint:
                endpoint["address"] = token(endpoint.pop("ip"))
        related = doc.get("related")
        if related:
            related.pop("ip", None)
            if "user" in related:
                related["user"] = list(dict.fromkeys(token(v) for v in related["user"]))
            if not related:
                del doc["related"]
        if "user" in doc:
            doc["user"] = {k: token(v) for k, v in doc["user"].items()}
        host = doc["observer"].get("hostname")
        if host and canonical_ip(host):
            doc["observer"]["hostname"] = token(host)
        if "ip" in doc["observer"]:
            doc["observer"]["hostname"] = token(doc["observer"].pop("ip")[0])
        if doc["event"].get("reason"):
            doc["event"]["reason"] = self.scrub(doc["event"]["reason"])
        clav = doc["clavister"]
        ike = clav.get("ike")
        if ike:
            for key in ("local_id", "remote_id"):
                if key in ike:
                    ike[key] = token(ike[key])
        pool = clav.get("ip_pool")
        if pool and "address" in pool:
            pool["token"] = token(pool.pop("address"))
        ipsec = clav.get("ipsec")
        if ipsec:
            for key in ("local_ts", "remote_ts"):
                if key in ipsec:
                    ipsec[key] = self.scrub(ipsec[key])
        extra = clav.get("extra")
        if extra:
            for key, value in extra.items():
                if key in ("localip", "remoteip", "srcip", "destip", "ip", "localid", "remoteid",
                           "userid"):
                    extra[key] = token(value)
                else:
                    extra[key] = self.scrub(value)

    # -- streams ----------------------------------------------------------------------------

    def run(self, infile, outfile):
        """Filter a binary stream of lines to a binary stream of JSON lines."""
        for raw in infile:
            doc = self.process_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            if doc.get("@timestamp", "") is None:
                doc["@timestamp"] = now_iso()
            outfile.write(json.dumps(doc).encode() + b"\n")

    def run_forward(self, frames, outfile):
        """Filter PackedForward frames to JSON lines, with the ``msgpack`` package."""
        import msgpack

        for frame in frames:
            _tag, entries, *_option = msgpack.unpackb(frame, raw=False)
            for _time, record in msgpack.Unpacker(io.BytesIO(entries), raw=False,
                                                  unicode_errors="replace"):
                doc = self.process_record(record)
                if doc.get("@timestamp", "") is None:
                    doc["@timestamp"] = now_iso()
                outfile.write(json.dumps(doc).encode() + b"\n")


def main(argv=None) -> int:
    """``python naive.py [--catalog ike.json] < lines > documents``, as ``ikefilter run``
    is used, so the two can be timed as whole processes."""
    import argparse

    p = argparse.ArgumentParser(description="the naive reference filter: lines on stdin, "
                                "one ECS JSON document per line on stdout")
    p.add_argument("--catalog", help="the catalog JSON (default: catalog/ike.json)")
    args = p.parse_args(argv)
    NaiveFilter(catalog_path=args.catalog).run(sys.stdin.buffer, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
