"""The batch fast path (``ikefilter.fastlane``) writes exactly what the per-line path writes.

Every check runs one input through two pipelines, ``fast=True`` and ``fast=False``, and
compares the encoded outputs byte for byte and the stats field for field. The corpus checks
also make sure the lane really carries the generated lines, or the comparison proves nothing.
"""

from __future__ import annotations

import functools
import json
import math
import re

import msgspec
import pytest
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ikefilter.ecs
from ikefilter import catalog, fastlane, generate, wire
from ikefilter.pipeline import Pipeline
from ikefilter.stats import Stats
from ikefilter.values import KINDS

NOW = "2026-11-26T12:00:00.000Z"
HEADER = "<134>[2026-11-26 10:00:00] EFW: IKE: "
GOOD = HEADER + "prio=2 id=530 rev=1 event=ike_sa_established localip=203.0.113.1 remoteip=81.2.3.4"
BATCH = 250
SEEDS = (1, 7, 23)

CATALOG = catalog.load()
IDS = [str(m.id) for m in CATALOG.messages]
ENCODE = msgspec.json.Encoder().encode
TEXT_SHAPES = tuple(s for s in generate.SHAPES if s not in generate.JSON_SHAPES)
WRAPPED_SHAPES = tuple(sorted(generate.JSON_SHAPES - {"split"}))

SETTINGS = settings(max_examples=examples(150), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(autouse=True, scope="module")
def fixed_now():
    """Both pipelines stamp events that carry no time with the same processing time."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ikefilter.ecs, "now", lambda: NOW)
        yield


# -- helpers --------------------------------------------------------------------------------


@functools.cache
def _pipelines(**options) -> tuple[Pipeline, Pipeline]:
    return (Pipeline(CATALOG, fast=True, **options), Pipeline(CATALOG, fast=False, **options))


def pipelines(**options) -> tuple[Pipeline, Pipeline]:
    """A fast and an exact pipeline with the same options, both with fresh stats."""
    fast, exact = _pipelines(**options)
    assert fast.lane is not None and exact.lane is None
    fast.stats, exact.stats = Stats(), Stats()
    return fast, exact


def _encoded(items: list) -> list[bytes]:
    return [ENCODE(item) for item in items]


def _compare(fast: Pipeline, exact: Pipeline, got: list, want: list, inputs: list) -> None:
    assert len(got) == len(want) == len(inputs)
    for item, a, b in zip(inputs, _encoded(got), _encoded(want), strict=True):
        assert a == b, f"input {item!r}\n fast:  {a.decode()}\n exact: {b.decode()}"
    assert msgspec.structs.asdict(fast.stats) == msgspec.structs.asdict(exact.stats)
    stats = fast.stats
    assert stats.in_ == len(inputs) and stats.in_ == stats.out + stats.dropped + stats.quarantined


def same_lines(lines: list, **options) -> list:
    """``process_lines`` gives the same bytes and stats fast and exact; the fast output."""
    fast, exact = pipelines(**options)
    got = fast.process_lines(list(lines))
    _compare(fast, exact, got, exact.process_lines(list(lines)), lines)
    return got


def same_records(records: list, times: list | None = None, **options) -> list:
    """``process_records`` gives the same bytes and stats fast and exact."""
    fast, exact = pipelines(**options)
    # Each pipeline gets its own copy: neither may see what the other did to a record.
    got = fast.process_records(json.loads(json.dumps(records)), times)
    want = exact.process_records(json.loads(json.dumps(records)), times)
    _compare(fast, exact, got, want, records)
    return got


def lane_event(line: str, **options):
    """What the lane alone makes of one raw line (None: refused)."""
    return pipelines(**options)[0].lane.lines([line], NOW)[0]


def batches(items: list, size: int = BATCH) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


@functools.cache
def corpus(seed: int, shapes: tuple[str, ...] = generate.SHAPES) -> tuple[str, ...]:
    """Every message in every shape, three times over."""
    count = len(CATALOG.messages) * len(shapes) * 3
    return tuple(generate.lines(CATALOG, count, seed=seed, shapes=shapes))


def _times(n: int) -> list[str | None]:
    """Shipper times for ``n`` records, some missing, some with an offset."""
    choices = (None, "2026-11-26T09:59:58Z", "2026-11-26T11:00:00.123+01:00", None, "")
    return [choices[i % len(choices)] for i in range(n)]


# -- 1. the generated corpus ----------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_corpus_lines_fast_equals_exact(seed, as_bytes):
    lines = list(corpus(seed))
    if as_bytes:
        lines = [line.encode() for line in lines]
    for batch in batches(lines):
        same_lines(batch)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("with_times", [False, True], ids=["no-times", "times"])
def test_corpus_records_fast_equals_exact(seed, with_times):
    records = [json.loads(line) for line in corpus(seed, tuple(sorted(generate.JSON_SHAPES)))]
    for batch in batches(records):
        same_records(batch, _times(len(batch)) if with_times else None)


@pytest.mark.parametrize("seed", SEEDS)
def test_corpus_shuffled_into_one_batch(seed):
    """Shapes mixed line by line, the way a receiver on several inputs sees them."""
    lines = list(corpus(seed))
    lines = lines[::2] + lines[1::2][::-1]
    same_lines(lines)
    same_lines([line.encode() for line in lines])


@pytest.mark.parametrize("options", [
    {"severity_dialect": "syslog"},
    {"keep_original": False},
    {"non_clavister": "tag"},
    {"non_clavister": "drop"},
    {"source_keys": ("event", "log", "message")},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_corpus_with_options(options):
    lines = list(corpus(SEEDS[0]))
    for batch in batches(lines):
        same_lines(batch, **options)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    same_records(records, **options)
    same_records(records, _times(len(records)), **options)


# -- 2. the lane carries the corpus ---------------------------------------------------------


def _taken(events: list) -> float:
    return sum(event is not None for event in events) / len(events)


@pytest.mark.parametrize("shape", TEXT_SHAPES)
def test_lane_takes_text_shapes(shape):
    fast, _ = pipelines()
    texts = list(corpus(SEEDS[0], (shape,)))
    assert _taken(fast.lane.lines(texts, NOW)) >= 0.95


@pytest.mark.parametrize("shape", WRAPPED_SHAPES)
def test_lane_takes_wrapped_records(shape):
    fast, _ = pipelines()
    records = [json.loads(text) for text in corpus(SEEDS[0], (shape,))]
    keys = fast.source_keys
    lines = [next(r[k] for k in keys if isinstance(r.get(k), str)) for r in records]
    assert _taken(fast.lane.lines(lines, NOW, records)) >= 0.95


def test_lane_events_are_the_exact_events():
    """Not only the merged output: each event the lane makes is the exact one."""
    fast, exact = pipelines()
    texts = list(corpus(SEEDS[1], TEXT_SHAPES))
    for text, event in zip(texts, fast.lane.lines(texts, NOW), strict=True):
        if event is not None:
            assert ENCODE(event) == ENCODE(exact.process_lines([text])[0]), text


# -- 3. generated bodies --------------------------------------------------------------------

NAMES = sorted(KINDS) + ["id", "id", "foo", "ID", "x-y", "a.b", "_", "id2"]
HEADERS = [
    HEADER,
    "<134>[2026-11-26 10:00:00] EFW: IKE,IPSEC: ",
    "[2026-11-26 10:00:00] EFW: IKE: ",
    "<13>Nov 26 10:00:00 fw-hq-01 [2026-11-26 10:00:00] EFW: IKE: ",
    "<134>Nov  6 10:00:00 fw-hq-01 EFW: IKE: ",
    "<134>1 2026-11-26T10:00:00.123+02:00 fw-hq-01 EFW - - - IKE: ",
    "<134>1 - fw-hq-01 EFW - - [x@1 a=\"b\"] IKE: ",
    "2026-11-26 10:00:00\tLocal0.Info\tfw-hq-01\t[2026-11-26 10:00:00] EFW: IKE: ",
    "EFW: IKE: ",
    "EFW:IKE:",
    "IKE: ",
    "<192>[2026-11-26 10:00:00] EFW: IKE: ",
    "<134>[2026-02-30 10:00:00] EFW: IKE: ",
    "\ufeff<134>[2026-11-26 10:00:00] EFW: IKE: ",
    "",
]
REALISTIC = [
    "1.2.3.4", "203.0.113.1", "01.2.3.4", "1.2.3.04", "256.1.1.1", "::FFFF:1.2.3.4",
    "::ffff:1.2.3.4", "2001:DB8::1", "2001:db8::1", "2001:db8:0:0::1", "[2001:db8::1]", "::1",
    "fe80::1%eth0", " 1.2.3.4", "", "500", "4500", "0", "5e2", "500.0", "0500", "-1", "+5",
    "65535", "65536", "70000", "9223372036854775807", "9223372036854775808", "1e400",
    "deadbeef", "DEADBEEF", "0xdeadbeef", "0XAB", "0x", "ab cd", "true", "TRUE", "True",
    "yes", "no", "1", "on", "off", "false", "maybe", "530", "00530", "ESP", "esp", "AH",
    "10.0.0.0/24", "wan", "a b", "a=b", "CN=x, O=y", "null", "{}", "[]",
]
_ODD = ' "\\=[]\t,.:{}x0aéÄ\u00a0\u2028€😀\x00\x01\'\r'
TEXT = st.one_of(st.text(alphabet=st.sampled_from(list(_ODD)), max_size=10),
                 st.text(max_size=8))
VALUES = st.one_of(st.sampled_from(REALISTIC), TEXT)
ID_VALUES = st.one_of(st.sampled_from(IDS), st.sampled_from(["00530", "0", "9999", "", "53o"]))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@st.composite
def pair(draw) -> str:
    """``name=value`` with any name and any value, bare, quoted or escaped."""
    name = draw(st.sampled_from(NAMES))
    value = draw(ID_VALUES if name == "id" and draw(st.booleans()) else VALUES)
    form = draw(st.sampled_from(["bare", "bare", "quoted", "escaped", "raw-quoted"]))
    if form == "quoted":
        value = f'"{value}"'
    elif form == "escaped":
        value = f'"{_escape(value)}"'
    elif form == "raw-quoted":
        value = f'"{value.replace(chr(34), "")}"'
    return f"{name}={value}"


@st.composite
def body(draw) -> str:
    """Random pairs in random order, mostly with an ``id=``."""
    pairs = [f"prio={draw(st.sampled_from(['0', '2', '7', '9', '02', 'x']))}"]
    if draw(st.integers(0, 9)):
        pairs.append(f"id={draw(ID_VALUES)}")
    pairs += draw(st.lists(pair(), max_size=6))
    order = draw(st.permutations(range(len(pairs))))
    sep = draw(st.sampled_from([" ", " ", " ", "  ", "\t"]))
    return sep.join(pairs[i] for i in order)


@st.composite
def wild_line(draw) -> str:
    return draw(st.sampled_from(HEADERS)) + draw(body())


_FITTING = {
    "ip": ["1.2.3.4", "203.0.113.1", "10.0.0.255", "2001:db8::1", "::1", "::ffff:1.2.3.4"],
    "port": ["500", "4500", "0", "65535"],
    "count": ["0", "3600", "9223372036854775807"],
    "spi": ["deadbeef", "0123456789abcdef", "0"],
    "bool": ["true", "false", "TRUE", "True", "1", "0", "yes", "no"],
    "text": ["wan", "ESP", "AH", "x", '"a b"', '"CN=x, O=y, C=SE"', '"Peer sent \\"X\\""',
             '"a\\\\b"', '""', '"="', '"a  b "', "10.0.0.0/24", "0", "-"],
}


def _kind(name: str) -> str:
    if name.endswith("ip"):
        return "ip"
    if name.endswith("port"):
        return "port"
    if name.endswith("spi"):
        return "spi"
    if name == "initiator":
        return "bool"
    if name in ("rekeytime", "reauthtime", "ikeversion", "lifetime", "count", "max"):
        return "count"
    return "text"


@st.composite
def near_line(draw) -> str:
    """A line of a real message with fitting values, and now and then one odd pair."""
    msg = draw(st.sampled_from(CATALOG.messages))
    names = ["rev", "event", "action", *msg.parameters]
    pairs = [f"prio={draw(st.integers(0, 7))}", f"id={msg.id}"]
    for name in draw(st.lists(st.sampled_from(names), max_size=8, unique=True)):
        pairs.append(f"{name}={draw(st.sampled_from(_FITTING[_kind(name)]))}")
    if not draw(st.integers(0, 3)):
        pairs.insert(draw(st.integers(0, len(pairs))), draw(pair()))
    header = HEADERS[0] if draw(st.integers(0, 2)) else draw(st.sampled_from(HEADERS))
    return header + " ".join(pairs)


def line() -> st.SearchStrategy[str]:
    return st.one_of(near_line(), wild_line())


def _with_good(lines: list[str], seed: int) -> list[str]:
    """``lines`` spread among generated lines the lane takes."""
    good = list(corpus(SEEDS[0], ("bracketed", "rfc5424")))
    out = []
    for k, text in enumerate(lines):
        out += [good[(seed + 3 * k) % len(good)], text, GOOD]
    return out


@SETTINGS
@given(st.lists(line(), min_size=1, max_size=5), st.integers(0, 1000))
def test_generated_lines_fast_equals_exact(lines, seed):
    batch = _with_good(lines, seed)
    same_lines(batch)
    same_lines([text.encode() for text in batch])


@SETTINGS
@given(st.lists(line(), min_size=1, max_size=5), st.integers(0, 1000),
       st.sampled_from(["log", "message", "MESSAGE", "msg", "rawmsg"]))
def test_generated_lines_in_records_fast_equals_exact(lines, seed, key):
    records = [{key: text, "host": "fw-rec", "pri": "134", "@timestamp": "2026-11-26T09:00:00Z"}
               if k % 2 else {key: text} for k, text in enumerate(_with_good(lines, seed))]
    same_records(records)
    same_records(records, _times(len(records)))
    same_lines([ENCODE(r).decode() for r in records])


@SETTINGS
@given(st.lists(line(), min_size=1, max_size=4),
       st.sampled_from([{"severity_dialect": "syslog"}, {"keep_original": False},
                        {"non_clavister": "tag"}, {"max_line": 80}]))
def test_generated_lines_with_options(lines, options):
    same_lines(_with_good(lines, 0), **options)


JSON_SCALARS = st.one_of(
    VALUES, st.integers(-2, 2**64), st.floats(allow_nan=False), st.booleans(), st.none(),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)
META = {
    "@timestamp": st.sampled_from(["2026-11-26T10:00:00Z", "2026-11-26T10:00:00+02:00",
                                   "2026-13-40T10:00:00Z", "", "yesterday"]),
    "host": st.sampled_from(["fw-1", "", "fw 2"]),
    "pri": st.one_of(st.sampled_from(["134", "999", "x", "", "-1"]), st.integers(-5, 300),
                     st.floats(allow_nan=False), st.booleans(), st.none()),
    "hostname": st.just("fw-3"),
    "tag": st.just("EFW:"),
    "timereported": st.sampled_from(["2026-11-26T08:00:00Z", "bad"]),
}


@st.composite
def split_record(draw) -> dict:
    """Any keys (parameters, record keys, unknown ones) with JSON values of any type."""
    record: dict = {}
    if draw(st.integers(0, 9)):
        record["id"] = draw(st.one_of(ID_VALUES, st.integers(0, 2000)))
    for name in draw(st.lists(st.sampled_from(NAMES + ["severity", "PROGRAM"]), max_size=6)):
        record[name] = draw(JSON_SCALARS if draw(st.booleans()) else VALUES)
    for key in draw(st.lists(st.sampled_from(sorted(META)), max_size=3, unique=True)):
        record[key] = draw(META[key])
    return record


@st.composite
def near_split_record(draw) -> dict:
    """A real message's pairs split into keys, with fitting values and some odd ones."""
    msg = draw(st.sampled_from(CATALOG.messages))
    record: dict = {"id": str(msg.id), "prio": str(draw(st.integers(0, 7)))}
    for name in draw(st.lists(st.sampled_from(msg.parameters or ["rev"]), max_size=8)):
        value = draw(st.sampled_from(_FITTING[_kind(name)]))
        if value.startswith('"'):
            value = json.loads(value)
        record[name] = int(value) if _kind(name) == "count" and draw(st.booleans()) else value
    if not draw(st.integers(0, 3)):
        record.update(draw(split_record()))
    return record


@SETTINGS
@given(st.lists(st.one_of(near_split_record(), split_record()), min_size=1, max_size=5))
def test_generated_split_records_fast_equals_exact(records):
    good = [json.loads(text) for text in corpus(SEEDS[0], ("split",))[:4]]
    batch = good[:2] + records + good[2:]
    same_lines([ENCODE(r).decode() for r in batch])
    same_records(batch)
    same_lines([ENCODE(r).decode() for r in batch], source_keys=("event", "log"))


@st.composite
def record_fragments(draw) -> list[str]:
    """Valid JSON records joined by commas, then cut into lines before some ``{``.

    Each line starts like a record; a cut between records leaves whole records, a cut
    inside a string or an array leaves lines that are no JSON record at all, however their
    neighbours read. As many lines as records is the likeliest to be misread."""
    inner = st.sampled_from([",{", 'a,{"', ",{},{", "x", [0, {}], [{"b": ",{"}]])
    records = draw(st.lists(st.one_of(
        st.builds(lambda text, extra: {"log": text, "a": extra}, near_line(), inner),
        st.builds(lambda text: {"message": text}, line()),
        st.builds(lambda reason: {"id": "1700", "reason": reason},
                  st.sampled_from([",{", 'a,{"', "x"])),
        near_split_record(),
    ), min_size=2, max_size=5))
    text = ",".join(ENCODE(r).decode() for r in records)
    cuts = [i for i in range(len(text) - 1) if text[i:i + 2] == ",{"]
    count = draw(st.sampled_from([len(records) - 1, len(records) - 1, 0, len(cuts)]))
    chosen = sorted(draw(st.permutations(cuts))[:count])
    pieces, start = [], 0
    for cut in chosen:
        pieces.append(text[start:cut])
        start = cut + 1
    return pieces + [text[start:]]


JOINED_RECORDS = [
    # Each line is invalid JSON alone; joined by commas they read as as many records.
    ['{"log":"EFW: IKE: id=813"},{"a":[0', "{}]}"],
    ['{"log":"EFW: IKE: id=813","a":"', '{"},{"b":0}'],
    ['{"id":"1700","reason":"a', '{"},{"id":"1700"}'],
]


@pytest.mark.parametrize("lines", JOINED_RECORDS, ids=repr)
def test_json_lines_that_are_not_one_record_each(lines):
    same_lines(lines)
    same_lines([GOOD, *lines, GOOD])


@SETTINGS
@given(record_fragments())
def test_json_lines_cut_anywhere_fast_equals_exact(lines):
    same_lines(lines)


# -- 4. refusals and edge cases -------------------------------------------------------------

REFUSED, TAKEN, EITHER, NOT_OURS = "refused", "taken", "either", "not ours"
EDGE_LINES = [
    # (line, what the lane must do with it alone)
    (GOOD, TAKEN),
    # "null" (any case) is no value to msgspec and so to both paths; "-0" is false; an
    # empty address or SPI beside them must not make the two paths read them apart
    (HEADER + "prio=2 id=530 localip= localport=null", EITHER),
    (HEADER + "prio=2 id=530 localikespi= initiator=-0", EITHER),
    (HEADER + "prio=null id=530 localip=", EITHER),
    (HEADER + "prio=2 id=642 localikespi= ikeversion=Null rekeytime=NULL", EITHER),
    (HEADER + "prio=2 id=530 localport=null", EITHER),
    (HEADER + 'prio=2 id=530 reason="Peer sent \\"X\\"" localip=1.2.3.4', EITHER),
    (HEADER + 'prio=2 id=530 reason="a\\\\\\\\b"', EITHER),
    (HEADER + 'prio=2 id=530 reason="a\\\\"', EITHER),
    (HEADER + 'prio=2 id=530 reason="a\\\\" localip=1.2.3.4', EITHER),
    (HEADER + 'prio=2 id=530 reason="\\\\\\"" localip=1.2.3.4', EITHER),
    (HEADER + "prio=2 id=530 reason=a\\b localip=1.2.3.4", REFUSED),
    (HEADER + 'prio=2 id=530 reason=a\\"b localip=1.2.3.4', REFUSED),
    (HEADER + "prio=2 id=530 iface=a\\\\b", REFUSED),
    (HEADER + 'prio=2 id=530 localid="CN=Smith\\, John, O=Example" localip=1.2.3.4', REFUSED),
    (HEADER + 'prio=2 id=530 reason="a\\nb"', REFUSED),
    (HEADER + "prio=2 id=530 colour=blue localip=1.2.3.4", TAKEN),
    (HEADER + "prio=2 id=530 localip=1.2.3.4 id=590", EITHER),
    (HEADER + "prio=2 id=590 localip=1.2.3.4 id=530", EITHER),
    (HEADER + "prio=2 id=530 id=530 localip=1.2.3.4", EITHER),
    (HEADER + "prio=2 id=530 localip=1.2.3.4 localip=5.6.7.8", EITHER),
    (HEADER + "prio=2 id=530 reason=a reason=", EITHER),
    (HEADER + "prio=2 id=00000530 localip=1.2.3.4", TAKEN),
    (HEADER + "prio=2 id=0 localip=1.2.3.4", TAKEN),
    (HEADER + "prio=2 id=9999 localip=1.2.3.4", TAKEN),
    (HEADER + "prio=2 id=+530 localip=1.2.3.4", TAKEN),
    (HEADER + "prio=2 id= 530", REFUSED),
    (HEADER + "prio=2 localip=1.2.3.4", TAKEN),
    (HEADER + "prio=2 id=530 localip=01.2.3.4", TAKEN),
    (HEADER + "prio=2 id=530 localip=::FFFF:1.2.3.4", TAKEN),
    (HEADER + "prio=2 id=530 localip=2001:DB8::1", TAKEN),
    (HEADER + "prio=2 id=530 localip=2001:db8::1", TAKEN),
    (HEADER + "prio=2 id=530 localip=[2001:db8::1]", REFUSED),
    (HEADER + "prio=2 id=530 localip=", EITHER),
    (HEADER + "prio=2 id=530 localport=5e2 rekeytime=500.0", EITHER),
    (HEADER + "prio=2 id=530 localport=0500", TAKEN),
    (HEADER + "prio=2 id=530 localport=70000", TAKEN),
    (HEADER + "prio=2 id=530 rekeytime=-1", TAKEN),
    (HEADER + "prio=2 id=530 rekeytime=99999999999999999999999", TAKEN),
    (HEADER + "prio=2 id=530 localikespi=0xABCD remoteikespi=ABCD", TAKEN),
    (HEADER + "prio=2 id=530 localikespi=abcd remoteikespi=0123456789abcdef", TAKEN),
    (HEADER + "prio=2 id=530 initiator=TRUE", EITHER),
    (HEADER + "prio=2 id=530 initiator=yes", EITHER),
    (HEADER + "prio=2 id=530 initiator=1", EITHER),
    (HEADER + "prio=9 id=530", TAKEN),
    (HEADER + "prio=02 id=530", EITHER),
    (HEADER + "prio=2 id=530 reason=café", REFUSED),
    (HEADER + "prio=2 id=530 reason=a\tb", EITHER),
    (HEADER + "prio=2 id=530 [sd localip=1.2.3.4 ]", REFUSED),
    (HEADER + "prio=2 id=530 reason=two words localip=1.2.3.4", EITHER),
    (HEADER + "prio=2 id=530 url=a=b", EITHER),
    (HEADER + "prio=2 id=530  localip=1.2.3.4", EITHER),
    (HEADER + 'prio=2 id=530 localid="oops', REFUSED),
    (HEADER + 'prio=2 id=530 a="x"b=1', REFUSED),
    (HEADER + 'prio=2 id=530 "x"="y"', REFUSED),
    (HEADER + "prio=2 id=530 =x", REFUSED),
    (HEADER + "prio=2 id=530 a:b=1", REFUSED),
    (HEADER + "prio=2 id=530 localip=1.2.3.4 ", EITHER),
    (HEADER + "prio=2 id=530 localip=1.2.3.4\r", EITHER),
    (HEADER + "prio=2 id=530 iface=a\rb", EITHER),
    (HEADER + "prio=2 id=530 iface=a\x00b", REFUSED),
    (HEADER + "prio=2 id=530 iface=a\x7fb", EITHER),
    (HEADER + "prio=2 id=737 userid=0530", EITHER),
    (HEADER + 'prio=2 id=530 reason="id=0530"', EITHER),
    (HEADER + 'prio=2 id=530 reason="x\\" id=\\"0530"', EITHER),
    ("<134>Nov 26 10:00:00 fw-é EFW: IKE: prio=2 id=530", EITHER),
    ('<134>1 - fw EFW - - [x@1 a="é\\]"] IKE: prio=2 id=530', EITHER),
    ("<134>[2026-13-40 10:00:00] EFW: IKE: prio=2 id=530 localip=1.2.3.4", TAKEN),
    ("<134>[2026-02-29 10:00:00] EFW: IKE: prio=2 id=530", TAKEN),
    ("<134>[2028-02-29 10:00:00] EFW: IKE: prio=2 id=530", TAKEN),
    ("<134>Nov 26 10:00:00 fw-hq-01 EFW: IKE: prio=2 id=530 localip=1.2.3.4", TAKEN),
    ("<134>Feb 30 10:00:00 fw-hq-01 EFW: IKE: prio=2 id=530", TAKEN),
    ("<134>Nov 26 2025 10:00:00 fw-hq-01 EFW: IKE: prio=2 id=530", TAKEN),
    ("<134>1 2026-11-26T10:00:00.123+02:00 fw-hq-01 EFW - - - IKE: prio=2 id=530", TAKEN),
    ("<134>1 - fw-hq-01 EFW - - - IKE: prio=2 id=530", TAKEN),
    ('<134>1 - fw EFW - ID47 [x@1 a="b\\"]"][y@2] IKE: prio=2 id=530', TAKEN),
    ("<134>1 2026-11-26T25:00:00Z fw EFW - - - IKE: prio=2 id=530", TAKEN),
    ("<192>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530", TAKEN),
    ("<999>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530", TAKEN),
    ("<0>[2026-11-26 10:00:00] EFW: IKE: id=530", TAKEN),
    ("<191>EFW: IKE: id=530", TAKEN),
    ("\ufeff<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530", TAKEN),
    ("2026-11-26 10:00:00\tLocal0.Info\tfw\t[2026-11-26 10:00:00] EFW: IKE: id=530", TAKEN),
    ("2026-11-26 10:00:00\tLocal0.Info\tfw\tEFW: IKE: id=530", TAKEN),
    ("IKE: prio=2 id=530", EITHER),
    ("IKE: prio=2", REFUSED),
    ("ERROR: disk full", REFUSED),
    ("EFW: IKE: ", REFUSED),
    ("EFW: IKE:", REFUSED),
    ("prio=2 id=530 localip=1.2.3.4", TAKEN),
    ("", NOT_OURS),
    (" ", NOT_OURS),
    ("{", NOT_OURS),
    ("{}", NOT_OURS),
    ("null", NOT_OURS),
    ("<38>Dec  6 10:00:00 host sshd[123]: Accepted password for root from 10.0.0.1", NOT_OURS),
    ("kernel: eth0 link up", NOT_OURS),
]


@pytest.mark.parametrize(("text", "lane"), EDGE_LINES, ids=repr)
def test_edge_line(text, lane):
    if lane == NOT_OURS:
        assert lane_event(text) is fastlane.NOT_OURS, text
    elif lane != EITHER:
        assert (lane_event(text) is None) == (lane == REFUSED), text
    same_lines([text])
    same_lines([GOOD, text, GOOD])
    same_lines([GOOD.encode(), text.encode(), GOOD.encode()])
    same_records([{"log": text}, {"message": GOOD}, {"log": text, "pri": 13, "host": "fw-9"}])


LINE_ENDINGS = [
    [GOOD + "\r", GOOD + "\r", GOOD],
    [GOOD + "\r", GOOD],
    [GOOD, GOOD + "\r"],
    [GOOD + "\r\r", GOOD],
    [GOOD, "\r", GOOD],
    [GOOD + "\r" + GOOD, GOOD],
    [GOOD, "", GOOD, ""],
    [""],
    ["", ""],
    ["\ufeff" + GOOD, "\ufeff" + json.dumps({"log": GOOD}), GOOD],
    [GOOD, GOOD + "\n" + GOOD],
    [GOOD + "\n", GOOD],
    [GOOD, GOOD + "\x85" + GOOD, GOOD + "\u2028", GOOD + "\x0b"],
]


@pytest.mark.parametrize("lines", LINE_ENDINGS, ids=repr)
def test_line_endings(lines):
    same_lines(lines)
    same_lines([text.encode() for text in lines])


def test_undecodable_bytes():
    same_lines([GOOD.encode(), GOOD.encode() + b"\xff\xfe", b"\xc3(" + GOOD.encode(),
                GOOD.encode()])
    same_lines([GOOD.encode()[:-1] + b"\xe9", GOOD.encode()])


def test_lone_cr_splits_no_line():
    fast, _ = pipelines()
    lines = [GOOD, "\r", GOOD + "\r"]
    assert len(same_lines(lines)) == 3
    assert fast.stats.in_ == 3


def test_embedded_newline_in_a_record():
    split = GOOD.split("localip=")
    records = [{"log": split[0] + "\nlocalip=" + split[1]}, {"log": GOOD},
               {"log": GOOD + "\n"}, {"message": "\n" + GOOD}]
    same_records(records)
    same_lines([json.dumps(r) for r in records])


SPLIT_RECORDS = [
    {"id": "530", "remoteip": "", "rekeytime": "NULL"},
    {"id": "530", "localikespi": "abcd\n"},
    {"id": "530", "localikespi": "ABCD\n"},
    {"id": "530", "localip": "1.2.3.4", "localport": 500, "initiator": True},
    {"id": "530", "localport": 500.0, "rekeytime": 3600.0},
    {"id": "530", "localport": 500.5},
    {"id": "530", "localport": "500"},
    {"id": "530", "localport": "5e2"},
    {"id": "530", "localport": True},
    {"id": "530", "localport": None, "reason": None},
    {"id": "530", "rekeytime": 2**64},
    {"id": "530", "rekeytime": -1},
    {"id": "530", "initiator": 1},
    {"id": "530", "initiator": 2},
    {"id": "530", "initiator": "yes"},
    {"id": "530", "initiator": "TRUE"},
    {"id": "530", "reason": 5},
    {"id": "530", "reason": 1.5},
    {"id": "530", "reason": False},
    {"id": "530", "reason": {"a": [1, {"b": None}]}},
    {"id": "530", "reason": ["x"]},
    {"id": "530", "reason": ""},
    {"id": "530", "reason": "tab\there \"quoted\" back\\slash é"},
    {"id": "530", "localip": "01.2.3.4"},
    {"id": "530", "localip": "2001:DB8::1"},
    {"id": "530", "localikespi": "ABCD"},
    {"id": "530", "localikespi": "0xabcd"},
    {"id": "530", "prio": "2"},
    {"id": "530", "prio": 2},
    {"id": "530", "prio": 9},
    {"id": 530},
    {"id": 530.0},
    {"id": "0530"},
    {"id": "00000530"},
    {"id": "01700", "reason": '"id":"01700"'},
    {"id": "737", "userid": "0530"},
    {"id": "9999"},
    {"id": None},
    {"id": True},
    {"id": ""},
    {"id": "530", "colour": "blue"},
    {"id": "530", "PROGRAM": "EFW"},
    {"id": "530", "log": 5},
    {"id": "530", "message": None},
    {"id": "530", "@timestamp": "2026-11-26T10:00:00+02:00"},
    {"id": "530", "@timestamp": "2026-13-40T10:00:00Z"},
    {"id": "530", "@timestamp": 5, "timestamp": "2026-11-26T10:00:00Z"},
    {"id": "530", "@timestamp": "", "time": "2026-11-26T10:00:00Z"},
    {"id": "530", "@timestamp": None, "DATE": "2026-11-26T10:00:00.5Z"},
    {"id": "530", "@timestamp": {"a": 1}},
    {"id": "530", "host": "fw-1"},
    {"id": "530", "host": "", "hostname": "fw-2"},
    {"id": "530", "host": 5, "HOST": "fw-3"},
    {"id": "530", "host": True},
    {"id": "530", "pri": 134},
    {"id": "530", "pri": 134.9},
    {"id": "530", "pri": "134"},
    {"id": "530", "pri": "134.0"},
    {"id": "530", "pri": True},
    {"id": "530", "pri": False},
    {"id": "530", "pri": 192},
    {"id": "530", "pri": -1},
    {"id": "530", "pri": 1e308},
    {"id": "530", "pri": None},
    {"id": "530", "pri": [1]},
    {"id": "530", "severity": "high", "facility": 16, "tag": None, "source": 1.5},
    {"localip": "1.2.3.4"},
    {},
]


@pytest.mark.parametrize("record", SPLIT_RECORDS, ids=lambda r: json.dumps(r))
def test_split_record(record):
    good = json.loads(corpus(SEEDS[0], ("split",))[0])
    batch = [good, record, good]
    same_lines([json.dumps(r) for r in batch])
    same_lines([json.dumps(r).encode() for r in batch])
    same_records(batch)
    same_records(batch, [None, "2026-11-26T01:00:00Z", ""])


def test_split_record_duplicate_keys():
    texts = [
        '{"id":"530","id":"590","localip":"1.2.3.4"}',
        '{"id":"530","localip":"1.2.3.4","localip":"5.6.7.8"}',
        '{"id":"530","host":"a","host":"b"}',
        '{"id" : "530", "localip" : "1.2.3.4"}',
        '{"\\u0069d":"530","localip":"1.2.3.4"}',
        '{"id":"530","reason":"\\u00e9\\n"}',
    ]
    same_lines(texts)
    for text in texts:
        same_lines([text])


@pytest.mark.parametrize("source_keys", [("event",), ("event", "log"), ("log", "reason"),
                                         ("localip",), ("id",), ("host", "log")])
def test_source_keys_that_are_parameter_names(source_keys):
    records = [json.loads(text) for text in corpus(SEEDS[0], tuple(sorted(generate.JSON_SHAPES)))]
    records += [{"id": "530", "event": GOOD, "log": GOOD}, {"event": GOOD}, {"reason": GOOD}]
    same_lines([ENCODE(r).decode() for r in records], source_keys=source_keys)
    same_records(records, source_keys=source_keys)


def test_nesting_deeper_than_max_depth():
    deep = {"id": "530", "reason": {"a": {"b": {"c": {"d": 1}}}}}
    shallow = {"log": GOOD, "x": [[1]]}
    texts = [json.dumps(deep), json.dumps(shallow), json.dumps({"log": GOOD, "x": [[[[[1]]]]]}),
             '{"log": "[[[[[[[[ {{{{{{{{", "id": "530"}', GOOD]
    for depth in (1, 2, 3, 4, 32):
        same_lines(texts, max_depth=depth)
        same_records([deep, shallow], max_depth=depth)


def test_lines_longer_than_max_line():
    limit = len(GOOD) - 5
    long_json = json.dumps({"log": GOOD})
    lines = [GOOD[:limit], GOOD, GOOD[:limit - 1], long_json, json.dumps({"log": GOOD[:20]}),
             "x" * (limit + 1), GOOD[:limit] + "é"]
    same_lines(lines, max_line=limit)
    same_lines([text.encode() for text in lines], max_line=limit)
    same_records([{"log": GOOD}, {"log": GOOD[:limit]}, {"id": "530", "reason": "r" * 200}],
                 max_line=limit)
    same_lines([GOOD[:limit]] * 3, max_line=limit)


@pytest.mark.parametrize("options", [{"severity_dialect": "syslog"}, {"keep_original": False}])
@pytest.mark.parametrize("text", [GOOD, HEADER + "id=530", "<13>EFW: IKE: prio=0 id=813",
                                  "EFW: IKE: id=1664 srcip=1.2.3.4 destport=500"])
def test_dialect_and_original(options, text):
    assert lane_event(text, **options) is not None
    same_lines([text, GOOD], **options)
    same_records([{"id": "530", "prio": "3"}, {"log": text}], **options)


# -- 5. a lane that raises loses nothing ----------------------------------------------------


class Boom(RuntimeError):
    pass


def _raising(calls: list):
    def boom(*args, **kwargs):
        calls.append(args)
        raise Boom
    return boom


def test_a_lane_that_raises_loses_no_line(monkeypatch):
    fast, exact = pipelines()
    calls: list = []
    monkeypatch.setattr(fast.lane, "lines", _raising(calls))
    lines = list(corpus(SEEDS[2]))[::3]  # every shape, the split records too
    got = fast.process_lines(lines)
    assert calls, "the lane was never asked"
    _compare(fast, exact, got, exact.process_lines(lines), lines)
    assert fast.stats.in_ == len(lines) == fast.stats.out + fast.stats.dropped
    same_lines([text.encode() for text in lines])
    records = [json.loads(text) for text in lines if text.startswith("{")]
    same_records(records)
    same_records(records, _times(len(records)))


# -- what a batch costs ----------------------------------------------------------------------


def _good_lines(n: int) -> list[str]:
    lines = generate.lines(CATALOG, 2 * n, seed=1, shapes=("bracketed",))
    return [line for line in lines if "\\" not in line][:n]


class _Counted:
    """Counts the calls of a function or of a decoder's ``decode``."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, *args):
        self.calls += 1
        return self.real(*args)

    def decode(self, *args):
        self.calls += 1
        return self.real.decode(*args)


def _counting(monkeypatch, lane) -> tuple[_Counted, _Counted]:
    """Rewrites and decodes of the lane (a decode: a line's JSON read as its message's
    Struct, or else as a dictionary), counted."""
    rewrites, decodes = _Counted(wire.pairs_json), _Counted(lane._decode)
    monkeypatch.setattr(wire, "pairs_json", rewrites)
    monkeypatch.setattr(lane, "_decode", decodes)
    return rewrites, decodes


@pytest.mark.parametrize("odd", [
    pytest.param(lambda line: line + " newparam=1", id="a parameter the catalog lacks"),
    pytest.param(lambda line: re.sub(r" id=\d+", " id=3300001", line), id="an ID it lacks"),
    pytest.param(lambda line: line.replace(" id=", " id=00000", 1), id="a padded ID"),
    pytest.param(lambda line: re.sub(r"spi=(\w+)", lambda m: "spi=0x" + m[1].upper(), line),
                 id="SPIs in capitals after 0x"),
    pytest.param(lambda line: line.replace("initiator=true", "initiator=Yes")
                 .replace("initiator=false", "initiator=OFF"), id="booleans as words"),
    pytest.param(lambda line: line.replace(" rev=", "  rev=") + " ", id="stray blanks"),
    pytest.param(lambda line: re.sub(r"=([0-9]+)(?= |$)", r'="\1"', line), id="quoted numbers"),
])
def test_a_batch_of_variant_lines_is_taken_whole_in_one_pass(monkeypatch, odd):
    lines = [odd(line) for line in _good_lines(200)]
    assert lines != _good_lines(200)
    fast, _ = pipelines()
    rewrites, decodes = _counting(monkeypatch, fast.lane)
    events = fast.lane.lines(lines, NOW)
    assert None not in events
    assert rewrites.calls == 1 and decodes.calls == len(lines)
    same_lines(lines)


ODD_BODIES = [
    "prio=2 id=530 [sd localip=1.2.3.4 ]",
    'prio=2 id=530 localid="CN=Smith\\, John" localip=1.2.3.4',
    'prio=2 id=530 localid="oops',
    "prio=2 id=530 reason=two words localip=1.2.3.4",
    "prio=2 id=530 reason=café",
    "prio=2 id=530 a:b=1",
]


def test_odd_lines_cost_one_more_look_each(monkeypatch):
    good = _good_lines(240)
    odd = [HEADER + body for body in ODD_BODIES]
    lines = list(good)
    for k, line in enumerate(odd):
        lines[k * 40 + 7] = line
    fast, _ = pipelines()
    rewrites, decodes = _counting(monkeypatch, fast.lane)
    events = fast.lane.lines(lines, NOW)
    assert [i for i, event in enumerate(events) if event is None] == [
        k * 40 + 7 for k in range(len(odd))]
    # the plain lines together, then each line with a character that may be odd on its own;
    # the one the rewrite refuses (an odd quote) is found by halving: two per halving, and at
    # most eight lines one by one at the end
    refused = 1
    halvings = math.ceil(math.log2(len(lines) / fastlane._FEW))
    assert rewrites.calls <= 1 + len(odd) + refused * (2 * halvings + fastlane._FEW)
    assert decodes.calls <= len(lines)
    same_lines(lines)


def test_a_parameter_no_builder_maps_goes_to_extra():
    # A catalog rebuilt from a newer reference may name a parameter the code does not know.
    messages = [msgspec.structs.replace(m, parameters=[*m.parameters, "tunnel"])
                if m.id == 530 else m for m in CATALOG.messages]
    cat = msgspec.structs.replace(CATALOG, messages=messages)
    fast, exact = Pipeline(cat), Pipeline(cat, fast=False)
    lines = [GOOD, GOOD + " tunnel=t1", GOOD.replace("id=530", "id=590")]
    events = fast.lane.lines(lines, NOW)
    assert None not in events
    assert events[1].clavister.extra == {"tunnel": "t1"}
    assert events[0].clavister.extra is None
    _compare(fast, exact, fast.process_lines(lines), exact.process_lines(lines), lines)


def test_a_lone_surrogate_in_a_json_line_is_no_fault(caplog):
    lines = ['{"log":"' + GOOD + ' reason=\ud800"}', '{"log":"' + GOOD + '"}'[:-2] + "\ud800\"}"]
    lines.append('{"log": "x' + "\ud800" + '"}')
    fast, exact = pipelines()
    with caplog.at_level("ERROR", logger="ikefilter"):
        got, want = fast.process_lines(lines), exact.process_lines(lines)
    assert not caplog.records  # no lane fault, no input that raised
    for a, b in zip(got, want, strict=True):
        # a parse failure on both paths alike (its original, not UTF-8, is the output's
        # to replace, as for a text line)
        assert a.tags == b.tags and "ikefilter_parse_failure" in a.tags
        assert a.error.message == b.error.message


class _CountingTimes:
    """A ``times`` sequence that records which items were read."""

    def __init__(self, items):
        self.items, self.read = items, []

    def __getitem__(self, i):
        self.read.append(i)
        return self.items[i]

    def __len__(self):
        return len(self.items)


def test_shipper_times_are_read_only_for_events_without_a_time():
    timed = GOOD  # the line carries its own time
    timeless = "EFW: IKE: prio=2 id=530 rev=1 localip=1.2.3.4"
    records = [{"log": timed}, {"log": timeless}, {"log": timed, "host": "fw1"}]
    fast, exact = pipelines()
    times = _CountingTimes(["2026-11-26T09:00:00Z"] * len(records))
    got = fast.process_records([dict(r) for r in records], times)
    assert times.read == [1]
    _compare(fast, exact, got, exact.process_records([dict(r) for r in records],
                                                     list(times.items)), records)
    assert ENCODE(got[1]).startswith(b'{"@timestamp":"2026-11-26T09:00:00Z"')


def test_times_must_be_one_per_record():
    fast, exact = pipelines()
    for p in (fast, exact):
        with pytest.raises(ValueError, match="1 times for 2 records"):
            p.process_records([{"log": GOOD}, {"log": GOOD}], ["2026-11-26T09:00:00Z"])


@pytest.mark.parametrize("inner", [
    {"log": GOOD},
    {"message": GOOD, "host": "fw-9", "@timestamp": "2026-11-26T09:00:00Z"},
    {"id": "530", "localip": "1.2.3.4", "initiator": "yes", "host": "fw-9"},
], ids=["wrapped", "wrapped-with-meta", "split"])
def test_a_json_line_carried_as_text_is_read_as_run_reads_it(inner):
    """Fluent Bit tailing a file of JSON lines without a parser hands over {"log": "{...}"}:
    the record inside is read as ``run`` reads that line, on every path."""
    line = json.dumps(inner)
    [as_record] = same_records([{"log": line}])
    [as_line] = same_lines([line])
    assert ENCODE(as_record) == ENCODE(as_line)
    assert type(as_record) is not dict and as_record.event.code == "530"


def test_a_line_over_max_line_leaves_the_others_to_the_lane(monkeypatch):
    fast, _ = pipelines(max_line=300)
    taken: list[int] = []
    real = fast.lane.lines
    monkeypatch.setattr(fast.lane, "lines", lambda texts, *a: (taken.append(len(texts)),
                                                               real(texts, *a))[1])
    lines = [GOOD] * 5 + [GOOD + " reason=" + "x" * 400] + [GOOD] * 5
    [truncated] = [e for e in same_lines(lines, max_line=300)
                   if "ikefilter_truncated" in (e.tags or [])]
    assert taken == [10]
    assert truncated.event.original == lines[5][:300]
