"""The tunnels plugin against the ground truth of a generated day, and its edges: lines out
of order, bounded state, the snapshot, redaction of what it makes."""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime, timezone

import msgspec
import pytest
from test_ecs_fields import ALLOWED, ECS_TYPES, EXPECTED_TYPES, flatten, type_problem

from ikefilter import app, catalog
from ikefilter.config import ConfigError, loads
from ikefilter.generate.sessions import Truth, day
from ikefilter.host.derived import RULE_NOT_WRITTEN
from ikefilter.identity import user_fields
from ikefilter.plugins.tunnel_state import NS, TAG_FLAPPING, TAG_OUT_OF_ORDER, tunnel_id

TABLE = "[plugins.tunnels]\nflap_count = 3\nflap_window = 600\n"
LIFECYCLE = {"530", "616", "590", "803", "155", "628", "183"}


def pipeline(config_text: str = TABLE, write: bool = True, **kw):
    return app.build_pipeline(loads(config_text), entry_points=False, write_derived=write, **kw)


def run(p, lines: list[str], batch: int = 300) -> list[dict]:
    docs = []
    for i in range(0, len(lines), batch):
        for out in p.process_lines(lines[i:i + batch]):
            if out is not None:
                docs.append(json.loads(msgspec.json.encode(out)))
    return docs


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def tracker(p):
    return p.site.pm.get_plugin("tunnels").tracker


@pytest.fixture(scope="module")
def generated() -> tuple[list[str], Truth]:
    lines, truth = day(catalog.load(), peers=160, seed=7)
    return list(lines), truth


@pytest.fixture(scope="module")
def reported(generated):
    lines, _ = generated
    p = pipeline()
    docs = run(p, lines)
    return p, docs


def summaries(docs: list[dict]) -> dict[str, dict]:
    out = {}
    for d in docs:
        if d["event"].get("action") == "tunnel-summary":
            tid = d["clavister"]["tunnel"]["id"]
            assert tid not in out, f"two summaries of tunnel {tid}"
            out[tid] = d
    return out


def alerts(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["event"].get("action") == "tunnel-flapping"]


# -- the generated day against its truth ------------------------------------------------------


def test_the_day_is_a_real_test(generated):
    _, truth = generated
    reasons = {t.close_reason for t in truth.tunnels}
    assert {"deleted", "peer-dead", "idle", "open"} <= reasons
    assert any(t.partial for t in truth.tunnels) and any(t.late_start for t in truth.tunnels)
    assert sum(t.rekeys for t in truth.tunnels) > 100 and truth.stray_deletes > 0
    assert truth.flapping and truth.near_miss and truth.lost_lines > 0
    assert any(t.pool_address for t in truth.tunnels)


def test_derived_events_write_times_in_the_one_form(reported):
    _, docs = reported
    derived = [d for d in docs if d["event"]["kind"] in ("state", "alert")]
    assert derived
    for d in derived:
        for when in (d["@timestamp"], d["event"].get("start"), d["event"].get("end")):
            assert when is None or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", when)


def test_every_closed_tunnel_is_summed_up_as_the_truth_says(generated, reported):
    _, truth = generated
    _, docs = reported
    made = summaries(docs)
    closed = [t for t in truth.tunnels if t.close_reason != "open"]
    assert len(made) == len(closed)
    for t in closed:
        tid = tunnel_id(t.first_spis)
        assert tid in made, f"no summary of {t.kind} tunnel {t.first_spis} ({t.close_reason})"
        s = made[tid]
        what = (t.kind, t.first_spis, t.close_reason)
        tun = s["clavister"]["tunnel"]
        assert tun["close_reason"] == t.close_reason, what
        assert s["event"]["start"] == iso(t.start), what
        assert s["event"]["end"] == iso(t.end) == s["@timestamp"], what
        assert s["event"]["duration"] == (t.end - t.start) * NS, what
        assert (tun["rekeys"], tun["ipsec_sas"], tun["ipsec_rekeys"]) == \
            (t.rekeys, t.ipsec_sas, t.ipsec_rekeys), what
        assert tun.get("partial", False) == t.partial, what
        ike = s["clavister"]["ike"]
        assert f"{ike['local_spi']}:{ike['remote_spi']}" == t.last_spis, what
        assert set(s["related"]["ip"]) >= {t.peer.local_ip, t.peer.remote_ip}, what
        assert t.peer.remote_id in s["related"]["user"], what
        if t.pool_address:
            assert s["clavister"]["ip_pool"]["address"] == t.pool_address, what
        if t.user:
            assert user_fields(t.user, always=True) == tuple(
                s["user"].get(k) for k in ("name", "email", "domain")), what


def test_open_tunnels_are_held_as_the_truth_says(generated, reported):
    _, truth = generated
    p, _ = reported
    held = tracker(p).tunnels
    still_open = [t for t in truth.tunnels if t.close_reason == "open"]
    assert len(held) == len(still_open)
    for t in still_open:
        tun = held[tunnel_id(t.first_spis)]
        assert (tun.start // NS, tun.rekeys, tun.ipsec_sas, tun.partial) == \
            (t.start, t.rekeys, t.ipsec_sas, t.partial)
        assert tun.ike == t.last_spis


def test_exactly_the_flapping_peers_are_alerted_once_each(generated, reported):
    _, truth = generated
    _, docs = reported
    alerted = [(frozenset(a["related"]["ip"]), a["clavister"]["ike"]["remote_id"])
               for a in alerts(docs)]
    expected = [(frozenset({p.local_ip, p.remote_ip}), p.remote_id) for p in truth.flapping]
    assert sorted(alerted, key=str) == sorted(expected, key=str)
    for a in alerts(docs):
        assert a["event"]["kind"] == "alert" and a["clavister"]["tunnel"]["flaps"] == 3
        assert a["event"]["duration"] <= truth.flap_window * NS
    # the flapping peers' events after the alert are tagged, and no one else's
    flaky = {p.remote_id for p in truth.flapping}
    tagged = {d["clavister"].get("ike", {}).get("remote_id") for d in docs
              if TAG_FLAPPING in d.get("tags", ()) and d["event"].get("code") in ("530", "590")}
    assert tagged and tagged <= flaky


def test_every_lifecycle_event_is_written_and_annotated(generated, reported):
    lines, truth = generated
    p, docs = reported
    events = [d for d in docs if d["event"].get("code") in LIFECYCLE]
    assert len(events) == sum(1 for d in docs if d["event"]["kind"] == "event"
                              and d["event"].get("code") in LIFECYCLE)
    s = p.stats
    assert s.in_ == len(lines) and s.in_ + s.derived == s.out + s.dropped + s.quarantined
    assert s.derived == len(summaries(docs)) + len(alerts(docs))
    unnamed = [d for d in events if "id" not in d["clavister"]["tunnel"]]
    # only the deletes of SAs never seen up have no tunnel to name
    assert len(unnamed) == truth.stray_deletes
    assert all(d["event"]["code"] == "590" and d["clavister"]["tunnel"]["out_of_order"]
               for d in unnamed)
    late = [t for t in truth.tunnels if t.late_start]
    flagged = {d["clavister"]["tunnel"]["id"] for d in events if d["event"]["code"] == "530"
               and TAG_OUT_OF_ORDER in d["tags"]}
    assert {tunnel_id(t.first_spis) for t in late} <= flagged
    closing = [d for d in events if d["event"]["code"] in ("590", "803")
               and d["clavister"]["tunnel"].get("id")]
    assert closing and all(d["event"]["duration"] >= 0 for d in closing)


def test_what_it_makes_is_ecs(reported):
    _, docs = reported
    made = [d for d in docs if d["event"]["dataset"] == "clavister.tunnel"]
    assert {d["event"]["kind"] for d in made} == {"state", "alert"}
    for d in made:
        ev = d["event"]
        assert ev["kind"] in ALLOWED["allowed_values"]["event.kind"]
        for t in ev["type"]:
            assert any(t in EXPECTED_TYPES[c] for c in ev["category"]), ev
        for name, value in flatten(d).items():
            if not name.startswith("clavister."):
                assert name in ECS_TYPES, name
                assert type_problem(ECS_TYPES[name], value) is None, (name, value)


def test_redaction_covers_what_it_makes(generated, monkeypatch):
    lines, truth = generated
    monkeypatch.setenv("IKEFILTER_REDACT_KEY", "a test key of no value")
    p = pipeline(TABLE + '[redact]\nip = "hmac"\nidentity = "hmac"\n')
    docs = run(p, lines)
    text = json.dumps(docs)
    secrets = {v for t in truth.tunnels for v in (t.peer.remote_ip, t.peer.remote_id,
                                                   t.pool_address, t.user) if v}
    secrets |= {"vpn.example.com"}
    assert [v for v in secrets if v in text] == []
    # joined on the real values all the same
    assert len(summaries(docs)) == sum(1 for t in truth.tunnels if t.close_reason != "open")
    assert len(alerts(docs)) == len(truth.flapping)


def test_a_restart_with_the_snapshot_reports_as_one_run(generated, tmp_path):
    lines, _ = generated
    whole = summaries(run(pipeline(), lines))
    config = TABLE + f'snapshot = "{tmp_path / "tunnels.json"}"\n'
    half = len(lines) // 2
    first = pipeline(config)
    docs = run(first, lines[:half])
    first.site.runner.close()
    assert os.stat(tmp_path / "tunnels.json").st_mode & 0o077 == 0
    docs += run(pipeline(config), lines[half:])
    assert summaries(docs) == whole


def test_a_corrupt_snapshot_is_ignored_with_a_warning(tmp_path, caplog):
    path = tmp_path / "tunnels.json"
    path.write_text('{"version": 1, "tunnels": [')
    with caplog.at_level(logging.WARNING, logger="ikefilter"):
        p = pipeline(TABLE + f'snapshot = "{path}"\n')
    assert "tunnel snapshot" in caplog.text and "ignored" in caplog.text
    assert len(tracker(p).tunnels) == 0


# -- the edges, line by line ------------------------------------------------------------------

H = "<134>[2026-11-26 {}] EFW: IKE: prio=2 "
PEER = ("localip=203.0.113.1 localport=500 remoteip=81.2.3.4 remoteport=500 localid=fw "
        "remoteid=peer initiator=false rekeytime=3600")


def ike(time: str, code: int, spis: str, old: str = "") -> str:
    local, remote = spis.split(":")
    line = f"{H.format(time)}id={code} {PEER} localikespi={local} remoteikespi={remote}"
    if old:
        line += f" oldlocalikespi={old.split(':')[0]} oldremoteikespi={old.split(':')[1]}"
    return line


def test_a_rekey_before_its_establishment_joins_it_when_it_comes():
    p = pipeline()
    docs = run(p, [ike("10:30:00", 616, "a2:b2", "a1:b1"), ike("10:00:00", 530, "a1:b1"),
                   ike("11:00:00", 590, "a2:b2")])
    rekey, establish, delete, summary = docs
    assert rekey["clavister"]["tunnel"]["out_of_order"] and establish["clavister"]["tunnel"][
        "out_of_order"]
    assert rekey["clavister"]["tunnel"]["id"] == delete["clavister"]["tunnel"]["id"] == \
        tunnel_id("a1:b1")
    assert summary["event"]["start"] == "2026-11-26T10:00:00.000Z"
    assert summary["event"]["duration"] == 3600 * NS
    assert summary["clavister"]["tunnel"]["rekeys"] == 1
    assert "partial" not in summary["clavister"]["tunnel"]


def test_a_tunnel_seen_from_its_middle_is_partial():
    p = pipeline()
    docs = run(p, [ike("10:30:00", 616, "a2:b2", "a1:b1"), ike("11:00:00", 590, "a2:b2")])
    summary = docs[-1]
    assert summary["clavister"]["tunnel"]["partial"] is True
    assert summary["event"]["start"] == "2026-11-26T10:30:00.000Z"
    assert "at least" in summary["message"]


def test_a_delete_of_an_unknown_sa_is_annotated_never_dropped():
    p = pipeline()
    docs = run(p, [ike("10:00:00", 590, "ff:ee")])
    assert len(docs) == 1 and p.stats.out == 1
    assert docs[0]["clavister"]["tunnel"] == {"state": "closed", "out_of_order": True}
    assert TAG_OUT_OF_ORDER in docs[0]["tags"]


def test_the_oldest_tunnel_is_evicted_and_counted():
    p = pipeline(TABLE + "max_tunnels = 2\n")
    docs = run(p, [ike("10:00:00", 530, "a:1"), ike("10:00:01", 530, "b:1"),
                   ike("10:00:02", 616, "a:2", "a:1"), ike("10:00:03", 530, "c:1")])
    [summary] = summaries(docs).values()
    assert summary["clavister"]["tunnel"]["id"] == tunnel_id("b:1")
    assert summary["clavister"]["tunnel"]["close_reason"] == "evicted"
    assert tracker(p).counts.tunnels_evicted == 1 and len(tracker(p).tunnels) == 2


def test_a_silent_tunnel_closes_idle_at_its_last_event():
    p = pipeline(TABLE + "idle_ttl = 600\n")
    docs = run(p, [ike("10:00:00", 530, "a:1"), ike("10:05:00", 161, "a:1"),
                   ike("12:00:00", 530, "b:1")])
    [summary] = summaries(docs).values()
    assert summary["clavister"]["tunnel"]["close_reason"] == "idle"
    assert summary["event"]["end"] == "2026-11-26T10:05:00.000Z"


def test_without_the_table_nothing_is_annotated():
    p = pipeline("")
    docs = run(p, [ike("10:00:00", 530, "a:1"), ike("10:05:00", 590, "a:1")])
    assert len(docs) == 2 and all("tunnel" not in d["clavister"] for d in docs)


def test_a_typo_in_the_table_stops_start_up():
    with pytest.raises(ConfigError, match=r"plugins\.tunnels\.flap_cuont: unknown key"):
        pipeline("[plugins.tunnels]\nflap_cuont = 3\n")


def test_where_no_stream_is_written_the_summaries_are_counted_not_written():
    p = pipeline(write=False)
    docs = run(p, [ike("10:00:00", 530, "a:1"), ike("10:05:00", 590, "a:1")])
    assert len(docs) == 2
    s = p.stats
    assert s.derived == 1 and s.dropped_by_rule == {RULE_NOT_WRITTEN: 1}
    assert s.in_ + s.derived == s.out + s.dropped + s.quarantined


def test_a_severity_rule_grades_what_it_makes():
    p = pipeline(TABLE + '[[severity.rule]]\naction = "tunnel-summary"\nseverity = "notice"\n')
    docs = run(p, [ike("10:00:00", 530, "a:1"), ike("10:05:00", 590, "a:1")])
    assert docs[-1]["event"]["severity"] == 5 and docs[-1]["log"]["level"] == "notice"


def test_the_generator_command_writes_the_day_and_its_truth(tmp_path, capsys):
    from ikefilter import cli

    assert cli.main(["generate", "--sessions", "20", "--truth", str(tmp_path / "t.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    truth = msgspec.json.decode((tmp_path / "t.json").read_bytes(), type=Truth)
    assert truth.lines == len(lines) > 100 and truth.tunnels



def test_flapping_state_is_held_only_within_the_window():
    """Peers that flapped once and moved on (road warriors change address) are forgotten
    once their window is over: the state stays bounded however many there were."""
    from ikefilter.plugins.tunnel_flapping import Flaps

    flaps = Flaps(count=2, window=10 * NS, max_peers=100_000)
    first = ("10.0.0.1", "10.1.0.0", "")
    for i in range(10_000):
        t = i * 60 * NS
        peer = ("10.0.0.1", f"10.1.{i // 256}.{i % 256}", "")
        assert flaps.down(peer, t) is None
        assert flaps.down(peer, t + NS) == [t, t + NS]  # the second down: an alert
        assert flaps.flapping(peer, t + 5 * NS)
    assert len(flaps.peers) == 1  # each earlier peer left the window
    assert not flaps.flapping(first, 60 * NS)


def test_a_firewall_named_by_its_address_is_named_so_in_what_the_plugin_makes(generated):
    lines, _ = generated
    by_address = [line.replace("fw-hq-01", "192.0.2.9") for line in lines[:3000]]
    assert by_address != lines[:3000]
    docs = run(pipeline(), by_address)
    derived = [d for d in docs if d["event"]["kind"] in ("state", "alert")]
    assert derived
    assert not [d for d in docs if "hostname" in d.get("observer", {})]
    named = [d for d in derived if d["observer"].get("ip") == ["192.0.2.9"]]
    assert len(named) > len(derived) / 2
