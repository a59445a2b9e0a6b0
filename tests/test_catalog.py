"""The catalog: built from the reference text plus the curated mapping, checked in, loaded."""

from __future__ import annotations

import json
import re

import msgspec
import pytest
from conftest import CURATED, REFERENCE, reference_entries

from ikefilter import catalog, cli

IKE_IDS = {
    1694, 1695, 1713, 1691, 1690, 1693, 1692, 1700, 1061, 813, 642, 419, 530, 590,
    161, 616, 556, 155, 183, 172, 628, 1060, 803, 1059, 1655, 1664, 770, 737,
}

# Severity: the name the catalog writes -> code.
SEVERITY_CODES = {
    "Emergency": 0, "Alert": 1, "Critical": 2, "Error": 3, "Warning": 4, "Notice": 5,
    "Information": 6, "Debug": 7,
}


def build(reference: str | None = None, curated: bytes | None = None) -> catalog.Catalog:
    return catalog.build(
        reference if reference is not None else REFERENCE.read_text("utf-8"),
        curated if curated is not None else CURATED.read_bytes(),
        REFERENCE.name,
    )


def test_all_28_ids(cat):
    assert len(cat.messages) == 28
    assert {m.id for m in cat.messages} == IKE_IDS
    assert set(cat.by_id()) == IKE_IDS


def test_chapter_fields(cat):
    assert (cat.chapter, cat.title, cat.source) == (
        "2.23", "IKE", "cos-stream-log-reference-ike.txt",
    )
    assert cat.intro == "These log messages refer to the IKE category."


def test_checked_in_file_equals_a_fresh_build():
    shipped = (catalog.data_dir() / "ike.json").read_bytes()
    assert catalog.dumps(build()) == shipped


def test_770_every_field_literally(cat):
    m = cat.by_id()[770]
    assert m.id == 770
    assert m.section == "2.23.27"
    assert m.title == "IKE thread watchdog triggered"
    assert m.categories == ["IKE"]
    assert m.message == (
        "IKE thread watchdog triggered. Was not able to process jobs for 30s. "
        "IKE daemon will be restarted."
    )
    assert m.severity == "Alert"
    assert m.severity_code == 1
    assert m.parameters == []
    assert m.explanation == (
        "IKE daemon was not able to process tasks for 30s. IKE daemon will be restarted. "
        "All IKE negotiated IPsec tunnels will be taken down."
    )
    assert m.gateway_action == "None"
    assert m.action_description == "None"
    assert m.proposed_action == (
        "Check for any new crashdumps and report the incident via your support channel."
    )
    assert m.ecs == catalog.EcsMapping(
        action="ike-watchdog-restart", category=["process"], type=["end", "start"],
        outcome="failure"
    )


def test_1700_title_cut_message_full(cat):
    m = cat.by_id()[1700]
    assert m.section == "2.23.8"
    assert m.title == "Failed to schedule auto-establishment of[...]"
    assert m.message == "Failed to schedule auto-establishment of IPsec tunnels."
    assert m.categories == ["IKE", "IPSEC"]
    assert (m.severity, m.severity_code) == ("Error", 3)
    assert m.parameters == ["reason"]
    assert m.explanation == (
        "The system failed to start IKE negotiations for IPsec tunnels configured for "
        "auto-establishment."
    )


def test_530_fields(cat):
    m = cat.by_id()[530]
    assert (m.section, m.title, m.message) == (
        "2.23.13", "Successfully established IKE SA", "Successfully established IKE SA.",
    )
    assert m.parameters == [
        "localip", "localport", "remoteip", "remoteport", "localid", "remoteid",
        "localikespi", "remoteikespi", "initiator", "algorithms", "rekeytime", "reauthtime",
        "ikeversion", "iface", "recviface",
    ]
    assert (m.severity, m.severity_code) == ("Notice", 5)
    assert m.explanation == "An IKE SA was successfully established between the two endpoints."


def test_813_long_proposed_action(cat):
    m = cat.by_id()[813]
    assert m.proposed_action == (
        "Add more hardware devices or extend your license to support more IKE SAs to secure "
        "that all incoming IKE requests can be properly established."
    )
    assert m.ecs.outcome is None


@pytest.mark.parametrize("ident", [813, 1655, 770])
def test_empty_parameters(cat, ident):
    assert cat.by_id()[ident].parameters == []


def test_1655_rule_category(cat):
    assert cat.by_id()[1655].categories == ["IKE", "RULE"]
    assert cat.by_id()[1655].severity == "Critical"


def test_1690_and_1691_same_title_different_parameters(cat):
    by_id = cat.by_id()
    a, b = by_id[1690], by_id[1691]
    assert a.title == b.title == "Released address"
    assert a.message == b.message == "Released address."
    assert a.parameters == ["ip", "name"]
    assert b.parameters == ["ip", "iface"]
    assert a.section == "2.23.5" and b.section == "2.23.4"
    assert "IP pool" in a.explanation and "IPPool" in b.explanation


def test_every_entry_matches_an_independent_reading_of_the_text(cat):
    ref = reference_entries()
    assert set(ref) == IKE_IDS
    for m in cat.messages:
        r = ref[m.id]
        assert m.section == r["section"], m.id
        assert m.title == r["title"], m.id
        assert m.categories == r["Log Categories"].split(","), m.id
        assert m.message == r["Log Message"], m.id
        assert m.severity == r["Default Log Severity"], m.id
        assert m.severity_code == SEVERITY_CODES[m.severity], m.id
        expected_params = [p.strip() for p in r["Parameters"].split(",") if p.strip()]
        assert m.parameters == expected_params, m.id


def test_the_reference_listing_an_id_twice_is_an_error():
    text = REFERENCE.read_text("utf-8").replace("[ID: 1690]", "[ID: 1691]")
    with pytest.raises(catalog.CatalogError, match="twice"):
        build(reference=text)


def test_curated_mapping_missing_an_id_is_an_error():
    curated, n = re.subn(r"\[messages\.1713\]\n(?:.+\n)*", "", CURATED.read_text("utf-8"))
    assert n == 1
    with pytest.raises(catalog.CatalogError, match=r"missing \[1713\], unknown \[\]"):
        build(curated=curated.encode())


def test_curated_mapping_with_an_unknown_id_is_an_error():
    curated = CURATED.read_bytes() + b'\n[messages.4242]\naction = "x"\ntype = ["info"]\n'
    with pytest.raises(catalog.CatalogError, match=r"unknown \[4242\]"):
        build(curated=curated)


@pytest.mark.parametrize("addition", [
    'outcom = "success"',           # typo in a message entry
    'severity = "Warning"',         # a key the mapping does not have
])
def test_curated_mapping_with_an_unknown_key_is_an_error(addition):
    curated = CURATED.read_text("utf-8").replace(
        '[messages.530]\n', f"[messages.530]\n{addition}\n"
    )
    with pytest.raises(catalog.CatalogError, match="curated mapping"):
        build(curated=curated.encode())


def test_curated_mapping_with_an_invalid_outcome_is_an_error():
    curated = CURATED.read_text("utf-8").replace(
        '[messages.530]\naction = "ike-sa-established"\ntype = ["start"]\n'
        'outcome = "success"',
        '[messages.530]\naction = "ike-sa-established"\ntype = ["start"]\n'
        'outcome = "great"',
    )
    assert 'outcome = "great"' in curated
    with pytest.raises(catalog.CatalogError):
        build(curated=curated.encode())


def test_curated_category_default_and_override(cat):
    by_id = cat.by_id()
    assert by_id[530].ecs.category == ["network", "session"]  # [defaults]
    assert by_id[737].ecs.category == ["authentication", "session"]


def test_loading_a_catalog_with_an_unknown_field_fails():
    data = json.loads((catalog.data_dir() / "ike.json").read_bytes())
    data["messages"][0]["colour"] = "blue"
    with pytest.raises(catalog.CatalogError, match="colour"):
        catalog.loads(json.dumps(data).encode())


def test_loading_a_catalog_with_an_unknown_ecs_field_fails():
    data = json.loads((catalog.data_dir() / "ike.json").read_bytes())
    data["messages"][3]["ecs"]["outcomes"] = "success"
    with pytest.raises(catalog.CatalogError):
        catalog.loads(json.dumps(data).encode())


def test_loading_a_catalog_with_a_missing_field_fails():
    data = json.loads((catalog.data_dir() / "ike.json").read_bytes())
    del data["messages"][0]["severity_code"]
    with pytest.raises(catalog.CatalogError, match="severity_code"):
        catalog.loads(json.dumps(data).encode())


def test_load_from_a_path(tmp_path):
    path = tmp_path / "cat.json"
    path.write_bytes(catalog.dumps(build()))
    loaded = catalog.load(str(path))
    assert {m.id for m in loaded.messages} == IKE_IDS


def test_dumps_is_stable_indented_json():
    data = catalog.dumps(build())
    assert data.endswith(b"}\n")
    assert data.startswith(b'{\n  "chapter": "2.23",')
    assert msgspec.json.decode(data)["messages"][0]["id"] == 1694  # reference order


# -- the command --------------------------------------------------------------------------------


def test_cli_catalog_show_530(capsys):
    assert cli.main(["catalog", "show", "530"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[ID: 530] Successfully established IKE SA.   (section 2.23.13)"
    rows = {line[2:22].strip(): line[22:] for line in out[1:] if line.startswith("  ")}
    assert rows == {
        "Categories": "IKE, IPSEC",
        "Severity": "Notice (5)",
        "Parameters": "localip, localport, remoteip, remoteport, localid, remoteid, "
        "localikespi, remoteikespi, initiator, algorithms, rekeytime, reauthtime, ikeversion, "
        "iface, recviface",
        "Explanation": "An IKE SA was successfully established between the two endpoints.",
        "Gateway action": "None",
        "Action description": "None",
        "Proposed action": "None",
        "event.action": "ike-sa-established",
        "event.category": "network, session",
        "event.type": "start",
        "event.outcome": "success",
    }


def test_cli_catalog_show_empty_parameters_and_no_outcome(capsys):
    assert cli.main(["catalog", "show", "813"]) == 0
    out = capsys.readouterr().out
    assert "  Parameters          (none)\n" in out
    assert "  event.outcome       (none)\n" in out


def test_cli_catalog_show_all(capsys):
    assert cli.main(["catalog", "show"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2.23 IKE: 28 messages (from cos-stream-log-reference-ike.txt)"
    assert out[1] == ""
    rows = out[2:]
    assert len(rows) == 28
    ids = [int(row.split()[0]) for row in rows]
    assert ids == sorted(IKE_IDS)
    row_770 = rows[ids.index(770)].split(None, 3)
    assert row_770 == [
        "770", "Alert", "ike-watchdog-restart",
        "IKE thread watchdog triggered. Was not able to process jobs for 30s. "
        "IKE daemon will be restarted.",
    ]


def test_cli_catalog_show_unknown_id(capsys):
    assert cli.main(["catalog", "show", "530", "9999"]) == 2
    captured = capsys.readouterr()
    assert "no message with ID 9999" in captured.err
    assert captured.out == ""


def test_cli_catalog_show_json(capsys):
    assert cli.main(["catalog", "show", "--json", "1690", "1691"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["id"], e["parameters"]) for e in entries] == [
        (1690, ["ip", "name"]), (1691, ["ip", "iface"]),
    ]


def test_cli_catalog_build_writes_the_shipped_bytes(tmp_path):
    out = tmp_path / "ike.json"
    assert cli.main(["catalog", "build", str(REFERENCE), "-o", str(out)]) == 0
    assert out.read_bytes() == (catalog.data_dir() / "ike.json").read_bytes()
