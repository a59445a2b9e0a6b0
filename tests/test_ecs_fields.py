"""Every ECS field the filter writes exists in ECS 9.5 with a compatible type and allowed value.

The ECS rows and allowed values are copied into tests/data (see its README).
"""

from __future__ import annotations

import csv
import ipaddress
import json
import re
from datetime import datetime

import msgspec
import pytest
from conftest import DATA

from ikefilter import catalog, ecs, generate
from ikefilter.pipeline import Pipeline

with open(DATA / "ecs-fields.csv", newline="") as _f:
    ECS_TYPES = {row["Field"]: row["Type"] for row in csv.DictReader(_f)}
ALLOWED = json.loads((DATA / "ecs-allowed-values.json").read_text())
EXPECTED_TYPES = ALLOWED["expected_event_types_by_category"]

# Fields whose content is ours, not ECS's.
VENDOR_PREFIXES = ("clavister.", "labels.")

# Combinations of event.category and event.type that ECS does not list as
# expected. The output contract rules, so for these only the allowed values are checked.
# None today: every row of the contract is also expected by ECS 9.5.
SCHEMA_EXCEPTIONS: set[tuple[tuple[str, ...], str]] = set()

_TEXT = {"keyword", "wildcard", "text", "match_only_text", "constant_keyword"}
_INT = {"long", "integer", "short", "byte", "unsigned_long"}
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")

HOSTILE = [
    "",
    " ",
    "\t",
    "hello world",
    "ERROR: disk full",
    "EFW: IKE:",
    "EFW: IKE: ",
    "<134>[2026-11-26 10:00:00] EFW: IKE: no pairs at all",
    '{"log": ',
    "{}",
    "{not json",
    '{"log": 5}',
    '{"id": null}',
    '{"id": {"a": 1}, "localip": [1, 2]}',
    '{"id": "530", "localip": "1.2.3.4", "localport": 500, "initiator": true}',
    '{"log": "<134>EFW: IKE: prio=2 id=530", "time": "garbageZ", "pri": "999"}',
    '{"message": "<134>EFW: IKE: id=530", "@timestamp": "2026-02-30T00:00:00Z"}',
    '{"rawmsg": "EFW: IKE: id=155 proto=ESP", "pri": "13", "hostname": "fw"}',
    "<134>[2026-99-99 99:99:99] EFW: IKE: prio=2 id=530 localip=1.2.3.4",
    "<134>Feb 30 10:00:00 fw EFW: IKE: prio=2 id=530",
    "<999>EFW: IKE: id=530",
    "<134>1 - fw EFW - - - IKE: prio=2 id=530",
    "EFW: IKE: id=530 localip=fe80::1%eth0 remoteip=::ffff:1.2.3.4 localport=70000",
    "EFW: IKE: id=530 localip=01.2.3.4 remoteip=1.2.3.4.5 remoteport=-1 initiator=maybe",
    "EFW: IKE: id=530 localikespi=0x remoteikespi=zz oldlocalikespi=-1 rekeytime=1e9",
    "EFW: IKE: id=155 inboundspi= outboundspi=0xGG lifetime=99999999999999999999999 proto=",
    "EFW: IKE: id=1694 ip=10.0.0.300 count=x max=",
    "EFW: IKE: id=1664 srcip=[::1] srcport=0 destip=:: destport=65535",
    "EFW: IKE: id=737 userid=\"\" localikespi=AbC",
    "EFW: IKE: id=99999 localip=1.2.3.4 x=y",
    "EFW: IKE: id=-1",
    "EFW: IKE: id= prio=",
    "EFW: IKE: id=530 prio=9",
    "EFW: IKE: id=530 prio=-1",
    "EFW: IKE: id=530 =x =",
    'EFW: IKE: id=530 reason="unbalanced',
    'EFW: IKE: id=530 reason="a \\" b" x="C:\\\\" remoteid="CN=A\\, B"',
    "EFW: IKE: id=530 " + "x" * 70000,
    "EFW: IKE: id=530 reason=" + "word " * 5000,
    "EFW: IKE: id=0530 localip=2001:DB8::1 remoteip=2001:db8::1",
    "prio=2 id=530 localip=1.2.3.4",
    "\ufeff<134>[2026-11-26 10:00:00] EFW: IKE,IPSEC: prio=2 id=628 proto=AH",
    "\x00\x01\x02 EFW: IKE: id=530",
    "EFW: IKE: id=530 ikeversion=2 initiator=1 localport=0500",
    b"EFW: IKE: id=530 localid=\xff\xfe remoteid=caf\xc3\xa9".decode("utf-8", "replace"),
]


def corpus() -> list[str]:
    cat = catalog.load()
    return list(generate.lines(cat, 28 * len(generate.SHAPES) * 3)) + HOSTILE


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Leaf fields as dotted names; arrays stay values."""
    out: dict[str, object] = {}
    for key, val in value.items():
        assert key != "", f"empty field name under {prefix!r}"
        name = f"{prefix}{key}"
        if isinstance(val, dict):
            out.update(flatten(val, name + "."))
        else:
            out[name] = val
    return out


def type_problem(ecs_type: str, value) -> str | None:
    """Why ``value`` does not fit ``ecs_type``, or None."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, (list, dict)):
            return f"nested {type(v).__name__}"
        if ecs_type in _TEXT:
            ok = isinstance(v, str)
        elif ecs_type in _INT:
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif ecs_type == "boolean":
            ok = isinstance(v, bool)
        elif ecs_type == "ip":
            ok = isinstance(v, str) and _is_ip(v)
        elif ecs_type == "date":
            ok = isinstance(v, str) and _is_date(v)
        elif ecs_type == "float":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        else:
            return f"no rule for ECS type {ecs_type}"
        if not ok:
            return f"{v!r} is not a valid {ecs_type}"
    return None


def _is_ip(text: str) -> bool:
    if "%" in text or text != text.strip():
        return False  # zone index, padding: Elasticsearch's ip type refuses both
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_date(text: str) -> bool:
    if not _RFC3339.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text[:19])
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    """Every ECS document the filter writes for the corpus, under several site options."""
    lines = corpus()
    docs = []
    for options in ({}, {"non_clavister": "tag"}, {"severity_dialect": "syslog"},
                    {"keep_original": False}):
        outputs = Pipeline(**options).process_lines(lines)
        assert len(outputs) == len(lines)
        for line, out in zip(lines, outputs, strict=True):
            if isinstance(out, ecs.Event):
                docs.append(json.loads(msgspec.json.encode(out)))
            elif not line.strip():
                assert out is None  # a blank line is a counted drop, no document
            else:
                # A pass-through record is not ours: it goes out as it came.
                expected = json.loads(line) if line.startswith("{") else {"message": line}
                assert out == expected
    return docs


def test_corpus_is_big_and_varied(documents):
    codes = {d["event"].get("code") for d in documents}
    assert len(documents) > 4 * 28 * len(generate.SHAPES) * 3
    assert {str(m.id) for m in catalog.load().messages} <= codes
    tags = {t for d in documents for t in d["tags"]}
    assert {ecs.TAG_PARSE_FAILURE, ecs.TAG_UNKNOWN_MESSAGE, ecs.TAG_INVALID_VALUE,
            ecs.TAG_NOT_CLAVISTER} <= tags


def test_every_field_is_in_ecs_with_a_compatible_type(documents):
    problems = {}
    for doc in documents:
        for name, value in flatten(doc).items():
            if name.startswith(VENDOR_PREFIXES):
                continue
            parent, _, leaf = name.rpartition(".")
            if ECS_TYPES.get(parent) == "geo_point" and leaf in ("lat", "lon"):
                ecs_type = "float"  # geo_point written as {"lat": ..., "lon": ...}
            elif name not in ECS_TYPES:
                problems.setdefault(name, "not an ECS 9.5 field")
                continue
            else:
                ecs_type = ECS_TYPES[name]
            why = type_problem(ecs_type, value)
            if why:
                problems.setdefault(name, f"{why} (event.code {doc['event'].get('code')})")
    assert problems == {}


def test_event_values_are_allowed(documents):
    allowed = ALLOWED["allowed_values"]
    for doc in documents:
        ev = doc["event"]
        assert ev["kind"] in allowed["event.kind"]
        for c in ev.get("category", []):
            assert c in allowed["event.category"], ev
        for t in ev.get("type", []):
            assert t in allowed["event.type"], ev
        if "outcome" in ev:
            assert ev["outcome"] in allowed["event.outcome"], ev


def test_each_event_type_is_expected_for_one_of_its_categories(documents):
    broken = set()
    for doc in documents:
        ev = doc["event"]
        cats = tuple(ev.get("category", ()))
        for t in ev.get("type", ()):
            if (cats, t) in SCHEMA_EXCEPTIONS:
                continue
            if not any(t in EXPECTED_TYPES.get(c, ()) for c in cats):
                broken.add((ev["code"], ev["action"], cats, t))
    assert broken == set(), "event.type not expected for any of its categories: " + ", ".join(
        f"{code} {action}: {t} in {list(cats)}" for code, action, cats, t in sorted(broken)
    )


def test_dates_and_ips_literally(documents):
    for doc in documents:
        assert _is_date(doc["@timestamp"]), doc["@timestamp"]
        for ip in doc.get("related", {}).get("ip", []):
            assert _is_ip(ip)


# -- every field the Structs can write, whether or not the corpus produced it ------------------


def _struct_leaves(t, prefix: str = ""):
    """(dotted name, kind) for every leaf of a msgspec type; kind is str/int/bool/dict."""
    if isinstance(t, msgspec.inspect.UnionType):
        for sub in t.types:
            if not isinstance(sub, msgspec.inspect.NoneType):
                yield from _struct_leaves(sub, prefix)
    elif isinstance(t, msgspec.inspect.StructType):
        for f in t.fields:
            yield from _struct_leaves(f.type, f"{prefix}{f.encode_name}.")
    elif isinstance(t, msgspec.inspect.ListType):
        yield from _struct_leaves(t.item_type, prefix)
    elif isinstance(t, msgspec.inspect.Metadata):
        yield from _struct_leaves(t.type, prefix)
    else:
        kind = {
            msgspec.inspect.StrType: "str", msgspec.inspect.IntType: "int",
            msgspec.inspect.BoolType: "bool", msgspec.inspect.DictType: "dict",
        }[type(t)]
        yield prefix[:-1], kind


_COMPATIBLE = {"str": _TEXT | {"ip", "date"}, "int": _INT, "bool": {"boolean"}}


def test_every_field_the_structs_can_write_is_in_ecs():
    leaves = dict(_struct_leaves(msgspec.inspect.type_info(ecs.Event)))
    ours = {n: k for n, k in leaves.items() if not n.startswith(("clavister", "labels"))}
    assert "source.address" in ours and "@timestamp" in ours  # the walk reaches them
    # A dict is a container an enrichment plugin fills (source.geo, source.as): ECS must
    # have fields under it. Its content is checked on real output, not here.
    containers = {n for n, k in ours.items() if k == "dict"}
    empty = sorted(n for n in containers if not any(f.startswith(n + ".") for f in ECS_TYPES))
    assert empty == [], f"copy the ECS rows under these into tests/data/ecs-fields.csv: {empty}"
    leaves = {n: k for n, k in ours.items() if n not in containers}
    missing = sorted(n for n in leaves if n not in ECS_TYPES)
    assert missing == [], f"copy these rows into tests/data/ecs-fields.csv: {missing}"
    wrong = {n: (k, ECS_TYPES[n]) for n, k in leaves.items() if ECS_TYPES[n] not in _COMPATIBLE[k]}
    assert wrong == {}
    assert ECS_TYPES["labels"] == "object"
