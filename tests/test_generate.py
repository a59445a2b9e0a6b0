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
