"""The normalizer against the output contract: classification, severity, roles, types."""

from __future__ import annotations

import json

import msgspec
import pytest
from conftest import reference_entries

from ikefilter import catalog, ecs, wire
from ikefilter.normalize import Normalizer
from ikefilter.pipeline import Pipeline

NET_SESSION = ["network", "session"]
NET = ["network"]

# The output contract, per message: ID -> (event.action, event.category, event.type, event.outcome).
# None for the outcome: the row says "none", and no event.outcome is written.
SCHEMA = {
    530: ("ike-sa-established", NET_SESSION, ["start"], "success"),
    419: ("ike-sa-failed", NET, ["connection", "start"], "failure"),
    642: ("ike-negotiation-failed", NET, ["connection", "start"], "failure"),
    590: ("ike-sa-deleted", NET_SESSION, ["end"], "success"),
    616: ("ike-sa-rekeyed", NET_SESSION, ["info"], "success"),
    161: ("ike-sa-rekey-failed", NET_SESSION, ["info"], "failure"),
    155: ("ipsec-sa-created", NET_SESSION, ["start"], "success"),
    556: ("ipsec-sa-failed", NET, ["connection", "start"], "failure"),
    183: ("ipsec-sa-deleted", NET_SESSION, ["end"], "success"),
    628: ("ipsec-sa-rekeyed", NET_SESSION, ["info"], "success"),
    172: ("ipsec-sa-rekey-failed", NET_SESSION, ["info"], "failure"),
    803: ("ike-peer-dead", NET_SESSION, ["end"], "failure"),
    1059: ("ike-peer-too-aggressive", NET, ["connection", "denied"], "failure"),
    1060: ("ike-job-limit-exceeded", NET, ["connection", "denied"], "failure"),
    1061: ("ike-half-open-limit-exceeded", NET, ["connection", "denied"], "failure"),
    737: ("user-logged-out", ["authentication", "session"], ["end"], "success"),
    1693: ("ip-pool-address-requested", NET, ["info"], None),
    1694: ("ip-pool-address-acquired", NET, ["info"], "success"),
    1690: ("ip-pool-address-released", NET, ["info"], "success"),
    1691: ("ip-pool-address-released", NET, ["info"], "success"),
    1692: ("ip-pool-address-request-failed", NET, ["info"], "failure"),
    1695: ("ip-pool-not-found", NET, ["info"], "failure"),
    1713: ("ip-pool-release-failed", NET, ["info"], "failure"),
    1700: ("ike-auto-establish-failed", NET, ["start"], "failure"),
    813: ("ike-sa-license-limit-warning", NET, ["info"], None),
    1655: ("ike-dynamic-rules-failed", ["configuration"], ["change"], "failure"),
    1664: ("ike-rule-reinsert-failed", ["configuration"], ["creation"], "failure"),
    770: ("ike-watchdog-restart", ["process"], ["end", "start"], "failure"),
}

# Severity: code -> log.level.
LEVEL = [
    "emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug"]
# The reference's default severity names -> code (the catalog default, by message).
DEFAULT_SEVERITY = {
    "Emergency": 0, "Alert": 1, "Critical": 2, "Error": 3, "Warning": 4, "Notice": 5,
    "Information": 6, "Debug": 7,
}

NOW = "2026-11-26T12:00:00.000Z"


def run(line: str, **options) -> dict:
    (out,) = Pipeline(**options).process_lines([line])
    return json.loads(msgspec.json.encode(out))


def ike(body: str, header: str = "<134>[2026-11-26 10:00:00] EFW: IKE: ") -> dict:
    return run(header + body)


def test_schema_table_covers_the_catalog(cat):
    assert set(SCHEMA) == {m.id for m in cat.messages}


@pytest.mark.parametrize("ident", sorted(SCHEMA))
def test_every_message_classified_per_schema(ident):
    action, category, types, outcome = SCHEMA[ident]
    out = ike(f"prio=2 id={ident} rev=1")
    ev = out["event"]
    assert ev["code"] == str(ident)
    assert ev["action"] == action
    assert ev["category"] == category
    assert ev["type"] == types
    if outcome is None:
        assert "outcome" not in ev
    else:
        assert ev["outcome"] == outcome
    assert ev["kind"] == "event"
    assert ev["module"] == "clavister"
    assert ev["dataset"] == "clavister.log"
    assert out["message"] == reference_entries()[ident]["Log Message"]
    assert out["tags"] == ["clavister", "ike"]
    assert "error" not in out


def test_message_texts_literally():
    assert ike("id=530")["message"] == "Successfully established IKE SA."
    assert ike("id=770")["message"] == (
        "IKE thread watchdog triggered. Was not able to process jobs for 30s. "
        "IKE daemon will be restarted."
    )
    assert ike("id=1700")["message"] == "Failed to schedule auto-establishment of IPsec tunnels."


def test_fixed_fields():
    out = ike("prio=2 id=530 rev=1 event=ike_sa_established")
    assert out["observer"] == {"vendor": "Clavister", "product": "cOS Stream", "type": "firewall"}
    assert out["ecs"] == {"version": "9.5.0"}
    assert out["event"]["original"] == (
        "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 event=ike_sa_established"
    )
    assert out["@timestamp"] == "2026-11-26T10:00:00.000Z"
    assert out["data_stream"] == {
        "type": "logs", "dataset": "clavister.log", "namespace": "default"}
    assert out["clavister"]["categories"] == ["IKE"]
    assert out["clavister"]["rev"] == "1"
    assert out["clavister"]["event"] == "ike_sa_established"
    assert out["clavister"]["prio"] == 2


def test_categories_from_the_catalog_when_the_line_has_none():
    out = run(json.dumps({"id": "1655", "prio": "2"}))
    assert out["clavister"]["categories"] == ["IKE", "RULE"]


def test_observer_hostname_from_header():
    out = run("<134>Nov 26 10:00:00 fw-hq-01 EFW: IKE: prio=2 id=530")
    assert out["observer"]["hostname"] == "fw-hq-01"


def test_keep_original_off():
    out = run("<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530", keep_original=False)
    assert "original" not in out["event"]


# -- severity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prio", range(8))
def test_prio_runs_reversed(prio):
    out = ike(f"prio={prio} id=530")
    assert out["event"]["severity"] == 7 - prio
    assert out["log"]["level"] == LEVEL[7 - prio]


@pytest.mark.parametrize("prio", range(8))
def test_syslog_dialect_takes_prio_as_is(prio):
    out = run(f"<134>[2026-11-26 10:00:00] EFW: IKE: prio={prio} id=530",
              severity_dialect="syslog")
    assert out["event"]["severity"] == prio
    assert out["log"]["level"] == LEVEL[prio]


@pytest.mark.parametrize("pri, severity", [(134, 6), (131, 3), (128, 0), (135, 7), (13, 5)])
def test_without_prio_the_pri_header(pri, severity):
    out = ike("id=530", header=f"<{pri}>[2026-11-26 10:00:00] EFW: IKE: ")
    assert out["event"]["severity"] == severity
    assert out["log"]["level"] == LEVEL[severity]


def test_prio_wins_over_pri():
    out = ike("prio=4 id=530", header="<134>[2026-11-26 10:00:00] EFW: IKE: ")
    assert out["event"]["severity"] == 3
    assert out["log"]["level"] == "error"
    assert out["log"]["syslog"]["severity"] == {"code": 6, "name": "informational"}


@pytest.mark.parametrize("ident", sorted(SCHEMA))
def test_without_either_the_catalog_default(ident):
    out = ike(f"id={ident}", header="[2026-11-26 10:00:00] EFW: IKE: ")
    expected = DEFAULT_SEVERITY[reference_entries()[ident]["Default Log Severity"]]
    assert out["event"]["severity"] == expected
    assert out["log"] == {"level": LEVEL[expected]}


def test_catalog_default_literally():
    bare = "[2026-11-26 10:00:00] EFW: IKE: "
    assert ike("id=770", header=bare)["event"]["severity"] == 1       # Alert
    assert ike("id=1655", header=bare)["event"]["severity"] == 2      # Critical
    assert ike("id=1713", header=bare)["event"]["severity"] == 3      # Error
    assert ike("id=813", header=bare)["event"]["severity"] == 4       # Warning
    assert ike("id=530", header=bare)["event"]["severity"] == 5       # Notice
    assert ike("id=1694", header=bare)["log"]["level"] == "informational"


def test_log_syslog_only_with_pri():
    out = ike("prio=2 id=530", header="<134>[2026-11-26 10:00:00] EFW: IKE: ")
    assert out["log"]["syslog"] == {
        "priority": 134,
        "facility": {"code": 16, "name": "local0"},
        "severity": {"code": 6, "name": "informational"},
    }
    out = ike("prio=2 id=530", header="<1>1 2026-11-26T10:00:00Z h EFW - - - IKE: ")
    assert out["log"]["syslog"] == {
        "priority": 1, "facility": {"code": 0, "name": "kern"},
        "severity": {"code": 1, "name": "alert"},
    }
    out = ike("prio=2 id=530", header="[2026-11-26 10:00:00] EFW: IKE: ")
    assert "syslog" not in out["log"]


def test_prio_out_of_range_is_invalid_and_falls_back():
    out = ike("prio=9 id=530", header="<131>[2026-11-26 10:00:00] EFW: IKE: ")
    assert out["event"]["severity"] == 3  # the PRI
    assert ecs.TAG_INVALID_VALUE in out["tags"]
    assert out["clavister"]["extra"] == {"prio": "9"}
    assert "prio" in out["error"]["message"]


# -- who is source ----------------------------------------------------------------------------

ENDPOINTS = "localip=203.0.113.1 localport=500 remoteip=198.51.100.7 remoteport=4500"
LOCAL = {"ip": "203.0.113.1", "port": 500}
REMOTE = {"ip": "198.51.100.7", "port": 4500}


@pytest.mark.parametrize("initiator", ["true", "TRUE", "True", "yes", "YES", "Yes", "1"])
def test_initiator_true_source_is_local(initiator):
    out = ike(f"prio=2 id=530 {ENDPOINTS} initiator={initiator}")
    assert out["source"] == LOCAL
    assert out["destination"] == REMOTE
    assert out["clavister"]["ike"]["initiator"] is True


@pytest.mark.parametrize("initiator", ["false", "FALSE", "False", "no", "NO", "No", "0"])
def test_initiator_false_source_is_remote(initiator):
    out = ike(f"prio=2 id=530 {ENDPOINTS} initiator={initiator}")
    assert out["source"] == REMOTE
    assert out["destination"] == LOCAL
    assert out["clavister"]["ike"]["initiator"] is False


def test_no_initiator_source_is_remote():
    out = ike(f"prio=2 id=530 {ENDPOINTS}")
    assert out["source"] == REMOTE
    assert out["destination"] == LOCAL
    assert "ike" not in out["clavister"]


def test_1664_srcip_destip_map_directly():
    out = ike("prio=3 id=1664 srcip=198.51.100.7 srcport=4500 destip=203.0.113.1 destport=500")
    assert out["source"] == {"ip": "198.51.100.7", "port": 4500}
    assert out["destination"] == {"ip": "203.0.113.1", "port": 500}
    assert out["related"]["ip"] == ["198.51.100.7", "203.0.113.1"]


def test_ipsec_event_without_ports():
    out = ike("prio=2 id=155 localip=203.0.113.1 remoteip=198.51.100.7 initiator=true")
    assert out["source"] == {"ip": "203.0.113.1"}
    assert out["destination"] == {"ip": "198.51.100.7"}


def test_one_side_invalid_leaves_no_empty_endpoint():
    out = ike("prio=2 id=1059 localip=nope remoteip=198.51.100.7 max=5")
    assert out["source"] == {"ip": "198.51.100.7"}
    assert "destination" not in out
    assert out["network"]["transport"] == "udp"


# -- network ----------------------------------------------------------------------------------


def test_network_for_ike_events():
    out = ike(f"prio=2 id=530 {ENDPOINTS}")
    assert out["network"] == {"transport": "udp", "protocol": "ike", "type": "ipv4"}
    out = ike("prio=2 id=803 localip=2001:db8::1 remoteip=2001:db8::2 localport=500")
    assert out["network"] == {"transport": "udp", "protocol": "ike", "type": "ipv6"}


@pytest.mark.parametrize("proto, transport", [("ESP", "esp"), ("esp", "esp"), ("AH", "ah")])
def test_network_for_ipsec_sa_events(proto, transport):
    out = ike(f"prio=2 id=155 localip=203.0.113.1 remoteip=198.51.100.7 proto={proto}")
    assert out["network"] == {"transport": transport, "protocol": "ipsec", "type": "ipv4"}
    assert out["clavister"]["ipsec"]["protocol"] == transport


def test_no_network_without_endpoints():
    assert "network" not in ike("prio=2 id=770")
    assert "network" not in ike("prio=2 id=1700 reason=Timeout")


# -- related, user ----------------------------------------------------------------------------


def test_related_ip_deduplicated():
    out = ike("prio=2 id=530 localip=203.0.113.1 remoteip=203.0.113.1")
    assert out["related"]["ip"] == ["203.0.113.1"]
    out = ike("prio=2 id=530 localip=2001:DB8::1 remoteip=2001:db8:0:0::1")
    assert out["related"]["ip"] == ["2001:db8::1"]
    assert out["source"]["ip"] == out["destination"]["ip"] == "2001:db8::1"


def test_related_ip_includes_the_pool_address():
    out = ike("prio=1 id=1694 ip=10.1.2.3 iface=ipsec_tun1")
    assert out["related"]["ip"] == ["10.1.2.3"]
    assert out["clavister"]["ip_pool"] == {"address": "10.1.2.3"}
    assert out["clavister"]["iface"] == "ipsec_tun1"


def test_related_user_and_user_name():
    out = ike('prio=2 id=737 userid="alice@example.com" localikespi=00ab remoteikespi=CD01')
    assert out["user"] == {"name": "alice", "email": "alice@example.com", "domain": "example.com"}
    assert out["related"]["user"] == ["alice@example.com"]
    assert ike("prio=2 id=737 userid=alice")["user"] == {"name": "alice"}
    out = ike('prio=2 id=530 localid="CN=gw, O=Ex" remoteid=bob@example.com')
    assert out["related"]["user"] == ["CN=gw, O=Ex", "bob@example.com"]
    assert out["user"] == {"name": "bob", "email": "bob@example.com", "domain": "example.com"}
    assert out["clavister"]["ike"]["local_id"] == "CN=gw, O=Ex"
    assert out["clavister"]["ike"]["remote_id"] == "bob@example.com"
    out = ike("prio=2 id=530 localid=same remoteid=same")
    assert out["related"]["user"] == ["same"]


# -- typed values -----------------------------------------------------------------------------


def test_spis_lowercase_hex_without_0x():
    out = ike("prio=2 id=616 localikespi=0xDEADBEEF01234567 remoteikespi=0XABCDEF "
              "oldlocalikespi=00ff oldremoteikespi=A1B2")
    assert out["clavister"]["ike"] == {
        "local_spi": "deadbeef01234567", "remote_spi": "abcdef",
        "old_local_spi": "00ff", "old_remote_spi": "a1b2",
    }
    out = ike("prio=1 id=628 inboundspi=C0FFEE12 outboundspi=0x0000beef oldinboundspi=1 "
              "oldoutboundspi=ABC proto=ESP")
    assert out["clavister"]["ipsec"] == {
        "inbound_spi": "c0ffee12", "outbound_spi": "0000beef", "old_inbound_spi": "1",
        "old_outbound_spi": "abc", "protocol": "esp",
    }


def test_ints_and_strings():
    out = ike('prio=2 id=530 rekeytime=3600 reauthtime=86400 ikeversion=2 '
              'algorithms="AES-256 SHA256 DH14" iface=ipsec_tun1 recviface=wan')
    assert out["clavister"]["ike"] == {
        "rekey_time": 3600, "reauth_time": 86400, "version": 2,
        "algorithms": "AES-256 SHA256 DH14",
    }
    assert out["clavister"]["iface"] == "ipsec_tun1"
    assert out["observer"]["ingress"] == {"interface": {"name": "wan"}}
    out = ike('prio=2 id=155 lifetime=28800 localts=10.0.1.0/24 remotets=10.0.2.0/24')
    assert out["clavister"]["ipsec"] == {
        "lifetime": 28800, "local_ts": "10.0.1.0/24", "remote_ts": "10.0.2.0/24",
    }
    out = ike("prio=1 id=1695 name=vpn_pool count=12 iface=wan")
    assert out["clavister"]["ip_pool"] == {"name": "vpn_pool", "count": 12}
    out = ike(f"prio=2 id=1060 {ENDPOINTS} max=64")
    assert out["clavister"]["limit"] == {"max": 64}


def test_reason():
    out = ike('prio=3 id=419 reason="No proposal chosen"')
    assert out["event"]["reason"] == "No proposal chosen"
    assert out["event"]["outcome"] == "failure"


def test_empty_values_are_left_out():
    out = ike('prio=2 id=530 localip= localid="" reason="" rekeytime=')
    assert "source" not in out and "destination" not in out
    assert "related" not in out
    assert "ike" not in out["clavister"]
    assert "extra" not in out["clavister"]
    assert out["tags"] == ["clavister", "ike"]


# -- index safety -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw, port", [("500", 500), ("5e2", 500), ("500.0", 500), ("0", 0),
                                       ("-0", 0)])
def test_integers_are_read_in_json_number_syntax(raw, port):
    # Both paths read integers as msgspec does, so the fast path never differs.
    out = ike(f"prio=2 id=530 localport={raw} remoteip=198.51.100.7")
    assert out["destination"]["port"] == port
    assert "extra" not in out["clavister"]


@pytest.mark.parametrize("param, raw, gone", [
    ("localip", "not-an-ip", ("destination", "ip")),
    ("localip", "1.2.3.999", ("destination", "ip")),
    ("localip", "fe80::1%eth0", ("destination", "ip")),
    ("localport", "70000", ("destination", "port")),
    ("localport", "-1", ("destination", "port")),
    ("localport", "0500", ("destination", "port")),
    ("localport", "+500", ("destination", "port")),
    ("localport", "5.5", ("destination", "port")),
    ("localport", "http", ("destination", "port")),
    ("localikespi", "xyz", ("clavister", "ike", "local_spi")),
    ("localikespi", "0x", ("clavister", "ike", "local_spi")),
    ("initiator", "maybe", ("clavister", "ike", "initiator")),
    ("rekeytime", "1h", ("clavister", "ike", "rekey_time")),
    ("ikeversion", "two", ("clavister", "ike", "version")),
])
def test_invalid_value_kept_raw_and_tagged(param, raw, gone):
    out = ike(f"prio=2 id=530 {param}={raw} remoteip=198.51.100.7 localid=gw")
    node = out
    for key in gone[:-1]:
        node = node.get(key, {})
    assert gone[-1] not in node
    assert out["clavister"]["extra"] == {param: raw}
    assert ecs.TAG_INVALID_VALUE in out["tags"]
    assert out["error"]["message"].startswith(f"{param}: ")
    assert out["source"] == {"ip": "198.51.100.7"}  # the rest of the event is intact
    assert out["event"]["action"] == "ike-sa-established"


def test_several_invalid_values_all_named():
    out = ike("prio=2 id=556 localip=x inboundspi=QQ lifetime=-5 remoteip=198.51.100.7")
    assert out["clavister"]["extra"] == {"localip": "x", "inboundspi": "QQ", "lifetime": "-5"}
    for name in ("localip", "inboundspi", "lifetime"):
        assert name in out["error"]["message"]
    assert out["tags"].count(ecs.TAG_INVALID_VALUE) == 1


def test_invalid_pool_address():
    out = ike("prio=1 id=1693 ip=10.0.0.300 iface=wan")
    assert out["clavister"]["extra"] == {"ip": "10.0.0.300"}
    assert "related" not in out
    assert "ip_pool" not in out["clavister"]


def test_unknown_id():
    out = ike("prio=2 id=4242 rev=1 event=new_thing localip=203.0.113.1 foo=bar")
    assert out["event"]["code"] == "4242"
    assert ecs.TAG_UNKNOWN_MESSAGE in out["tags"]
    for field in ("action", "category", "type", "outcome"):
        assert field not in out["event"]
    assert "message" not in out
    assert "source" not in out and "destination" not in out and "related" not in out
    assert out["clavister"]["extra"] == {"localip": "203.0.113.1", "foo": "bar"}
    assert out["clavister"]["event"] == "new_thing"
    assert out["event"]["severity"] == 5  # prio still applies


def test_unknown_parameter_on_a_known_message():
    out = ike("prio=2 id=530 localip=203.0.113.1 vendorthing=42 other=\"a b\"")
    assert out["clavister"]["extra"] == {"vendorthing": "42", "other": "a b"}
    assert out["tags"] == ["clavister", "ike"]
    assert out["destination"] == {"ip": "203.0.113.1"}


def test_non_numeric_id_is_a_parse_failure():
    out = ike("prio=2 id=abc localip=203.0.113.1")
    assert ecs.TAG_PARSE_FAILURE in out["tags"]
    assert out["clavister"]["extra"]["id"] == "abc"
    assert "abc" in out["error"]["message"]
    assert "code" not in out["event"]


def test_missing_id_is_a_parse_failure():
    out = ike("prio=2 event=something localip=203.0.113.1")
    assert ecs.TAG_PARSE_FAILURE in out["tags"]
    assert out["error"]["message"] == "no id= in the line"
    assert out["clavister"]["extra"] == {"localip": "203.0.113.1"}


@pytest.mark.parametrize("initiator", ["true", "false", None])
def test_endpoints_by_role_find_the_remote_peer(initiator):
    """Whichever side the role rule makes the remote peer, endpoints("remote") finds it, and
    endpoints("local") this firewall's end."""
    line = "prio=2 id=530 localip=203.0.113.1 remoteip=81.2.3.4"
    if initiator is not None:
        line += f" initiator={initiator}"
    event = Normalizer(catalog.load()).normalize(wire.decode_line(line), "2026-11-26T10:00:00Z")
    [peer] = event.endpoints("remote")
    assert peer.ip == "81.2.3.4"
    [local] = event.endpoints("local")
    assert local.ip == "203.0.113.1"
    assert [e.ip for e in event.endpoints("both")] == [event.source.ip, event.destination.ip]
    with pytest.raises(ValueError):
        event.endpoints("sideways")


# -- users, direction, observer, ingestion ----------------------------------------------------

@pytest.mark.parametrize(("local", "remote", "user"), [
    ("gw.example.net", "CORP\\\\bob", {"name": "bob", "domain": "CORP"}),
    ("CORP\\\\bob", "gw.example.net", {"name": "bob", "domain": "CORP"}),
    ("a@x.example", "b@Y.Example", {"name": "b", "email": "b@Y.Example", "domain": "y.example"}),
    ("203.0.113.2", "gw.example.net", None),
    ("CN=vpn, E=bob@x.example", "@@", None),
    ("bob@localhost", "x\\\\", None),
])
def test_identities_that_name_users(local, remote, user):
    out = ike(f'prio=2 id=530 localid="{local}" remoteid="{remote}"')
    assert out.get("user") == user


def test_identities_as_users_can_be_turned_off():
    from ikefilter.shaping import EcsTable, Shaping

    line = "<134>EFW: IKE: prio=2 id=530 localid=a@x.example remoteid=b@x.example"
    off = Shaping(ecs_table=EcsTable(identity_users=False))
    assert "user" not in run(line, shaping=off)
    assert run(line.replace("id=530", "id=737 userid=c@x.example"),
               shaping=off)["user"]["email"] == "c@x.example"


@pytest.mark.parametrize(("initiator", "direction"), [
    ("true", "outbound"), ("no", "inbound"), (None, None), ("maybe", None)])
def test_network_direction_from_the_initiator(initiator, direction):
    flag = "" if initiator is None else f" initiator={initiator}"
    out = ike(f"prio=2 id=530 localip=203.0.113.2 remoteip=81.2.3.4{flag}")
    assert out["network"].get("direction") == direction


@pytest.mark.parametrize(("column", "host", "observer"), [
    ("10.0.0.1", "10.0.0.1", {"ip": ["10.0.0.1"]}),
    ("2001:DB8::1", None, {"ip": ["2001:db8::1"]}),
    ("fw-hq-01", "fw-hq-01", {"hostname": "fw-hq-01"}),
])
def test_observer_ip_when_the_receiver_column_is_an_address(column, host, observer):
    out = run(f"2026-11-26 10:00:05\tLocal0.Notice\t{column}\t[2026-11-26 10:00:00] EFW: IKE: "
              "prio=2 id=530")
    fixed = {"vendor": "Clavister", "product": "cOS Stream", "type": "firewall"}
    assert out["observer"] == fixed | observer


@pytest.mark.parametrize(("column", "syslog"), [
    ("Local0.Notice", {"priority": 133, "facility": {"code": 16, "name": "local0"},
                       "severity": {"code": 5, "name": "notice"}}),
    ("local7.info", {"priority": 190, "facility": {"code": 23, "name": "local7"},
                     "severity": {"code": 6, "name": "informational"}}),
    ("Auth.Warning", {"priority": 36, "facility": {"code": 4, "name": "auth"},
                      "severity": {"code": 4, "name": "warning"}}),
    ("Local9.Info", None),
    ("", None),
])
def test_facility_and_severity_from_the_receiver_column(column, syslog):
    out = run(f"2026-11-26 10:00:05\t{column}\tfw\t[2026-11-26 10:00:00] EFW: IKE: id=1694")
    assert out["log"].get("syslog") == syslog
    if syslog is not None:
        assert out["event"]["severity"] == syslog["severity"]["code"]


def test_event_ingested_is_the_batch_clock_not_the_event_time(monkeypatch):
    monkeypatch.setattr(ecs, "now", lambda: NOW)
    pipeline = Pipeline()
    line = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530"
    outs = pipeline.process_lines([line, "EFW: IKE: id=530 x=y" + " z" * 3])
    outs += pipeline.process_records([{"log": line}, {"id": "530", "localip": "1.2.3.4"}],
                                     times=["2026-01-01T00:00:00.000Z"] * 2)
    docs = [json.loads(msgspec.json.encode(o)) for o in outs]
    assert [d["event"]["ingested"] for d in docs] == [NOW] * 4
    assert [d["@timestamp"] for d in docs] == [
        "2026-11-26T10:00:00.000Z", NOW, "2026-11-26T10:00:00.000Z",
        "2026-01-01T00:00:00.000Z"]


def test_the_structs_the_builders_fill_by_position_keep_their_order():
    """The generated builders fill these Structs by position (cheaper than by keyword): a
    field added in the middle would shift every value after it. New fields go after these."""
    from ikefilter import ecs

    assert ecs.EventFields.__struct_fields__[:12] == (
        "kind", "module", "dataset", "code", "action", "category", "type", "outcome",
        "reason", "severity", "original", "ingested")
    assert ecs.Observer.__struct_fields__[:6] == (
        "vendor", "product", "type", "hostname", "ingress", "ip")
    assert ecs.Clavister.__struct_fields__[:11] == (
        "categories", "prio", "rev", "event", "action", "iface", "original_severity", "ike",
        "ipsec", "ip_pool", "limit")
    assert ecs.Event.__struct_fields__[:16] == (
        "timestamp", "event", "message", "log", "observer", "source", "destination",
        "network", "user", "related", "error", "tags", "clavister", "ecs", "labels",
        "data_stream")
