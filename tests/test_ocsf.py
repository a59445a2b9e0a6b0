"""The OCSF profile, checked against the published OCSF schema (PyPI ``ocsf-json-schema``,
validated by ``jsonschema``): the mapping's facts, every generated event in every shape,
with and without redaction, and hostile input."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import jsonschema
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
from test_hostile import SETTINGS, hostile_line, is_blank
from test_redact import ID_MODES, IP_MODES, KEY_ENV, SECRET, config, corpus, leaks, originals

from ikefilter import app, catalog, generate, hookimpl, ocsf, ocsf_mapping
from ikefilter.config import ConfigError, loads
from ikefilter.ocsf import Document, Renderer

MAPPING = ocsf_mapping.load()
ENC = msgspec.json.Encoder()
BASE_REQUIRED = {"activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time",
                 "type_uid"}


@functools.lru_cache(maxsize=1)
def published() -> dict:
    return get_ocsf_schema(version=MAPPING.version)


@functools.lru_cache(maxsize=16)
def validator(class_uid: int) -> jsonschema.Draft202012Validator:
    embedded = OcsfJsonSchemaEmbedded(published())
    name = embedded.lookup_class_name_from_uid(class_uid)
    return jsonschema.Draft202012Validator(
        embedded.get_class_schema(name, profiles=ocsf.PROFILES))


def errors(doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(doc["class_uid"]).iter_errors(doc)]


def valid_all(docs: list[dict]) -> None:
    bad = [(d["class_uid"], d.get("metadata", {}).get("event_code"), errors(d))
           for d in docs]
    bad = [b for b in bad if b[2]]
    assert bad == [], bad[:3]


def ocsf_pipeline(text: str = "", **overrides):
    return app.build_pipeline(loads(text, "site.toml"), entry_points=False, schema="ocsf",
                              **overrides)


def render(lines, text: str = "", **overrides) -> list[dict]:
    pipeline = ocsf_pipeline(text, **overrides)
    out = pipeline.process_lines(lines)
    assert pipeline.stats.in_ == len(lines)
    return [json.loads(ENC.encode(d)) for d in out if d is not None]


# -- the mapping against the published schema -----------------------------------------------


def test_the_version_is_a_published_one():
    assert published()["version"] == MAPPING.version


@pytest.mark.parametrize("uid", sorted(MAPPING.classes))
def test_each_class_is_the_published_one(uid):
    mine = MAPPING.classes[uid]
    theirs = next(c for c in published()["classes"].values() if c["uid"] == uid)
    assert mine.name == theirs["caption"]
    attributes = theirs["attributes"]
    categories = attributes["category_uid"]["enum"]
    assert list(categories) == [str(mine.category_uid)]
    assert mine.category_name == categories[str(mine.category_uid)]["caption"]
    activities = {int(k): v["caption"] for k, v in attributes["activity_id"]["enum"].items()}
    assert {i: activities.get(i) for i in mine.activities} == mine.activities
    assert mine.attributes <= attributes.keys()
    schema = validator(uid).schema
    assert mine.required == set(schema.get("required", [])) - BASE_REQUIRED
    assert sorted(mine.at_least_one) == sorted(
        c["required"][0] for c in schema.get("anyOf", []))


def test_severity_and_status_names_are_the_published_ones():
    base = published()["classes"]["base_event"]["attributes"]
    severities = {int(k): v["caption"] for k, v in base["severity_id"]["enum"].items()}
    assert {i: severities[i] for i in MAPPING.severity.names} == MAPPING.severity.names
    statuses = {int(k): v["caption"] for k, v in base["status_id"]["enum"].items()}
    for status_id, name in (MAPPING.status.success, MAPPING.status.failure,
                            MAPPING.status.unknown):
        assert statuses[status_id] == name


def test_every_catalog_message_maps_to_a_class_and_activity(cat):
    ocsf_mapping.check_against(MAPPING, cat)
    for entry in [*MAPPING.messages.values(), *MAPPING.reasons]:
        cls = MAPPING.classes[entry.class_uid]
        assert entry.activity_id in cls.activities
        type_uid = entry.class_uid * 100 + entry.activity_id
        assert type_uid in validator(entry.class_uid).schema["properties"]["type_uid"]["enum"]


def test_a_mapping_out_of_step_is_refused():
    text = ocsf_mapping.data_dir().joinpath(ocsf_mapping.FILE).read_text()
    with pytest.raises(catalog.CatalogError, match="activity 4 is not one of Tunnel"):
        ocsf_mapping.loads(text.replace("class_uid = 4014\nactivity_id = 2",
                                        "class_uid = 4014\nactivity_id = 4", 1))
    smaller = msgspec.structs.replace(MAPPING, messages={
        k: v for k, v in MAPPING.messages.items() if k != 530})
    with pytest.raises(catalog.CatalogError, match=r"missing \[530\]"):
        ocsf_mapping.check_against(smaller, catalog.load())


# -- every generated event, every shape ----------------------------------------------------


def test_every_message_in_every_shape_is_a_valid_document_of_its_class(cat):
    shapes = generate.ALL_SHAPES
    lines = list(generate.lines(cat, len(cat.messages) * len(shapes), seed=3, shapes=shapes))
    docs = render(lines)
    assert len(docs) == len(lines)
    valid_all(docs)
    seen = set()
    for doc in docs:
        code = int(doc["metadata"]["event_code"])
        entry = MAPPING.messages[code]
        if entry.class_uid != doc["class_uid"]:  # only the reason rule may move a message
            rule = next(r for r in MAPPING.reasons if code in r.messages)
            assert (doc["class_uid"], doc["activity_id"]) == (rule.class_uid, rule.activity_id)
            assert any(w in doc["status_detail"].lower() for w in rule.contains)
        else:
            assert doc["activity_id"] == entry.activity_id
        assert doc["type_uid"] == doc["class_uid"] * 100 + doc["activity_id"]
        assert doc["metadata"]["product"] == {"vendor_name": "Clavister", "name": "cOS Stream"}
        assert doc["metadata"]["version"] == "1.8.0"
        assert doc["raw_data"]
        seen.add(doc["class_uid"])
    assert seen == set(MAPPING.classes)  # the base event too (813)


def test_the_wild_mix_validates(cat):
    lines = list(generate.lines(cat, 1500, seed=11, mix="wild"))
    docs = render(lines)
    assert len(docs) == len(lines)
    valid_all(docs)


@pytest.mark.parametrize("identity", ID_MODES)
@pytest.mark.parametrize("ip", IP_MODES)
def test_redacted_documents_validate_and_leak_nothing(ip, identity, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    lines = corpus()
    ips, ids = originals(lines)
    pipeline = ocsf_pipeline(config(ip, identity))
    out = pipeline.process_lines(lines)
    assert pipeline.stats.out == len(lines)
    data = ENC.encode_lines(out)
    docs = [json.loads(line) for line in data.splitlines()]
    valid_all(docs)
    assert all("raw_data" not in d for d in docs)
    if ip in ("truncate", "cryptopan"):
        ips = set()  # a network kept by design, a fixed point: test_redact covers both
    assert leaks(data, ips) == []
    assert leaks(data, ids) == []
    if ip == "hmac":  # a token is not an IP: the endpoint is identified by it
        assert any("uid" in d.get("src_endpoint", {}) for d in docs)


def test_the_cli_writes_2000_valid_documents(tmp_path):
    made = subprocess.run([sys.executable, "-m", "ikefilter", "generate", "--count", "2000"],
                          capture_output=True, check=True).stdout
    done = subprocess.run([sys.executable, "-m", "ikefilter", "run", "--schema", "ocsf"],
                          input=made, capture_output=True, check=True)
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(docs) == 2000
    valid_all(docs)


def test_the_site_config_chooses_the_schema_and_the_flag_wins(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text('[output]\nschema = "ocsf"\n')
    line = b"[2026-11-26 10:00:00] EFW: IKE: prio=2 id=590 rev=1 remoteip=88.9.9.9\n"
    run = [sys.executable, "-m", "ikefilter", "run", "--config", str(site)]
    as_ocsf = json.loads(subprocess.run(run, input=line, capture_output=True,
                                        check=True).stdout)
    as_ecs = json.loads(subprocess.run([*run, "--schema", "ecs"], input=line,
                                       capture_output=True, check=True).stdout)
    assert as_ocsf["class_uid"] == 4014 and as_ocsf["activity_id"] == 2
    assert as_ecs["event"]["action"] == "ike-sa-deleted"
    with pytest.raises(ConfigError, match=r"site.toml:2: output.schema"):
        loads('[output]\nschema = "cef"\n', "site.toml")


# -- what is not a catalogued event --------------------------------------------------------


def test_unknown_ids_failures_and_other_programs_are_tagged_base_events():
    lines = ["<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=99999 rev=1 peer=62.7.7.7",
             '<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 localid="unbalanced',
             "sshd[12]: Accepted publickey for root from 10.0.0.9",
             '{"note": "a record with no line"}']
    docs = render(lines)
    assert len(docs) == 4
    valid_all(docs)
    unknown, broken, other, record = docs
    assert unknown["class_uid"] == 0 and unknown["activity_id"] == 0
    assert "ikefilter_unknown_message" in unknown["metadata"]["labels"]
    assert unknown["unmapped"]["clavister"]["extra"]["peer"] == "62.7.7.7"
    assert unknown["raw_data"] == lines[0]
    assert "ikefilter_parse_failure" in broken["metadata"]["labels"]
    assert "ikefilter_not_clavister" in other["metadata"]["labels"]
    assert other["raw_data"] == lines[2] and other["class_uid"] == 0
    assert "ikefilter_not_clavister" in record["metadata"]["labels"]


def test_the_validation_refuses_what_the_class_forbids():
    doc, = render([LINE])
    assert errors(doc) == []
    for name in ("connection_info", "src_endpoint", "session", "tunnel_interface"):
        doc.pop(name, None)
    assert any("is not valid under any of the given schemas" in e for e in errors(doc))
    assert errors({**doc, "connection_info": {"direction_id": 7}, "peer": 1}) != []


def test_an_event_short_of_its_class_is_a_base_event_named_for_its_activity():
    doc, = render(["[2026-11-26 10:00:00] EFW: IKE: prio=2 id=1059 rev=1 max=64"])
    assert errors(doc) == []
    assert (doc["class_uid"], doc["activity_id"], doc["activity_name"]) == (0, 99, "Refuse")
    assert doc["unmapped"]["clavister"]["limit"] == {"max": 64}


def test_an_authentication_failure_is_a_failed_logon_of_the_peer():
    doc, = render(['[2026-11-26 10:00:00] EFW: IKE: prio=3 id=419 rev=1 localip=203.0.113.1'
                   ' remoteip=81.2.3.4 remoteid=gw.example.net initiator=false'
                   ' reason="Authentication failed"'])
    assert errors(doc) == []
    assert (doc["class_uid"], doc["activity_id"], doc["status_id"]) == (3002, 1, 2)
    assert doc["user"] == {"name": "gw.example.net"}
    assert doc["src_endpoint"] == {"ip": "81.2.3.4"}  # the initiator: the peer here
    assert doc["status_detail"] == "Authentication failed"


def test_endpoints_session_and_direction_follow_the_role_rule():
    lines = [f"[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=203.0.113.1"
             f" localport=500 remoteip=81.2.3.4 remoteport=4500 localikespi=aa remoteikespi=bb"
             f" initiator={flag} iface=ipsec_hq recviface=wan" for flag in ("true", "false")]
    ours, theirs = render(lines)
    valid_all([ours, theirs])
    assert ours["src_endpoint"] == {"ip": "203.0.113.1", "port": 500}
    assert ours["connection_info"]["direction_id"] == 2
    assert theirs["src_endpoint"] == {"ip": "81.2.3.4", "port": 4500}
    assert theirs["connection_info"]["direction_id"] == 1
    assert ours["session"] == {"is_vpn": True, "uid": "aa:bb"}
    assert ours["tunnel_interface"] == {"name": "ipsec_hq"}
    assert ours["device"]["interface_name"] == "wan"
    assert ours["time"] == 1795687200000 and ours["time_dt"] == "2026-11-26T10:00:00.000Z"
    assert ours["unmapped"]["clavister"]["ike"]["initiator"] is True


# -- the site stages apply to both schemas -------------------------------------------------


class Enrich:
    @hookimpl
    def ikefilter_enrich(self, events):
        for event in events:
            if event.source is not None:
                event.source.geo = {"country_iso_code": "SE", "city_name": "Kista",
                                    "location": {"lat": 59.4, "lon": 17.9}, "timezone": "CET"}
                event.source.as_ = {"number": 64500, "organization": {"name": "Example"}}
            event.labels = {"site": "hq"}


def test_hooks_reach_the_document(tmp_path):
    site = ('[[severity.rule]]\ncode = 530\nseverity = "critical"\n')
    pipeline = app.build_pipeline(loads(site, "site.toml"), entry_points=False,
                                  schema="ocsf", plugins=[Enrich()])
    line = ("[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=203.0.113.1"
            " remoteip=81.2.3.4")
    doc = json.loads(ENC.encode(pipeline.process_lines([line])[0]))
    assert errors(doc) == []
    assert (doc["severity_id"], doc["severity"]) == (5, "Critical")
    assert doc["src_endpoint"]["location"] == {"city": "Kista", "country": "SE",
                                               "lat": 59.4, "long": 17.9}
    assert doc["src_endpoint"]["autonomous_system"] == {"number": 64500, "name": "Example"}
    assert doc["unmapped"]["source"] == {"geo": {"timezone": "CET"}}
    assert doc["unmapped"]["labels"] == {"site": "hq"}


@SETTINGS
@given(batch=st.lists(hostile_line, max_size=8))
def test_hostile_input_gives_one_valid_document_per_line(batch):
    pipeline = HOSTILE
    before, blank_before = pipeline.stats.in_, pipeline.stats.dropped_by_rule.get("blank_line", 0)
    out = pipeline.process_lines(batch)
    assert len(out) == len(batch) and pipeline.stats.in_ - before == len(batch)
    # a blank line is a counted drop; every other line is one document
    blank = [is_blank(line) for line in batch]
    assert [d is None for d in out] == blank
    assert pipeline.stats.dropped_by_rule.get("blank_line", 0) - blank_before == sum(blank)
    assert all(type(d) is Document for d in out if d is not None)
    valid_all([json.loads(ENC.encode(d)) for d in out if d is not None])


HOSTILE = ocsf_pipeline()


# -- every adapter ---------------------------------------------------------------------------


LINE = ("<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=590 rev=1 localip=203.0.113.1"
        " remoteip=88.9.9.9")


def test_the_msgpack_stream_writes_documents():
    import msgpack

    data = msgpack.packb({"log": LINE}) + msgpack.packb({"log": "not ours"})
    done = subprocess.run([sys.executable, "-m", "ikefilter", "run", "--schema", "ocsf",
                           "--input-format", "msgpack", "--output-format", "msgpack"],
                          input=data, capture_output=True, check=True).stdout
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(done)
    docs = list(unpacker)
    assert [d["class_uid"] for d in docs] == [4014, 0]
    valid_all(docs)


def test_mmexternal_and_syslog_ng_reply_with_documents():
    from ikefilter.adapters import mmexternal, syslogng

    parser = syslogng.Parser()
    assert parser.init({"schema": "ocsf"})
    message = {"RAWMSG": LINE.encode(), "HOST": b"fw", "ISODATE": b"2026-11-26T10:00:00+00:00"}
    assert parser.parse(message)
    doc = json.loads(message[syslogng.DEFAULT_OUTPUT_FIELD])
    assert errors(doc) == [] and doc["class_uid"] == 4014
    parser.deinit()
    answers = mmexternal.Answers(ocsf_pipeline())
    reply = json.loads(answers.one(LINE.encode()))
    assert errors(reply["$!"]) == [] and reply["$!"]["activity_name"] == "Close"


def test_the_renderer_leaves_other_items_alone():
    record = {"message": "passed through"}
    assert Renderer()([record, None]) == [record, None]
    with pytest.raises(ValueError, match="schema"):
        ocsf.renderer("cef")
