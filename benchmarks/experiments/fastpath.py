#!/usr/bin/env python3
"""Micro-benchmarks of fast-path ideas for the raw-line path, each checked for equal output.

Every candidate runs over the same generated lines as the code it would replace, on one
pinned core, best of N (CPU time), and must give the same result on every line it accepts
(a candidate may decline a line, which then costs the fallback). Nothing here is used by
ikefilter: it is evidence for changes to wire.py / normalize.py.

    python benchmarks/experiments/fastpath.py [--events 20000] [--reps 7]
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
try:
    import ikefilter  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent.parent))

import msgspec  # noqa: E402

from ikefilter import generate, normalize, wire  # noqa: E402
from ikefilter.catalog import load  # noqa: E402

TEXT_SHAPES = ("bracketed", "bare", "rfc3164", "rfc5424", "receiver", "raw-ids")


def bench(fn, items, reps):
    best = float("inf")
    for _ in range(reps):
        gc.collect()
        t0 = time.process_time()
        fn(items)
        best = min(best, time.process_time() - t0)
    return best / len(items) * 1e6


# -- header -----------------------------------------------------------------------------------

_DIGITS = frozenset("0123456789")
_DEVTIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").fullmatch
_CATS = re.compile(r"[A-Z][A-Z0-9_]*(?:,[A-Z][A-Z0-9_]*)*").fullmatch


def header_partition(line: str):
    """``<PRI>[YYYY-MM-DD hh:mm:ss] EFW: CATS: body`` (and without ``<PRI>``) by slicing and
    ``str.partition``; None for any other shape (the regex then decides)."""
    pri = None
    rest = line
    if line[:1] == "<":
        end = line.find(">", 1, 5)
        if end < 0 or not line[1:end].isdigit():
            return None
        pri = line[1:end]
        rest = line[end + 1:]
    if rest[:1] != "[" or rest[20:27] != "] EFW: " or _DEVTIME(rest, 1, 20) is None:
        return None
    cats, sep, body = rest[27:].partition(": ")
    if not sep or _CATS(cats) is None:
        return None
    return pri, rest[1:20], cats, body


def header_regex(line: str):
    m = wire._HEADER.match(line)
    if m is None or m["devtime"] is None or m["ts3164"] or m["ts5424"] or m["recv"]:
        return None
    return m["pri"], m["devtime"], m["cats"], line[m.end():]


# -- time -------------------------------------------------------------------------------------

_stamps: dict[str, str | None] = {}


def time_memo(stamp: str) -> str | None:
    """The device time as RFC 3339, memoized: lines of one second share it."""
    hit = _stamps.get(stamp)
    if hit is None:
        hit = wire.utc_iso(stamp.replace(" ", "T") + "Z")
        if len(_stamps) > 4096:
            _stamps.clear()
        _stamps[stamp] = hit
    return hit


# -- pairs ------------------------------------------------------------------------------------

# One regex for a pair: name, then a quoted value (no escapes) or a bare word. The value
# group is the same group in both cases, so split() gives [sep, name, value, sep, ...].
_PAIR_SPLIT = re.compile(
    r'([A-Za-z_][\w.\-]*)="?((?<=")[^"\\]*(?=")|(?<!")[^\s"\\\[\]]*)"?'
)


def pairs_split(body: str) -> dict[str, str] | None:
    """All pairs with one ``re.split``; the separators prove the whole body was pairs
    separated by single spaces. None (exact path) otherwise."""
    if "\\" in body:
        return None
    parts = _PAIR_SPLIT.split(body)
    seps = parts[::3]
    if seps[0] or seps[-1] or seps.count(" ") != len(seps) - 2:
        return None
    return dict(zip(parts[1::3], parts[2::3], strict=True))


_PAIR_FINDALL = re.compile(r'([A-Za-z_][\w.\-]*)=(?:"([^"\\]*)"|([^\s"\\\[\]]*))')


def pairs_findall(body: str) -> dict[str, str] | None:
    """findall + a dict comprehension (no coverage check: for its cost only)."""
    return {n: q or b for n, q, b in _PAIR_FINDALL.findall(body)}


_PAIR_BYTES = re.compile(rb'([A-Za-z_][\w.\-]*)="?((?<=")[^"\\]*(?=")|(?<!")[^\s"\\\[\]]*)"?')


def pairs_bytes_split(body: bytes) -> dict[str, str] | None:
    """The same split on bytes; names and values then decoded to str one by one."""
    parts = _PAIR_BYTES.split(body)
    seps = parts[::3]
    if seps[0] or seps[-1] or seps.count(b" ") != len(seps) - 2:
        return None
    return {n.decode(): v.decode() for n, v in zip(parts[1::3], parts[2::3], strict=True)}


# -- typing -----------------------------------------------------------------------------------

_INT_NAMES = tuple(sorted(normalize._INT_PARAMS))
_isdigit = str.isdigit


def typed_fast_map(p: dict[str, str]):
    """typed_fast with its two Python loops folded into C iteration (map/all, a set)."""
    try:
        t = msgspec.convert(p, normalize.Params, strict=False)
    except msgspec.ValidationError:
        return None
    ints = normalize._INT_PARAMS.intersection(p)
    if ints and not all(map(_isdigit, map(p.__getitem__, ints))):
        return None
    for ip in (t.localip, t.remoteip, t.srcip, t.destip, t.ip):
        if ip is not None and (not ip or normalize.valid_ip(ip) != ip):
            return None
    return t


_V4 = r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_Digits = msgspec.Meta(pattern=r"^\d+$")


def _params_checked():
    """Params where msgspec itself checks what typed_fast checks in Python: IPv4 by pattern
    (an IPv6 value fails it and takes the exact path), integers as digit strings."""
    fields = []
    for f in msgspec.structs.fields(normalize.Params):
        tp = f.type
        if f.name in ("localip", "remoteip", "srcip", "destip", "ip"):
            from typing import Annotated

            tp = Annotated[str, msgspec.Meta(pattern=f"^{_V4}$")] | None
        fields.append((f.name, tp, None))
    return msgspec.defstruct("ParamsChecked", fields, gc=False)


ParamsChecked = _params_checked()


def typed_pattern(p: dict[str, str]):
    try:
        return msgspec.convert(p, ParamsChecked, strict=False)
    except msgspec.ValidationError:
        return None


# -- extra ------------------------------------------------------------------------------------


def extra_comprehension(p):
    return {k: v for k, v in p.items() if k not in normalize._CONSUMED}


def extra_keys(p):
    if p.keys() <= normalize._CONSUMED:
        return {}
    return {k: v for k, v in p.items() if k not in normalize._CONSUMED}


# -- pairs straight into the typed Struct ---------------------------------------------------


_IP_TEXT = r"^(?:" + _V4 + r"|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$"


def _params_text():
    """Params as text, checked by msgspec patterns, plus ``id``, rejecting unknown names.

    Integers must be plain digits, IPv4 must be canonical, IPv6 must look like one (it is
    checked in Python), SPIs lowercase hex. A line with a parameter the catalog does not
    know, or a name that is not one, fails the decode and takes the current path.
    """
    from typing import Annotated

    digits = Annotated[str, msgspec.Meta(pattern=r"^\d+$")]
    ip = Annotated[str, msgspec.Meta(pattern=_IP_TEXT)]
    fields = [("id", str | None, None)]
    for f in msgspec.structs.fields(normalize.Params):
        if f.name in normalize._INT_PARAMS:
            tp = digits | None
        elif f.name in ("localip", "remoteip", "srcip", "destip", "ip"):
            tp = ip | None
        elif f.name == "initiator":
            tp = str | None  # "true"/"false": the lax convert makes the bool
        else:
            tp = f.type
        fields.append((f.name, tp, None))
    return msgspec.defstruct("ParamsText", fields, gc=False, forbid_unknown_fields=True)


ParamsText = _params_text()
_TEXT = msgspec.json.Decoder(ParamsText)


def _rewrite(body: str) -> str | None:
    """wire._fast_pairs' rewrite of the pairs as JSON (its checks, without the decode)."""
    if "\\" in body or "[" in body or "]" in body or not body.isascii():
        return None
    parts = body.split('"')
    n = len(parts)
    if n == 1:
        return '{"' + body.replace("=", '":"').replace(" ", '","') + '"}'
    if not n & 1 or not all(part.endswith("=") for part in parts[:-1:2]) or any(
        part and part[0] != " " for part in parts[2::2]
    ):
        return None
    parts[::2] = [part.replace("=", '":"').replace(" ", '","') for part in parts[::2]]
    return '{"' + "".join(parts) + '"}'


def pairs_typed(body: str):
    """Pairs and their types in two C calls: decode into checked text, then convert the
    digit strings to ranged ints. None -> the current path."""
    text = _rewrite(body)
    if text is None:
        return None
    try:
        t = _TEXT.decode(text)
        typed = msgspec.convert(t, normalize.Params, from_attributes=True, strict=False)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    for ip in (t.localip, t.remoteip, t.srcip, t.destip, t.ip):
        if ip is not None and ":" in ip and normalize.valid_ip(ip) != ip:
            return None
    return typed


def _params_lax():
    """Params plus ``id``, unknown names rejected, SPIs as plain text (no pattern)."""
    fields = [("id", str | None, None)]
    for f in msgspec.structs.fields(normalize.Params):
        fields.append((f.name, str | None if "spi" in f.name else f.type, None))
    return msgspec.defstruct("ParamsLax", fields, gc=False, forbid_unknown_fields=True)


ParamsLax = _params_lax()
_LAX = msgspec.json.Decoder(ParamsLax, strict=False)
_HEXDIGITS = "0123456789abcdef"


def pairs_lax(body: str):
    """One lax decode straight into the typed Struct; SPIs and IPv6 checked in Python.

    NOT exact: msgspec reads "5e2" and "500.0" as integers where the exact path calls them
    invalid, so this is the bound of what the idea can give, not a drop-in.
    """
    text = _rewrite(body)
    if text is None:
        return None
    try:
        t = _LAX.decode(text)
    except msgspec.DecodeError:
        return None
    for spi in (t.localikespi, t.remoteikespi, t.oldlocalikespi, t.oldremoteikespi,
                t.inboundspi, t.outboundspi, t.oldinboundspi, t.oldoutboundspi):
        if spi is not None and (not spi or spi.strip(_HEXDIGITS)):
            return None
    for ip in (t.localip, t.remoteip, t.srcip, t.destip, t.ip):
        if ip is not None and (not ip or normalize.valid_ip(ip) != ip):
            return None
    return t


def _record_lax():
    """A pre-split JSON record (``split`` shape) straight into typed fields."""
    fields = [("timestamp", str | None, msgspec.field(default=None, name="@timestamp")),
              ("host", str | None, None)]
    fields += [(f.name, f.type, None) for f in msgspec.structs.fields(ParamsLax)]
    return msgspec.defstruct("RecordLax", fields, gc=False, forbid_unknown_fields=True)


RecordLax = _record_lax()
_RECORD_LAX = msgspec.json.Decoder(RecordLax, strict=False)
_RECORD_DICT = msgspec.json.Decoder(dict)


def record_current(line: str):
    """What Pipeline._from_record + typed_fast do with a split record, for the same result."""
    from ikefilter import pipeline as pl

    record = _RECORD_DICT.decode(line)
    params = {k: v if isinstance(v, str) else msgspec.json.encode(v).decode()
              for k, v in record.items() if k not in pl._RECORD_META and v is not None}
    q = {k: v for k, v in params.items() if k not in ("id",)}
    return normalize.typed_fast(q), pl._record_time(record)


def record_lax(line: str):
    """One decode; the same SPI/IP checks as pairs_lax (and the same caveat on ints)."""
    try:
        t = _RECORD_LAX.decode(line)
    except msgspec.DecodeError:
        return None
    for spi in (t.localikespi, t.remoteikespi, t.oldlocalikespi, t.oldremoteikespi,
                t.inboundspi, t.outboundspi, t.oldinboundspi, t.oldoutboundspi):
        if spi is not None and (not spi or spi.strip(_HEXDIGITS)):
            return None
    for ip in (t.localip, t.remoteip, t.srcip, t.destip, t.ip):
        if ip is not None and (not ip or normalize.valid_ip(ip) != ip):
            return None
    return t, wire.utc_iso(t.timestamp) if t.timestamp else None


def pairs_then_typed(body: str):
    """What the current code does for the same result: split, extra, then typed_fast."""
    p, _ = wire.split_pairs(body)
    extra = {k: v for k, v in p.items() if k not in normalize._CONSUMED}
    q = {k: v for k, v in p.items() if k != "id"}
    return normalize.typed_fast(q), extra


# -- glue -------------------------------------------------------------------------------------


def decode_per_line(batch):
    return [line.decode("utf-8", "replace") for line in batch]


def decode_per_chunk(chunk):
    return chunk.decode("utf-8", "replace").split("\n")


def finish_current(out, stats):
    from ikefilter import ecs
    from ikefilter.pipeline import _failure_tagged

    stats["in"] += len(out)
    for i, item in enumerate(out):
        if item is None:
            out[i] = None
    for item in out:
        if item is None:
            continue
        stats["out"] += 1
        if type(item) is ecs.Event:
            if item.tags is not None and _failure_tagged(item.tags):
                stats["tagged"] += 1
        else:
            stats["passthrough"] += 1
    return out


def finish_counted(out, stats, tagged=0):
    """Counts from list methods; the normalizer would count the events it tags."""
    stats["in"] += len(out)
    written = len(out) - out.count(None)
    stats["out"] += written
    stats["tagged"] += tagged
    return out


def event_current(code, sev, host, pri):
    from ikefilter import ecs
    from ikefilter.severity import LEVELS

    event = ecs.Event(timestamp="2026-11-26T10:00:00Z",
                      event=ecs.event_fields(code=code, severity=sev), tags=["clavister", "ike"],
                      observer=ecs.observer(host), ecs=ecs.ecs_block())
    event.log = ecs.Log(level=LEVELS[sev])
    fac, psev = divmod(pri, 8)
    event.log.syslog = ecs.Syslog(priority=pri, facility=ecs.SyslogCode(fac),
                                  severity=ecs.SyslogCode(psev, LEVELS[psev]))
    return event


_SHARED: dict = {}


def event_shared(code, sev, host, pri):
    """The same document with the parts that never vary built once and shared: the ECS
    version block and the syslog block per PRI (plugins must then replace, not mutate them)."""
    from ikefilter import ecs
    from ikefilter.severity import LEVELS

    shared = _SHARED.get(pri)
    if shared is None:
        fac, psev = divmod(pri, 8)
        shared = _SHARED[pri] = (ecs.ecs_block(), ecs.Syslog(
            priority=pri, facility=ecs.SyslogCode(fac),
            severity=ecs.SyslogCode(psev, LEVELS[psev])))
    return ecs.Event("2026-11-26T10:00:00Z",
                     ecs.EventFields("event", "clavister", "clavister.log", code, severity=sev),
                     log=ecs.Log(LEVELS[sev], shared[1]), tags=["clavister", "ike"],
                     observer=ecs.Observer("Clavister", "cOS Stream", "firewall", host),
                     ecs=shared[0])


# -- a whole decode_line built from the pieces ----------------------------------------------


def decode_fast(line: str):
    h = header_partition(line)
    if h is None:
        return wire.decode_line(line)
    pri, dev, cats, body = h
    params = pairs_split(body)
    if params is None:
        return wire.decode_line(line)
    time_ = time_memo(dev)
    if time_ is None:
        return wire.decode_line(line)
    p = int(pri) if pri is not None else None
    return wire.Decoded(line, params, cats.split(","), p if p is None or p < 192 else None,
                        time_, None, None)


# -- main -------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--cpu", type=int)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {args.cpu if args.cpu is not None else cpus[-1]})
    cat = load()
    lines = list(generate.lines(cat, args.events, 1, ("bracketed",)))
    mix = list(generate.lines(cat, args.events, 1, TEXT_SHAPES))
    reps = args.reps
    rows = []

    def row(group, name, us, base=None, note=""):
        rows.append((group, name, us, base, note))

    # header
    for line in mix:
        a, b = header_partition(line), header_regex(line)
        assert a is None or a == b, (line, a, b)
    took = sum(header_partition(x) is not None for x in mix)
    base = bench(lambda xs: [wire._HEADER.match(x) for x in xs], lines, reps)
    row("header", "wire._HEADER.match (current)", base)
    row("header", "slicing + str.partition", bench(lambda xs: [header_partition(x) for x in xs],
                                                   lines, reps), base,
        f"takes {took / len(mix):.0%} of the text-shape mix; the rest -> regex")

    # time
    stamps = [header_regex(x)[1] for x in lines]
    base = bench(lambda xs: [wire.utc_iso(s.replace(" ", "T") + "Z") for s in xs], stamps, reps)
    row("time", "utc_iso per line (current)", base)
    row("time", "memoized per stamp", bench(lambda xs: [time_memo(s) for s in xs], stamps, reps),
        base, "7 lines per second in the corpus; real bursts share more")

    # pairs
    bodies = [header_regex(x)[3] for x in lines]
    exact = [wire.split_pairs_exact(b)[0] for b in bodies]
    fast_ok = 0
    for b, e in zip(bodies, exact, strict=True):
        got = pairs_split(b)
        if got is not None:
            assert got == e, (b, got, e)
            fast_ok += 1
        gb = pairs_bytes_split(b.encode())
        assert gb is None or gb == e
    base = bench(lambda xs: [wire.split_pairs(b) for b in xs], bodies, reps)
    row("pairs", "split_pairs: JSON rewrite + msgspec (current)", base)
    row("pairs", "split_pairs_exact: _PAIR.finditer", bench(
        lambda xs: [wire.split_pairs_exact(b) for b in xs], bodies, reps), base)
    row("pairs", "one regex re.split + separator check + dict(zip)", bench(
        lambda xs: [pairs_split(b) for b in xs], bodies, reps), base,
        f"declines {1 - fast_ok / len(bodies):.1%} (backslash escapes) -> exact")
    row("pairs", "findall + dict comprehension (no coverage check)", bench(
        lambda xs: [pairs_findall(b) for b in xs], bodies, reps), base)
    bbodies = [b.encode() for b in bodies]
    row("pairs", "bytes re.split + per-value decode", bench(
        lambda xs: [pairs_bytes_split(b) for b in xs], bbodies, reps), base)
    body_mix = []
    for x in mix:
        m = wire._HEADER.match(x)
        if m is not None:
            body_mix.append(x[m.end():])
    row("pairs", "(mix) split_pairs current", bench(
        lambda xs: [wire.split_pairs(b) for b in xs], body_mix, reps))
    row("pairs", "(mix) one regex re.split", bench(
        lambda xs: [pairs_split(b) or wire.split_pairs_exact(b) for b in xs], body_mix, reps))

    # typing
    params = [wire.decode_line(x).params for x in lines]
    known = [{k: v for k, v in p.items() if k != "id"} for p in params]
    for p in known:
        a = normalize.typed_fast(p)
        assert typed_fast_map(p) == a
        c = typed_pattern(p)
        if c is not None and a is not None:
            assert msgspec.structs.asdict(c) == msgspec.structs.asdict(a)
    pattern_ok = sum(typed_pattern(p) is not None for p in known)
    base = bench(lambda xs: [normalize.typed_fast(p) for p in xs], known, reps)
    row("typing", "typed_fast: convert + Python checks (current)", base)
    row("typing", "typed_exact: one helper call per parameter", bench(
        lambda xs: [normalize.typed_exact(p, normalize._Problems({})) for p in xs], known, reps),
        base)
    row("typing", "msgspec.convert alone", bench(
        lambda xs: [msgspec.convert(p, normalize.Params, strict=False) for p in xs], known, reps),
        base)
    row("typing", "convert + checks via map/all", bench(
        lambda xs: [typed_fast_map(p) for p in xs], known, reps), base)
    row("typing", "convert into Params with IPv4 pattern", bench(
        lambda xs: [typed_pattern(p) for p in xs], known, reps), base,
        f"IPv6 (declines {1 - pattern_ok / len(known):.0%}) -> current path; ints still "
        "need isdigit")

    # extra
    base = bench(lambda xs: [extra_comprehension(p) for p in xs], params, reps)
    row("extra", "dict comprehension over every pair (current)", base)
    row("extra", "p.keys() <= _CONSUMED first", bench(
        lambda xs: [extra_keys(p) for p in xs], params, reps), base)

    # pairs straight into the typed Struct
    rewritten = [t for t in map(_rewrite, bodies) if t is not None]
    direct_ok = 0
    for b in bodies:
        t = pairs_typed(b)
        if t is None:
            continue
        direct_ok += 1
        cur, _extra = pairs_then_typed(b)
        want = msgspec.structs.asdict(cur)
        assert msgspec.structs.asdict(t) == want, (b, t, want)
    base = bench(lambda xs: [pairs_then_typed(b) for b in xs], bodies, reps)
    row("pairs+type", "split_pairs + extra + typed_fast (current)", base)
    row("pairs+type", "rewrite -> Decoder(text+patterns) -> convert", bench(
        lambda xs: [pairs_typed(b) or pairs_then_typed(b) for b in xs], bodies, reps), base,
        f"takes {direct_ok / len(bodies):.0%} of lines (no id in Params); the rest -> current")

    lax_ok = 0
    for b in bodies:
        t = pairs_lax(b)
        if t is not None:
            lax_ok += 1
            got = msgspec.structs.asdict(t)
            got.pop("id")
            assert got == msgspec.structs.asdict(pairs_then_typed(b)[0]), b
    row("pairs+type", "rewrite -> one lax Decoder(Params) (bound, not exact)", bench(
        lambda xs: [pairs_lax(b) or pairs_then_typed(b) for b in xs], bodies, reps), base,
        f"takes {lax_ok / len(bodies):.0%}; would read 5e2 / 500.0 as ints")
    row("pairs+type", "  of which: Decoder(dict) on the rewritten JSON", bench(
        lambda xs: [wire._PAIRS_JSON.decode(t) for t in xs], rewritten, reps))
    row("pairs+type", "  of which: lax Decoder(Params) on the rewritten JSON", bench(
        lambda xs: [_LAX.decode(t) for t in xs], rewritten, reps))
    row("pairs+type", "  of which: Decoder(text + pattern checks)", bench(
        lambda xs: [_TEXT.decode(t) for t in xs], rewritten, reps), None,
        "msgspec runs Python's re for each Meta(pattern) value")

    # pre-split JSON records
    records = list(generate.lines(cat, len(lines), 1, ("split",)))
    rec_ok = 0
    for r in records:
        got = record_lax(r)
        if got is not None:
            rec_ok += 1
            cur = record_current(r)
            d = msgspec.structs.asdict(got[0])
            for k in ("timestamp", "host", "id"):
                d.pop(k)
            assert d == msgspec.structs.asdict(cur[0]) and got[1] == cur[1], r
    base = bench(lambda xs: [record_current(r) for r in xs], records, reps)
    row("json-split", "Decoder(dict) + params dict + typed_fast (current)", base)
    row("json-split", "one lax Decoder(Record) (bound, not exact)", bench(
        lambda xs: [record_lax(r) or record_current(r) for r in xs], records, reps), base,
        f"takes {rec_ok / len(records):.0%}; same caveat on 5e2 / 500.0")

    # glue
    import io

    from ikefilter import lines as lines_mod

    data = ("\n".join(lines) + "\n").encode()
    batches = list(lines_mod.iter_batches(io.BytesIO(data)))
    chunks = [b"\n".join(b) for b in batches]
    base = bench(lambda bs: [decode_per_line(b) for b in bs], batches, reps) * len(batches) / len(
        lines)
    row("glue", "bytes.decode per line (current)", base)
    row("glue", "decode the 64 KiB chunk once, then split", bench(
        lambda cs: [decode_per_chunk(c) for c in cs], chunks, reps) * len(chunks) / len(lines),
        base)
    evs = [normalize.Normalizer(cat).normalize(wire.decode_line(x), "x") for x in lines]
    evb = [evs[i:i + 250] for i in range(0, len(evs), 250)]
    base = bench(lambda bs: [finish_current(b, {"in": 0, "out": 0, "tagged": 0,
                                                "passthrough": 0}) for b in bs], evb, reps)
    base = base * len(evb) / len(evs)
    row("glue", "Pipeline._finish loops (current shape)", base)
    row("glue", "counts from list.count + tagged at tag time", bench(
        lambda bs: [finish_counted(b, {"in": 0, "out": 0, "tagged": 0}) for b in bs], evb,
        reps) * len(evb) / len(evs), base)
    args = [("530", 5, None, 133)] * 1000
    base = bench(lambda xs: [event_current(*a) for a in xs], args, reps)
    row("build", "Event + log.syslog + ecs built per event (current)", base)
    row("build", "ecs block and log.syslog shared per PRI", bench(
        lambda xs: [event_shared(*a) for a in xs], args, reps), base)
    assert msgspec.json.encode(event_current(*args[0])) == msgspec.json.encode(
        event_shared(*args[0]))

    # the collector: events are gc=False Structs, but each line still allocates tracked
    # objects (the params dict, Decoded, lists), so gen-0 collections run every ~200 lines
    # and full ones walk every object the process holds. Settings alternate run by run.
    from ikefilter.pipeline import Pipeline

    pipe = Pipeline(cat)
    settings = {
        "Pipeline.process_lines, default collector": (False, None),
        "gc.freeze() after start-up": (True, None),
        "gc.set_threshold(20000, 20, 20)": (False, (20_000, 20, 20)),
        "gc.freeze() + set_threshold(20000, 20, 20)": (True, (20_000, 20, 20)),
        "collector off (bound)": (False, "off"),
    }
    old = gc.get_threshold()
    took: dict[str, float] = {}
    for _ in range(max(reps, 7)):
        for name, (freeze, threshold) in settings.items():
            gc.unfreeze()
            gc.set_threshold(*old)
            gc.enable()
            if freeze:
                gc.freeze()
            if threshold == "off":
                gc.disable()
            elif threshold:
                gc.set_threshold(*threshold)
            t0 = time.process_time()
            for b in batches:
                pipe.process_lines(b)
            us = (time.process_time() - t0) / len(lines) * 1e6
            took[name] = min(took.get(name, us), us)
    gc.unfreeze()
    gc.set_threshold(*old)
    gc.enable()
    base = took.pop("Pipeline.process_lines, default collector")
    row("gc", "Pipeline.process_lines, default collector", base)
    for name, us in took.items():
        row("gc", name, us, base)

    # whole decode
    for x in mix:
        a, b = decode_fast(x), wire.decode_line(x)
        assert a == b, (x, a, b)
    base = bench(lambda xs: [wire.decode_line(x) for x in xs], lines, reps)
    row("decode_line", "wire.decode_line (current), bracketed", base)
    row("decode_line", "partition header + one-regex pairs + memo time", bench(
        lambda xs: [decode_fast(x) for x in xs], lines, reps), base)
    base = bench(lambda xs: [wire.decode_line(x) for x in xs], mix, reps)
    row("decode_line", "wire.decode_line (current), text-shape mix", base)
    row("decode_line", "the same, mix (falls back for other shapes)", bench(
        lambda xs: [decode_fast(x) for x in xs], mix, reps), base)

    # normalize, whole, for scale
    nz = normalize.Normalizer(cat)
    decoded = [wire.decode_line(x) for x in lines]
    row("normalize", "Normalizer.normalize (current), bracketed", bench(
        lambda xs: [nz.normalize(d, "2026-01-01T00:00:00Z") for d in xs], decoded, reps))

    print(f"{len(lines):,} bracketed lines (and {len(mix):,} of the text-shape mix), "
          f"best of {reps}, CPU time, one core\n")
    print(f"{'stage':<12}{'candidate':<52}{'µs/line':>9}{'vs current':>12}  note")
    for group, name, us, base, note in rows:
        vs = f"{base / us:.2f}x" if base else ""
        print(f"{group:<12}{name:<52}{us:>9.2f}{vs:>12}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
