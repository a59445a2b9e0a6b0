"""Hostile input: random bytes, mutated lines and malformed JSON never break the filter.

For every input line the pipeline gives exactly one output (nothing raised), every output
encodes to valid JSON, and no ECS-typed field ever holds a value an index would reject: a
document with a bad ``source.ip`` or ``@timestamp`` is refused whole, which is silent loss.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
from datetime import datetime

import msgspec
import pytest
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ikefilter import catalog, ecs, generate
from ikefilter.adapters import lines
from ikefilter.pipeline import Pipeline

SETTINGS = settings(max_examples=examples(200), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_CATALOG = catalog.load()
# Every message in every wire shape, once (the generator cycles messages within shapes).
CORPUS = list(generate.lines(_CATALOG, len(_CATALOG.messages) * len(generate.SHAPES), seed=7))
_ENCODER = msgspec.json.Encoder()

# No PRI and no time of its own: the record's are used.
BARE = "EFW: IKE: prio=1 id=1690 rev=1 event=ip_pool_address_released ip=10.1.1.1"

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})", re.ASCII)
_LONG = (-(2**63), 2**63 - 1)


def _pipelines() -> dict[str, Pipeline]:
    return {policy: Pipeline(_CATALOG, non_clavister=policy) for policy in ("pass", "tag")}


PIPELINES = _pipelines()


# -- the checks -----------------------------------------------------------------------------


def _ip(value: object, where: str) -> None:
    assert isinstance(value, str) and value.isascii(), f"{where}: {value!r}"
    ipaddress.ip_address(value)  # raises on anything an ip field rejects
    assert "%" not in value, f"{where}: zone index in {value!r}"


def _port(value: object, where: str) -> None:
    assert type(value) is int and 0 <= value <= 65535, f"{where}: {value!r}"


def _ints_fit(doc: object, path: str = "") -> None:
    """Every integer anywhere fits a signed 64-bit ``long`` (what an index maps it to)."""
    if type(doc) is int:
        assert _LONG[0] <= doc <= _LONG[1], f"{path}: {doc} does not fit a long"
    elif isinstance(doc, dict):
        for k, v in doc.items():
            _ints_fit(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for v in doc:
            _ints_fit(v, path)


def check_document(doc: dict) -> None:
    """The ECS-typed fields of one written ECS document are indexable."""
    ts = doc["@timestamp"]
    assert isinstance(ts, str) and _RFC3339.fullmatch(ts), f"@timestamp {ts!r}"
    datetime.fromisoformat(ts.replace("Z", "+00:00"))
    for side in ("source", "destination"):
        endpoint = doc.get(side)
        if endpoint is None:
            continue
        assert endpoint, f"empty {side}"
        if "ip" in endpoint:
            _ip(endpoint["ip"], f"{side}.ip")
        if "port" in endpoint:
            _port(endpoint["port"], f"{side}.port")
    for ip in (doc.get("related") or {}).get("ip") or []:
        _ip(ip, "related.ip")
    pool = (doc.get("clavister") or {}).get("ip_pool") or {}
    if "address" in pool:
        _ip(pool["address"], "clavister.ip_pool.address")
    event = doc["event"]
    if "severity" in event:
        sev = event["severity"]
        assert type(sev) is int and 0 <= sev <= 7, f"event.severity {sev!r}"
    if "code" in event:
        assert isinstance(event["code"], str) and event["code"].isascii()
    syslog = (doc.get("log") or {}).get("syslog")
    if syslog is not None:
        pri = syslog["priority"]
        assert type(pri) is int and 0 <= pri <= 191, f"log.syslog.priority {pri!r}"
        assert syslog["facility"]["code"] == pri >> 3
        assert syslog["severity"]["code"] == pri & 7
    tags = doc.get("tags")
    assert tags is None or all(isinstance(t, str) for t in tags)
    # a dot is a path to Elasticsearch: x beside x.y conflicts, an empty segment is refused
    extra = (doc.get("clavister") or {}).get("extra") or {}
    assert all(name and "." not in name for name in extra), f"clavister.extra {list(extra)}"
    _ints_fit(doc)


def is_blank(line: bytes | str) -> bool:
    """A blank line is a counted drop (dropped_by_rule.blank_line), never a document."""
    return not (line.encode() if isinstance(line, str) else line).strip(b" \t\r\n\v\f")


def check_outputs(results: list, inputs: int | list) -> list[dict]:
    """Exactly one result per input (none dropped but blank lines, when ``inputs`` are the
    lines); every one valid JSON."""
    n = inputs if isinstance(inputs, int) else len(inputs)
    assert len(results) == n
    docs = []
    for i, item in enumerate(results):
        if item is None and not isinstance(inputs, int) and is_blank(inputs[i]):
            continue
        assert item is not None  # no rules configured: nothing may vanish
        encoded = _ENCODER.encode(item)
        doc = json.loads(encoded)
        assert isinstance(doc, dict)
        if type(item) is ecs.Event:
            check_document(doc)
        docs.append(doc)
    return docs


def check_stats(p: Pipeline) -> None:
    s = p.stats
    assert s.in_ == s.out + s.dropped + s.quarantined


# -- strategies -----------------------------------------------------------------------------

_NASTY = ['"', "=", "[", "]", "{", "}", "\\", "\0", "\x01", "\x1b", "\x7f", "\t", "\r",
          "\ufeff", "\u00a0", "\u2028", "\ufffd", " ", "id=", 'x="', "=\"\"", "<999>",
          "\u0661\u0662", "\uff11", "\U0001f600"]
_NASTY_BYTES = [b"\xff", b"\xfe", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                b"\xef\xbb\xbf", b"\x00", b"\r", b"\x80", b"\xc0\xaf"]


@st.composite
def mutated_line(draw) -> bytes:
    """A generated line, then a few byte flips, cuts and insertions of awkward characters."""
    data = bytearray(draw(st.sampled_from(CORPUS)).encode())
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(("flip", "truncate", "insert", "insert_bytes", "delete",
                                   "bom", "crlf", "dup")))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(_NASTY)).encode()
        elif op == "insert_bytes":
            data[pos:pos] = draw(st.sampled_from(_NASTY_BYTES))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "bom":
            data[0:0] = b"\xef\xbb\xbf"
        elif op == "crlf":
            data += b"\r"
        elif op == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 40))]
    return bytes(data).replace(b"\n", b" ")


random_line = st.binary(max_size=300).map(lambda b: b.replace(b"\n", b""))
any_line = st.one_of(mutated_line(), random_line,
                     st.text(max_size=200).map(lambda t: t.replace("\n", "").encode()))

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63),
    st.integers(max_value=-(2**63)), st.floats(allow_nan=False), st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "65536", "1e3", "nan", "999999999999999999999999",
                     "\u0661\u0662\u0663", "192.168.0.1", "\u0661.\u0661.\u0661.\u0661",
                     "fe80::1%eth0", "::ffff:1.2.3.4", "2026-11-26T10:00:00Z",
                     "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                     "2026-13-45T99:99:99Z", "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"]),
)
json_value = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
_KEYS = ["log", "message", "rawmsg", "MESSAGE", "msg", "id", "pri", "@timestamp", "timestamp",
         "time", "timereported", "DATE", "host", "hostname", "prio", "localip", "remoteip",
         "localport", "remoteport", "srcip", "destip", "srcport", "destport", "initiator",
         "rekeytime", "lifetime", "ip", "count", "max", "localikespi", "userid", "tags"]
_LINE_VALUE = st.one_of(st.sampled_from(CORPUS), mutated_line().map(
    lambda b: b.decode("utf-8", "replace")))


@st.composite
def json_record(draw) -> dict:
    record = draw(st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), json_value,
                                  max_size=8))
    if draw(st.booleans()):
        record[draw(st.sampled_from(["log", "message", "rawmsg", "MESSAGE", "msg"]))] = \
            draw(_LINE_VALUE)
    if draw(st.booleans()):
        record["id"] = draw(st.one_of(st.sampled_from(
            [str(m.id) for m in _CATALOG.messages]), json_value))
    return record


def _json_line(record: dict) -> bytes:
    return json.dumps(record).encode()


json_text = st.one_of(
    json_record().map(_json_line),
    # Valid JSON of the wrong shape, and JSON cut anywhere.
    json_value.map(lambda v: json.dumps(v).encode()),
    st.tuples(json_record().map(_json_line), st.integers(0, 200)).map(lambda t: t[0][:t[1]]),
    st.sampled_from(CORPUS).filter(lambda s: s.startswith("{")).map(str.encode),
)
hostile_line = st.one_of(any_line, json_text)


# -- Pipeline.process_lines / process_records -----------------------------------------------


@pytest.mark.parametrize("policy", ["pass", "tag"])
@SETTINGS
@given(batch=st.lists(hostile_line, max_size=8))
def test_process_lines_bytes(policy, batch):
    p = PIPELINES[policy]
    check_outputs(p.process_lines(batch), batch)
    check_stats(p)


@SETTINGS
@given(batch=st.lists(hostile_line, max_size=8))
def test_process_lines_text(batch):
    p = PIPELINES["tag"]
    text = [b.decode("utf-8", "replace") for b in batch]
    check_outputs(p.process_lines(text), text)
    check_stats(p)


@pytest.mark.parametrize("policy", ["pass", "tag"])
@SETTINGS
@given(records=st.lists(st.one_of(json_record(), json_value), max_size=6))
def test_process_records(policy, records):
    p = PIPELINES[policy]
    check_outputs(p.process_records(records), len(records))
    check_stats(p)


@SETTINGS
@given(record=json_record())
def test_records_and_json_lines_agree_on_validity(record):
    """A record handed over decoded and the same record as a JSON line both come out."""
    p = PIPELINES["tag"]
    [a] = p.process_records([record])
    [b] = p.process_lines([_json_line(record)])
    check_outputs([a, b], 2)


def test_unicode_digits_are_not_an_ip_or_a_time():
    p = PIPELINES["tag"]
    arabic = "\u0661.\u0661.\u0661.\u0661"
    line = (f"<134>[2026-11-26 10:00:00] EFW: IKE: prio=1 id=1690 rev=1 "
            f"event=ip_pool_address_released ip={arabic}")
    [doc] = check_outputs(p.process_lines([line]), 1)
    assert "address" not in doc["clavister"].get("ip_pool", {})
    assert doc["clavister"]["extra"]["ip"] == arabic
    assert ecs.TAG_INVALID_VALUE in doc["tags"]
    stamp = "\u0662\u0660\u0662\u0666-11-26T10:00:00Z"
    [doc] = check_outputs(p.process_records([{"log": BARE, "@timestamp": stamp}]), 1)
    assert doc["@timestamp"].isascii()


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                   "0001-01-01T00:30:00+01:00"])
def test_timestamp_out_of_range_after_utc_conversion(stamp):
    p = PIPELINES["tag"]
    record = {"message": BARE, "@timestamp": stamp}
    [doc] = check_outputs(p.process_records([record]), 1)


@pytest.mark.parametrize("pri", [float("inf"), float("-inf"), float("nan"), 1e300, "1e3",
                                 True, [1], {"a": 1}, 2**70, -5, 192])
def test_record_pri_of_any_type(pri):
    p = PIPELINES["tag"]
    [doc] = check_outputs(p.process_records([{"msg": BARE, "pri": pri}]), 1)
    assert doc["log"].get("syslog", {}).get("priority", 0) < 192


def test_huge_counts_stay_out_of_long_fields():
    p = PIPELINES["tag"]
    big = str(2**64)
    line = (f"<134>[2026-11-26 10:00:00] EFW: IKE: prio=1 id=1695 rev=1 "
            f"event=ip_pool_not_found name=vpn_pool count={big} iface=wan")
    [doc] = check_outputs(p.process_lines([line]), 1)
    assert doc["clavister"]["extra"]["count"] == big
    assert ecs.TAG_INVALID_VALUE in doc["tags"]


# -- ikefilter run's loop -------------------------------------------------------------------


class Trickle(io.RawIOBase):
    """A stream that hands out its bytes in pieces of the given sizes (then the rest)."""

    def __init__(self, data: bytes, sizes: list[int]):
        self.data, self.sizes, self.pos = data, list(sizes), 0

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        size = self.sizes.pop(0) if self.sizes else n
        size = max(1, min(size, n if n > 0 else size))
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk

    read = read1


def is_ecs(doc: dict) -> bool:
    event = doc.get("event")
    return isinstance(event, dict) and event.get("dataset") == "clavister.log" and "ecs" in doc


def expected_lines(data: bytes) -> int:
    """The documents ``run`` writes for ``data``: one per line but the blank ones."""
    parts = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        parts.pop()
    return sum(1 for line in parts if not is_blank(line))


def run_lines(p: Pipeline, data: bytes, sizes: list[int] = ()) -> list[dict]:
    out = io.BytesIO()
    lines.run(p, [Trickle(data, sizes)], out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("policy", ["pass", "tag"])
@SETTINGS
@given(batch=st.lists(hostile_line, max_size=10),
       ends=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=10, max_size=10),
       last=st.booleans(), sizes=st.lists(st.integers(1, 300), max_size=20))
def test_run_stream(policy, batch, ends, last, sizes):
    data = b"".join(line + end for line, end in zip(batch, ends, strict=False))
    if not last and data:
        data = data[:-1]  # the last line without its newline
    p = Pipeline(_CATALOG, non_clavister=policy)
    docs = run_lines(p, data, sizes)
    assert len(docs) == expected_lines(data)
    for doc in docs:
        if is_ecs(doc):  # (the rest are records passed through as they came)
            check_document(doc)
    check_stats(p)
    assert p.stats.out == len(docs)
    assert p.stats.dropped == p.stats.dropped_by_rule.get("blank_line", 0)


@SETTINGS
@given(data=st.binary(max_size=2000), sizes=st.lists(st.integers(1, 64), max_size=40))
def test_run_random_bytes(data, sizes):
    p = Pipeline(_CATALOG, non_clavister="tag")
    docs = run_lines(p, data, sizes)
    assert len(docs) == expected_lines(data)
    for doc in docs:
        check_document(doc)
    check_stats(p)


def test_run_crlf_bom_nul_and_invalid_utf8():
    good = CORPUS[0].encode()
    data = b"".join([
        b"\xef\xbb\xbf" + good + b"\r\n",        # BOM, CRLF
        good.replace(b"EFW", b"EF\x00W") + b"\n",  # NUL inside the header
        good + b" note=\xff\xfe\x80\n",           # invalid UTF-8 in a value
        b"\x01\x02\x1b[31m\x7f\r\n",              # control bytes only
        b"\r\n",                                  # an empty CRLF line: a counted drop
        b'\xef\xbb\xbf{"log": "' + good + b'"}\r\n',  # BOM before a JSON record
    ])
    p = Pipeline(_CATALOG, non_clavister="tag")
    docs = run_lines(p, data)
    assert len(docs) == 5
    first, nul, bad_utf8, control, json_bom = docs
    [plain] = check_outputs(Pipeline(_CATALOG).process_lines([good]), 1)
    assert first["event"]["code"] == plain["event"]["code"]
    assert "ikefilter_parse_failure" not in first["tags"]
    assert first["event"]["original"] == "\ufeff" + plain["event"]["original"]  # as sent
    # "EF\0W:" is no header, but the id= pairs still make it an event
    assert nul["event"]["code"] == plain["event"]["code"] and "\0" in nul["event"]["original"]
    assert bad_utf8["clavister"]["extra"]["note"] == "\ufffd\ufffd\ufffd"
    assert ecs.TAG_NOT_CLAVISTER in control["tags"]
    assert p.stats.dropped_by_rule == {"blank_line": 1}
    assert json_bom["event"]["code"] == first["event"]["code"]
    assert "ikefilter_parse_failure" not in json_bom["tags"]
    for doc in docs:
        check_document(doc)
    check_stats(p)


# -- limits: line length and JSON depth -----------------------------------------------------


def test_long_line_is_cut_and_tagged_never_dropped():
    p = Pipeline(_CATALOG, max_line=300)
    line = CORPUS[0] + " note=" + "x" * 1000
    [doc] = check_outputs(p.process_lines([line.encode()]), 1)
    assert "ikefilter_truncated" in doc["tags"]
    assert doc["event"]["code"]  # still decoded as far as it goes
    assert len(doc["event"]["original"].encode()) <= 300
    assert "truncated" in doc["error"]["message"]
    assert p.stats.tagged == 1 and p.stats.out == 1


@pytest.mark.parametrize("policy", ["pass", "tag"])
def test_long_foreign_line_comes_out_tagged_not_cut_silently(policy):
    p = Pipeline(_CATALOG, max_line=256, non_clavister=policy)
    [doc] = check_outputs(p.process_lines(["hello " * 200]), 1)
    assert set(doc["tags"]) >= {"ikefilter_truncated", ecs.TAG_NOT_CLAVISTER}
    assert doc["message"] == ("hello " * 200)[:256]


def test_long_json_line_is_a_tagged_parse_failure():
    p = Pipeline(_CATALOG, max_line=256)
    line = json.dumps({"log": CORPUS[0], "pad": "y" * 1000}).encode()
    [doc] = check_outputs(p.process_lines([line]), 1)
    assert set(doc["tags"]) >= {"ikefilter_truncated", ecs.TAG_PARSE_FAILURE}
    assert doc["event"]["original"].encode() == line[:256]


def test_long_line_cut_inside_a_multibyte_character():
    p = Pipeline(_CATALOG, max_line=256)
    line = (CORPUS[0] + " who=" + "\u00e5" * 500).encode()
    [doc] = check_outputs(p.process_lines([line]), 1)
    assert "ikefilter_truncated" in doc["tags"]


def test_long_line_in_a_record():
    p = Pipeline(_CATALOG, max_line=256)
    mine = {"log": CORPUS[0] + " note=" + "z" * 1000, "host": "fw"}
    foreign = {"log": "GET / " * 100}
    a, b = p.process_records([mine, foreign])
    check_outputs([a, b], 2)
    assert "ikefilter_truncated" in a.tags
    assert b is foreign  # not ours: passed on unchanged, as it came


@pytest.mark.parametrize("depth", [33, 200, 100_000])
def test_deep_json_is_a_parse_failure(depth):
    p = Pipeline(_CATALOG, max_line=1_000_000)
    line = '{"log": ' + "[" * depth + "]" * depth + "}"
    [doc] = check_outputs(p.process_lines([line]), 1)
    assert ecs.TAG_PARSE_FAILURE in doc["tags"]
    assert "nested deeper than 32" in doc["error"]["message"]
    assert doc["event"]["original"] == line


def test_depth_at_the_limit_and_brackets_in_strings_are_fine():
    p = Pipeline(_CATALOG, max_depth=4)
    ok = json.dumps({"log": CORPUS[0], "a": {"b": {"c": [1]}}, "s": "[[[[[[{{{{{{"})
    [doc] = check_outputs(p.process_lines([ok]), 1)
    assert ecs.TAG_PARSE_FAILURE not in doc["tags"]
    deep = json.dumps({"log": CORPUS[0], "a": {"b": {"c": [[1]]}}})
    [doc] = check_outputs(p.process_lines([deep]), 1)
    assert ecs.TAG_PARSE_FAILURE in doc["tags"]


def test_limits_from_the_site_config():
    from ikefilter.app import build_pipeline
    from ikefilter.config import ConfigError, loads

    p = build_pipeline(loads("[ikefilter]\nmax_line = 1024\nmax_depth = 5\n"),
                       entry_points=False)
    assert (p.max_line, p.max_depth) == (1024, 5)
    p = build_pipeline(loads(""), entry_points=False)
    assert (p.max_line, p.max_depth) == (65536, 32)
    with pytest.raises(ConfigError, match="max_line"):
        loads("[ikefilter]\nmax_line = 10\n")
    with pytest.raises(ConfigError, match="max_depth"):
        loads("[ikefilter]\nmax_depth = 0\n")


def test_run_never_holds_more_than_max_line_of_a_line():
    max_line = 1000
    huge = b"x" * 300_000
    data = CORPUS[0].encode() + b"\n" + huge + b" id=1 tail\n" + CORPUS[1].encode() + b"\n" + huge
    seen = [len(line) for batch in lines.iter_batches(Trickle(data, [97] * 10_000), 4096,
                                                       max_line) for line in batch]
    assert len(seen) == 4 and max(seen) <= max_line + 4096
    p = Pipeline(_CATALOG, max_line=max_line)
    docs = run_lines(p, data, [4096] * 1000)
    assert len(docs) == 4
    assert [("ikefilter_truncated" in d.get("tags", [])) for d in docs] == [
        False, True, False, True]
    assert docs[1]["message"] == "x" * max_line
    check_stats(p)


@SETTINGS
@given(batch=st.lists(st.one_of(hostile_line, st.binary(min_size=300, max_size=3000)),
                      max_size=8),
       sizes=st.lists(st.integers(1, 700), max_size=30), max_line=st.integers(256, 1024))
def test_run_with_a_small_limit(batch, sizes, max_line):
    data = b"\n".join(line.replace(b"\n", b"") for line in batch)
    p = Pipeline(_CATALOG, non_clavister="tag", max_line=max_line, max_depth=3)
    docs = run_lines(p, data, sizes)
    assert len(docs) == expected_lines(data)
    for doc in docs:
        check_document(doc)
        # (in characters: an invalid input byte comes out as a 3-byte U+FFFD)
        assert len(doc["event"].get("original", "")) <= max_line
    check_stats(p)


# -- what still raises is kept, tagged ------------------------------------------------------


def test_a_line_that_raises_is_kept_tagged_and_counted(monkeypatch):
    p = Pipeline(_CATALOG, fast=False)
    real = p.normalizer.normalize

    def flaky(decoded, now):
        if "id=1694" in decoded.original:
            raise KeyError("boom")
        return real(decoded, now)

    monkeypatch.setattr(p.normalizer, "normalize", flaky)
    batch = [line for line in CORPUS[:200] if not line.startswith("{")][:50]
    batch.append("EFW: IKE: prio=1 id=1694 rev=1 ip=10.0.0.1")
    docs = check_outputs(p.process_lines(batch), batch)
    failed = [d for d in docs if "ikefilter_internal_error" in d.get("tags", ())]
    assert failed and all(d["error"]["message"] == "internal error: KeyError" for d in failed)
    assert failed[-1]["event"]["original"] == batch[-1]
    assert p.stats.in_ == p.stats.out == len(batch)
    assert p.stats.tagged >= len(failed)


def test_a_record_with_keys_json_cannot_hold():
    p = Pipeline(_CATALOG, non_clavister="tag")
    records = [{(1, 2): "x"}, {b"k": "v", 7: "seven"}, {"log": BARE, 3: [1]}]
    results = p.process_records(records)
    assert len(results) == 3 and None not in results
    docs = [json.loads(_ENCODER.encode(r)) for r in results]
    assert "ikefilter_internal_error" in docs[0]["tags"]
    assert docs[2]["event"]["code"] == "1690"
    check_stats(p)


_NAME_PARTS = st.sampled_from(["x", "y", "x_y", "_", ".", "..", "a", "_2", "x_y_2"])


@SETTINGS
@given(names=st.lists(st.lists(_NAME_PARTS, max_size=4).map("".join), max_size=8,
                      unique=True))
def test_extra_names_keep_every_value_under_a_safe_name(names):
    from ikefilter.values import extra_name, extra_names

    extra = {name: f"v{i}" for i, name in enumerate(names)}
    safe = extra_names(extra)
    assert list(safe.values()) == list(extra.values())  # each value once, in the order sent
    assert all(name and "." not in name for name in safe)
    for sent, written in zip(extra, safe, strict=True):
        if sent and "." not in sent:
            assert written == sent  # a name sent as it is written keeps it
        else:
            assert written == extra_name(sent) or (
                written.startswith(extra_name(sent) + "_")
                and written[len(extra_name(sent)) + 1:].isdigit())


def test_dotted_names_from_every_path_are_written_safe():
    """The batch lane, the per-line splitter (a bare value of several words), a JSON line
    and split pairs: one rule, so one result."""
    p = Pipeline(_CATALOG)
    pairs = "x=1 x.y=2 a..b=3"
    inputs = [f"EFW: IKE: prio=2 id=99999 rev=1 {pairs}",
              f"EFW: IKE: prio=2 id=530 rev=1 reason=two words {pairs}",
              json.dumps({"log": f"EFW: IKE: prio=2 id=530 rev=1 {pairs}"}),
              json.dumps({"id": "530", "x": "1", "x.y": "2", "a..b": "3"})]
    docs = check_outputs(p.process_lines(inputs), inputs)
    for doc in docs:
        assert doc["clavister"]["extra"] == {"x": "1", "x_y": "2", "a__b": "3"}, doc


# -- no line is slow to refuse --------------------------------------------------------------

_N = 64 * 1024 - 100
SLOW_SHAPES = {
    "one long word before id=": "EFW: IKE: " + "a" * _N + " id=1",
    "one long word, no header": "a" * _N + " id=1",
    "letters after digits": "EFW: IKE: " + "1a" * (_N // 2) + " id=1",
    "letters after dots": "EFW: IKE: " + ".a" * (_N // 2) + " id=1",
    "escaped quotes then brackets": '{"a":"' + '\\"' * (_N // 2) + "[" * 40,
    "unterminated quotes": "EFW: IKE: id=1 " + 'x="' * (_N // 3),
    "structured data never closed": "<1>1 2026-01-01T00:00:00Z h a p m [" + 'a="\\"' * (_N // 6),
    "many brackets": '{"a":' + "[" * (_N // 2),
}


@pytest.mark.parametrize("shape", sorted(SLOW_SHAPES))
def test_pathological_line_is_linear(shape):
    """Each of these took seconds to minutes with a regex retried at every position."""
    import time

    p = Pipeline(_CATALOG, non_clavister="tag")
    line = SLOW_SHAPES[shape]
    start = time.perf_counter()
    check_outputs(p.process_lines([line]), 1)
    assert time.perf_counter() - start < 2.0


def test_long_values_never_fill_the_value_caches():
    from ikefilter import values

    for cache in values.CACHES.values():
        cache.clear()
    p = Pipeline(_CATALOG)
    for i in range(50):
        line = (f"EFW: IKE: prio=1 id=1690 rev=1 event=ip_pool_address_released "
                f"ip={i}{'9' * 5000}")
        [doc] = check_outputs(p.process_lines([line]), 1)
        assert ecs.TAG_INVALID_VALUE in doc["tags"]
    assert sum(len(k) for cache in values.CACHES.values() for k in cache) < 50 * 100


@pytest.mark.parametrize("fast", [True, False])
def test_a_json_line_with_a_lone_surrogate_is_a_parse_failure_not_an_internal_error(fast):
    from ikefilter.pipeline import Pipeline

    pipeline = Pipeline(fast=fast)
    [event] = pipeline.process_lines(['{"log": "a\ud800b"}'])
    assert "ikefilter_parse_failure" in event.tags
    assert "ikefilter_internal_error" not in event.tags
    assert event.error.message.startswith("invalid JSON record: ")
