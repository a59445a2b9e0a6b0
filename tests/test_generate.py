"""The synthetic corpus: reproducible, every message in every shape, every line decodes."""

from __future__ import annotations

import json
import re

import msgspec
import pytest
from conftest import reference_entries

from ikefilter import cli, ecs, generate
from ikefilter.pipeline import Pipeline

SEVERITY = {
    "Emergency": 0, "Alert": 1, "Critical": 2, "Error": 3, "Warning": 4, "Notice": 5,
    "Information": 6, "Debug": 7,
}

_BRACKETED = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] EFW: [A-Z,]+: prio=\d id=(\d+) "
# A recognizer per shape, written from the shape's description, not from the generator.
SHAPE_TEXT = {
    "bracketed": re.compile(rf"<\d+>{_BRACKETED}"),
    "raw-ids": re.compile(rf"<\d+>{_BRACKETED}"),
    "bare": re.compile(_BRACKETED),
    "rfc3164": re.compile(rf"<\d+>[A-Z][a-z]{{2}} [ \d]\d \d\d:\d\d:\d\d \S+ {_BRACKETED}"),
    "rfc5424": re.compile(
        r"<\d+>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ EFW - - - [A-Z,]+: prio=\d id=(\d+) "
    ),
    "receiver": re.compile(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\tLocal0\.\w+\t\S+\t{_BRACKETED}"),
}


def shape_of(line: str) -> tuple[str, int]:
    """(shape, message ID) of one generated line, by looking at it."""
    if line.startswith("{"):
        rec = json.loads(line)
        if "log" in rec:
            shape, text = "json-log", rec["log"]
        elif "message" in rec:
            shape, text = "json-message", rec["message"]
            assert rec["host"] and rec["@timestamp"]
        elif "MESSAGE" in rec:
            shape, text = "syslog-ng", "<0>" + rec["MESSAGE"]
            assert rec["HOST"]
        elif "rawmsg" in rec:
            shape, text = "rsyslog", rec["rawmsg"]
            assert rec["msg"].lstrip() in rec["rawmsg"]
            assert {"hostname", "timereported", "pri"} <= set(rec)
        else:
            assert {"id", "prio", "@timestamp", "host"} <= set(rec)
            return "split", int(rec["id"])
        m = SHAPE_TEXT["bracketed"].match(text) or SHAPE_TEXT["rfc3164"].match(text)
        assert m, text
        return shape, int(m[1])
    for shape in ("rfc3164", "rfc5424", "receiver", "bracketed", "bare"):
        m = SHAPE_TEXT[shape].match(line)
        if m:
            if shape == "bracketed" and re.search(r" id=0\d", line):
                shape = "raw-ids"
            return shape, int(m[1])
    raise AssertionError(f"no shape: {line[:120]}")


def test_same_seed_same_lines(cat):
    a = list(generate.lines(cat, 500, seed=7))
    b = list(generate.lines(cat, 500, seed=7))
    assert a == b
    assert len(a) == 500


def test_other_seed_other_lines(cat):
    a = list(generate.lines(cat, 308, seed=1))
    b = list(generate.lines(cat, 308, seed=2))
    assert a != b
    assert sum(x != y for x, y in zip(a, b, strict=True)) > 250


def test_count_is_respected(cat):
    assert list(generate.lines(cat, 0)) == []
    assert len(list(generate.lines(cat, 1))) == 1
    assert len(list(generate.lines(cat, 1001))) == 1001


def test_every_message_in_every_shape_within_28_times_shapes_lines(cat):
    n = len(cat.messages) * len(generate.SHAPES)
    assert n == 28 * 11
    seen = {shape_of(line) for line in generate.lines(cat, n, seed=3)}
    ids = {m.id for m in cat.messages}
    assert seen == {(shape, i) for shape in generate.SHAPES for i in ids}


def test_shape_filter(cat):
    got = list(generate.lines(cat, 56, shapes=("rfc5424", "split")))
    assert {shape_of(line)[0] for line in got} == {"rfc5424", "split"}
    with pytest.raises(ValueError, match="unknown shape 'nope'"):
        list(generate.lines(cat, 1, shapes=("nope",)))


def test_raw_ids_are_zero_padded(cat):
    got = list(generate.lines(cat, 28, shapes=("raw-ids",)))
    assert all(re.search(r" id=\d{8} ", line) for line in got)
    assert {int(re.search(r" id=(\d+) ", line)[1]) for line in got} == {m.id for m in cat.messages}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_generated_line_decodes_cleanly(cat, seed):
    src = list(generate.lines(cat, 28 * len(generate.SHAPES) * 3, seed=seed))
    out = Pipeline(cat).process_lines(src)
    defaults = {i: SEVERITY[e["Default Log Severity"]] for i, e in reference_entries().items()}
    for line, event in zip(src, out, strict=True):
        assert isinstance(event, ecs.Event), line
        doc = json.loads(msgspec.json.encode(event))
        assert not [t for t in doc["tags"] if t.startswith("ikefilter_")], (line, doc)
        assert "error" not in doc
        ident = shape_of(line)[1]
        assert doc["event"]["code"] == str(ident)
        assert doc["message"] == reference_entries()[ident]["Log Message"]
        # The generator writes prio as the catalog default severity.
        assert doc["event"]["severity"] == defaults[ident]
        assert doc["@timestamp"].startswith("2026-11-26T")


def test_generated_values_are_realistic(cat):
    src = list(generate.lines(cat, 28 * len(generate.SHAPES), seed=5))
    docs = [json.loads(msgspec.json.encode(e)) for e in Pipeline(cat).process_lines(src)]
    by_code: dict[str, list[dict]] = {}
    for d in docs:
        by_code.setdefault(d["event"]["code"], []).append(d)
    for d in by_code["530"]:
        assert d["source"]["port"] in (500, 4500)
        assert len(d["clavister"]["ike"]["local_spi"]) == 16
        assert d["network"]["protocol"] == "ike"
    for d in by_code["155"]:
        assert d["network"]["protocol"] == "ipsec"
        assert d["network"]["transport"] in ("esp", "ah")
        assert len(d["clavister"]["ipsec"]["inbound_spi"]) == 8
    for d in by_code["737"]:
        assert d["user"]["name"]


def test_cli_generate_matches_the_function(cat, capsys):
    assert cli.main(["generate", "--count", "40", "--seed", "9"]) == 0
    out = capsys.readouterr().out
    assert out == "\n".join(generate.lines(cat, 40, seed=9)) + "\n"
    assert cli.main(["generate", "--count", "40", "--seed", "9"]) == 0
    assert capsys.readouterr().out == out
    assert cli.main(["generate", "--count", "40", "--seed", "10"]) == 0
    assert capsys.readouterr().out != out


def test_cli_generate_shape_option(capsys):
    assert cli.main(["generate", "--count", "28", "--shape", "receiver"]) == 0
    got = capsys.readouterr().out.splitlines()
    assert len(got) == 28
    assert all(shape_of(line)[0] == "receiver" for line in got)


# -- the wild mix and the variants ----------------------------------------------------------

# sha256 of the first 28 x 11 x 3 lines of the clean corpus for seed 1
CLEAN_SHA256 = "5a947cad881481ba7907b34bd71e325cb6583720d8c00a05b806061d9bd8b967"

_PAIR = re.compile(r'([A-Za-z_]\w*)=("(?:[^"\\]|\\.)*"|\S*)')
_SOURCE_KEYS = ("log", "message", "rawmsg", "MESSAGE")
_HEADER_PAIRS = ("prio", "id", "rev", "event")
_TEXT_PARAMS = {"reason", "remoteid", "localid", "userid", "iface"}


def _unq(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def read_wild(line: str) -> tuple[str | None, list[tuple[str, str]], bool]:
    """(the kv body as sent or None, its pairs with raw values, whether it is a split record)
    of one line, by looking at it."""
    if line.startswith("{"):
        rec = json.loads(line)
        for key in _SOURCE_KEYS:
            if isinstance(rec.get(key), str):
                line = rec[key]
                break
        else:
            pairs = [(k, v) for k, v in rec.items() if k not in ("@timestamp", "host")]
            return None, pairs, True
    m = re.search(r"(?:^|: )([A-Za-z_]\w*=.*)$", line)
    if not m:
        return None, [], False
    return m[1], _PAIR.findall(m[1]), False


def kind_of(pairs: list[tuple[str, str]], ids: set[int]) -> str:
    ident = dict(pairs).get("id")
    if ident is None:
        return "not-clavister"
    return "ike" if int(_unq(ident)) in ids else "other-category"


def variants_of(line: str, cat) -> tuple[str, set[str], set[str]]:
    """(kind, the variants the line shows, the variants it could carry), by looking."""
    body, pairs, split = read_wild(line)
    by_id = cat.by_id()
    kind = kind_of(pairs, set(by_id))
    if kind != "ike":
        return kind, {kind}, {kind}
    raw = dict(pairs)
    values = {k: _unq(v) for k, v in pairs}
    msg = by_id[int(values["id"])]
    params = list(msg.parameters)
    spis = [values[k] for k in values if k.endswith("spi")]
    ini = values.get("initiator")
    known = [k for k, _ in pairs if k in _HEADER_PAIRS or k in params]
    seen = set()
    if any(v.startswith("0x") for v in spis):
        seen.add("spi-0x")
    if any(re.search("[A-F]", v.removeprefix("0x")) for v in spis):
        seen.add("spi-upper")
    if ini in ("yes", "no", "on", "off"):
        seen.add("bool-word")
    elif ini in ("1", "0"):
        seen.add("bool-digit")
    elif ini is not None and ini != ini.lower():
        seen.add("bool-case")
    if not split and any(re.fullmatch(r'"[^"\s=\\]+"', v) for v in raw.values()):
        seen.add("quoted")
    if not split and body.endswith(" "):
        seen.add("trailing-space")
    if not split and "  " in body.rstrip(" "):
        seen.add("double-space")
    if any(k not in _HEADER_PAIRS and k not in params for k in values):
        seen.add("unknown-param")
    if values["id"].startswith("0"):
        seen.add("padded-id")
    if known != [k for k in list(_HEADER_PAIRS) + params if k in values]:
        seen.add("shuffled")
    if any(values[k] == "" for k in values):
        seen.add("empty-value")
    can = {"unknown-param", "padded-id", "shuffled"}
    if not split:
        can |= {"quoted", "trailing-space", "double-space"}
    if any(p.endswith("spi") for p in params):
        can |= {"spi-0x", "spi-upper"}
    if "initiator" in params:
        can |= {"bool-word", "bool-case", "bool-digit"}
    if _TEXT_PARAMS & set(params):
        can.add("empty-value")
    return kind, seen, can


def test_the_clean_corpus_is_unchanged(cat):
    """Figures and tests compare against the clean corpus: the wild mix must not move it."""
    import hashlib

    text = "\n".join(generate.lines(cat, 28 * 11 * 3, seed=1)).encode()
    assert hashlib.sha256(text).hexdigest() == CLEAN_SHA256, (
        "the clean corpus changed; if on purpose, update CLEAN_SHA256")
    assert list(generate.lines(cat, 50, seed=4)) == list(
        generate.lines(cat, 50, seed=4, mix="clean"))


def test_wild_mix_is_reproducible(cat):
    a = list(generate.lines(cat, 2000, seed=7, mix="wild"))
    assert a == list(generate.lines(cat, 2000, seed=7, mix="wild"))
    b = list(generate.lines(cat, 2000, seed=8, mix="wild"))
    assert sum(x != y for x, y in zip(a, b, strict=True)) > 1900
    one = list(generate.lines(cat, 300, seed=7, variants=("spi-upper",)))
    assert one == list(generate.lines(cat, 300, seed=7, variants=("spi-upper",)))
    assert one != list(generate.lines(cat, 300, seed=8, variants=("spi-upper",)))


def test_wild_mix_has_every_shape(cat):
    got = list(generate.samples(cat, 3000, seed=2))
    assert {s.shape for s in got} == set(generate.WILD_SHAPES)
    texts = [s.line for s in got if not s.line.startswith("{")]
    assert any(re.match(r"<\d+>\[\d{4}-", t) for t in texts)                  # bracketed
    assert any(re.match(r"\[\d{4}-", t) for t in texts)                       # no PRI
    assert any(re.match(r"<\d+>[A-Z][a-z]{2} [ \d]\d [\d:]{8} \S+ \[", t) for t in texts)
    assert any(re.match(r"<\d+>[A-Z][a-z]{2} [ \d]\d [\d:]{8} \S+ EFW: ", t) for t in texts)
    assert any(re.match(r"<\d+>1 \S+ \S+ EFW - - - [A-Z,]+: ", t) for t in texts)
    assert any(re.match(r"[\d-]{10} [\d:]{8}\tLocal0\.\w+\t\S+\t\[", t) for t in texts)
    assert any(re.match(r"[a-z]+=", t) for t in texts)                        # no header
    assert any("EFW: IKE,IPSEC: " in t for t in texts)
    assert any("EFW: IKE: " in t for t in texts)
    records = [json.loads(s.line) for s in got if s.line.startswith("{")]
    keys = [set(r) for r in records]
    assert any(k == {"log"} for k in keys)
    assert any({"message", "host", "@timestamp"} <= k for k in keys)
    assert any({"MESSAGE", "HOST"} <= k for k in keys)
    assert any({"msg", "rawmsg", "hostname", "timereported", "pri"} <= k for k in keys)
    split = [r for r in records if "id" in r]
    assert split and all(isinstance(v, str) for r in split for v in r.values())
    assert all({"@timestamp", "host"} <= set(r) for r in split)


@pytest.mark.parametrize("variant", list(generate.VARIANTS))
def test_each_variant_alone(cat, variant):
    """--variant V: every line shows V, and no other variant."""
    got = list(generate.lines(cat, 120, seed=3, variants=(variant,)))
    assert len(got) == 120
    for line in got:
        kind, seen, _ = variants_of(line, cat)
        assert seen == {variant}, (line, seen)
        assert kind == (variant if variant in generate.RECORD_KINDS else "ike")


def test_variants_in_other_shapes(cat):
    got = list(generate.lines(cat, 56, variants=("padded-id",), shapes=("split", "rfc5424")))
    assert {variants_of(line, cat)[1] == {"padded-id"} for line in got} == {True}
    assert {line.startswith("{") for line in got} == {True, False}
    with pytest.raises(ValueError, match="no message"):
        list(generate.lines(cat, 1, variants=("trailing-space",), shapes=("split",)))
    with pytest.raises(ValueError, match="unknown variant"):
        list(generate.lines(cat, 1, variants=("nope",)))
    with pytest.raises(ValueError, match="one or the other"):
        list(generate.lines(cat, 1, mix="wild", variants=("spi-0x",)))


def test_wild_rates_are_as_documented(cat):
    n = 20000
    counts = {k: 0 for k in generate.VARIANTS}
    able = {k: 0 for k in generate.VARIANTS}
    ike = with_any = 0
    for line in generate.lines(cat, n, seed=11, mix="wild"):
        kind, seen, can = variants_of(line, cat)
        if kind != "ike":
            counts[kind] += 1
            continue
        ike += 1
        with_any += bool(seen)
        for v in seen:
            counts[v] += 1
        for v in can:
            able[v] += 1
    for kind in generate.RECORD_KINDS:
        share = counts[kind] / n
        assert 0.6 <= share / generate.VARIANTS[kind][1] <= 1.5, (kind, share)
    for v in generate.VALUE_VARIANTS:
        share = counts[v] / able[v]
        assert 0.6 <= share / generate.VARIANTS[v][1] <= 1.5, (v, share, able[v])
    # "about half of the lines carry at least one"
    assert 0.4 <= with_any / ike <= 0.65


def test_every_wild_line_is_accepted_by_run(cat, tmp_path):
    """One output document per input line; IKE lines decode whole (no failure tags, the
    ID as sent, only the unknown parameter under extra); other Clavister lines are unknown
    messages; other programs' lines pass through unchanged."""
    import subprocess
    import sys

    src = list(generate.lines(cat, 3000, seed=5, mix="wild"))
    path = tmp_path / "wild.log"
    path.write_text("\n".join(src) + "\n", encoding="utf-8")
    stats = tmp_path / "stats.json"
    proc = subprocess.run([sys.executable, "-m", "ikefilter", "run", str(path), "--stats",
                           str(stats)], capture_output=True, check=True)
    out = proc.stdout.decode().splitlines()
    assert len(out) == len(src)
    counts = json.loads(stats.read_text())
    assert counts["in"] == counts["out"] == len(src)
    ids = {m.id for m in cat.messages}
    for line, text in zip(src, out, strict=True):
        doc = json.loads(text)
        body, pairs, _ = read_wild(line)
        kind = kind_of(pairs, ids)
        tags = [t for t in doc.get("tags", []) if t.startswith("ikefilter_")]
        if kind == "not-clavister":
            assert doc == (json.loads(line) if line.startswith("{") else {"message": line})
            continue
        if kind == "other-category":
            assert tags == ["ikefilter_unknown_message"], (line, doc)
            continue
        assert not tags and "error" not in doc, (line, doc)
        values = {k: _unq(v) for k, v in pairs}
        assert doc["event"]["code"] == str(int(values["id"]))
        msg = cat.by_id()[int(values["id"])]
        unknown = {k for k in values if k not in _HEADER_PAIRS and k not in msg.parameters}
        assert set(doc["clavister"].get("extra", {})) == unknown, (line, doc)
        ike = doc["clavister"].get("ike", {})
        for key in ("local_spi", "remote_spi"):
            if key in ike:
                assert re.fullmatch(r"[0-9a-f]{16}", ike[key]), (line, ike)
        if values.get("initiator"):
            sides = [doc["clavister"].get(k, {}) for k in ("ike", "ipsec")]
            assert [s["initiator"] for s in sides if "initiator" in s] in ([True], [False]), (
                line, doc)


def test_cli_generate_wild_and_variant(capsys, cat):
    assert cli.main(["generate", "--count", "30", "--seed", "3", "--mix", "wild"]) == 0
    assert capsys.readouterr().out == "\n".join(
        generate.lines(cat, 30, seed=3, mix="wild")) + "\n"
    assert cli.main(["generate", "--count", "20", "--variant", "bool-word"]) == 0
    got = capsys.readouterr().out.splitlines()
    assert len(got) == 20 and all(variants_of(t, cat)[1] == {"bool-word"} for t in got)
    assert cli.main(["generate", "--count", "5", "--mix", "wild", "--variant", "spi-0x"]) == 2
    assert "one or the other" in capsys.readouterr().err


def test_cli_generate_help_lists_the_variants(capsys):
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    text = capsys.readouterr().out
    for name in generate.VARIANTS:
        assert name in text
    for shape in generate.ALL_SHAPES:
        assert shape in text
