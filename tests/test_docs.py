"""The docs cannot drift: every hook and config key is documented, and the guide's example
plugin runs as written."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import msgspec
import pytest

from ikefilter import (
    app,
    catalog,
    cli,
    config,
    ecs,
    fieldtable,
    hookimpl,
    hookspecs,
    ocsf_mapping,
    shaping,
)

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_MD = ROOT / "docs" / "plugins.md"
CONFIG_MD = ROOT / "docs" / "config.md"

HOOKS = sorted(
    (name, fn) for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("ikefilter_")
)


def sections(text: str) -> dict[str, str]:
    """``### heading`` -> the text up to the next heading."""
    parts = re.split(r"^#{2,3} (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_there_are_hooks():
    assert {"ikefilter_configure", "ikefilter_enrich", "ikefilter_redact",
            "ikefilter_severity"} <= {name for name, _ in HOOKS}


@pytest.mark.parametrize(("name", "spec"), HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hookspec_is_in_the_guide(name, spec):
    guide = sections(PLUGINS_MD.read_text("utf-8"))
    assert name in guide, f"docs/plugins.md has no '### {name}' section"
    for arg in inspect.signature(spec).parameters:
        assert re.search(rf"\b{arg}\b", guide[name]), f"{name}: argument {arg} not described"


@pytest.mark.parametrize(("name", "spec"), HOOKS, ids=[name for name, _ in HOOKS])
def test_every_hookspec_has_a_full_docstring(name, spec):
    doc = inspect.getdoc(spec) or ""
    for arg in inspect.signature(spec).parameters:
        assert f":param {arg}:" in doc, f"{name}: no ':param {arg}:'"
    assert ":return:" in doc, f"{name}: no ':return:'"
    assert "firstresult" in doc, f"{name}: say whether it is firstresult"
    assert "once" in doc, f"{name}: say when it is called"


def _fields(struct: type) -> list[str]:
    return [f.encode_name for f in msgspec.structs.fields(struct)]


@pytest.mark.parametrize(("table", "struct"), [
    ("`[ikefilter]`", config.Core),
    ("`[redact]`: the built-in redaction plugin", config.Redact),
    ("`[[severity.rule]]`: the built-in severity remapping", config.SeverityRule),
    ("`[output]`: the documents written", config.Output),
    ("`[time]`: times without a zone", shaping.TimeTable),
    ("`[ecs]`: what goes into ECS fields beyond the catalog's mapping", shaping.EcsTable),
])
def test_every_config_key_is_in_the_config_guide(table, struct):
    doc = sections(CONFIG_MD.read_text("utf-8"))
    assert table in doc
    for key in _fields(struct):
        assert f"| `{key}` |" in doc[table], f"docs/config.md: {table} lacks {key}"


def test_the_config_guide_example_is_a_valid_config(monkeypatch):
    example = re.search(r"```toml\n(.*?)```", CONFIG_MD.read_text("utf-8"), re.S)[1]
    parsed = config.loads(example, "docs/config.md")
    assert parsed.redact.ip == "hmac" and len(parsed.severity.rule) == 2


def _files(text: str) -> dict[str, str]:
    return dict(re.findall(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", text, re.S))


def test_the_guide_example_plugin_works_as_written(tmp_path, capsysbinary, monkeypatch):
    files = _files(PLUGINS_MD.read_text("utf-8"))
    assert set(files) == {"asset_owner.py", "site.toml"}
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    source = tmp_path / "in.log"
    head = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 rev=1 localip=203.0.113.1"
    source.write_text(
        f"{head} id=530 remoteip=81.2.3.4\n"
        f"{head} id=419 remoteip=92.9.9.9\n"          # a failure from an unknown peer
        f"{head} id=530 remoteip=92.9.9.9\n"
    )
    stats = tmp_path / "stats.json"
    monkeypatch.chdir(ROOT)  # the config's load list is relative to the config, not here
    argv = ["run", "--config", str(tmp_path / "site.toml"), "--stats", str(stats), str(source)]
    assert cli.main(argv) == 0
    out = [json.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    assert [e.get("labels") for e in out] == [{"owner": "partner-a"}, None]
    counts = json.loads(stats.read_text())
    assert counts["dropped_by_rule"] == {"asset_owner:unknown-peer-failure": 1}
    assert cli.main(["plugins", "--config", str(tmp_path / "site.toml")]) == 0
    listing = capsysbinary.readouterr().out.decode()
    assert re.search(r"^asset_owner +config_tables, configure, enrich", listing, re.M)


OCSF_MD = ROOT / "docs" / "ocsf.md"
OCSF_EXAMPLE_CLOCK = "2026-11-26T10:00:05.000Z"  # the docs' examples were taken in then


def test_the_ocsf_table_is_the_mapping():
    mapping, cat = ocsf_mapping.load(), catalog.load()
    rows = re.findall(r"^\| (\d+) \| (\S+) \| (\d+) [^|]+ \| (\d+) ([^|]+) \| (\w+) \|$",
                      OCSF_MD.read_text("utf-8"), re.M)
    assert sorted(int(r[0]) for r in rows) == sorted(m.id for m in cat.messages)
    for code, action, class_uid, activity_id, activity, outcome in rows:
        entry, msg = mapping.messages[int(code)], cat.by_id()[int(code)]
        cls = mapping.classes[entry.class_uid]
        assert (int(class_uid), int(activity_id)) == (entry.class_uid, entry.activity_id), code
        assert activity.strip() == (entry.activity_name or cls.activities[entry.activity_id])
        assert (action, outcome) == (msg.ecs.action, msg.ecs.outcome or "none"), code


def test_the_ocsf_examples_are_what_run_writes(monkeypatch):
    monkeypatch.setattr(ecs, "now", lambda: OCSF_EXAMPLE_CLOCK)
    examples = re.findall(r"<!-- ocsf-example -->\n```\n(.*?)\n```\n\n```json\n(.*?)```",
                          OCSF_MD.read_text("utf-8"), re.S)
    pipeline = app.build_pipeline(entry_points=False, schema="ocsf")
    docs = pipeline.process_lines([line for line, _ in examples])
    classes = set()
    for (line, shown), doc in zip(examples, docs, strict=True):
        written = json.loads(msgspec.json.encode(doc))
        assert written == json.loads(shown), line
        classes.add(written["class_uid"])
    assert classes == set(ocsf_mapping.load().classes)  # an example of every class used


def test_the_event_field_table_is_the_structs():
    text = PLUGINS_MD.read_text("utf-8")
    start, end = text.index(fieldtable.BEGIN), text.index(fieldtable.END)
    assert text[start:end + len(fieldtable.END)] == fieldtable.markdown(), \
        "docs/plugins.md: paste the output of `python -m ikefilter.fieldtable`"
    table = text[start:end]
    for path in ("timestamp", "source.ip", "event.code", "labels", "observer.name",
                 "observer.geo", "clavister.ike.initiator"):
        assert f"| `{path}` |" in table, path
    assert "| `source.as_` | `source.as` |" in table


def test_the_guide_says_where_site_fields_go_as_they_work():
    """The "Where a site's own facts go" examples, run as a plugin would run them."""
    guide = sections(PLUGINS_MD.read_text("utf-8"))["The event"]
    examples = re.findall(r"\| `(event\.[a-z_.]+ = [^`]+)` \|", guide)
    assert len(examples) == 3, examples

    class Site:
        name = "site"

        @hookimpl
        def ikefilter_enrich(self, events):
            for event in events:
                for statement in examples:
                    exec(statement, {}, {"event": event})

    pipeline = app.build_pipeline(config.loads(""), plugins=[Site()], entry_points=False)
    [doc] = pipeline.process_lines(
        ["<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 remoteip=81.2.3.4"])
    out = json.loads(msgspec.json.encode(doc))
    assert out["labels"] == {"site": "hq"}
    assert out["observer"]["name"] == "fw-hq-01"
    assert out["observer"]["geo"] == {"name": "boston-dc", "country_iso_code": "US"}
    assert "ikefilter_enrich_failure" not in out["tags"]


def test_an_attribute_the_event_lacks_fails_the_plugin_as_the_guide_says():
    class Typo:
        name = "typo"

        @hookimpl
        def ikefilter_enrich(self, events):
            for event in events:
                event.site = "hq"

    pipeline = app.build_pipeline(config.loads(""), plugins=[Typo()], entry_points=False)
    [event] = pipeline.process_lines(["<134>EFW: IKE: prio=2 id=530 remoteip=81.2.3.4"])
    assert "ikefilter_enrich_failure" in event.tags
    assert "AttributeError" in event.error.message
