"""The line decoder, on every shape README.md lists, and the pipeline's handling of each."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import msgspec
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from ikefilter import catalog, ecs, wire
from ikefilter.normalize import Normalizer
from ikefilter.wire import NotClavister, Undecodable, decode_line

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


def doc(pipeline, line):
    """Run one line through the pipeline; the output as the JSON a receiver would see."""
    (out,) = pipeline.process_lines([line])
    return json.loads(msgspec.json.encode(out))


# -- verbatim public captures --------------------------------------------------------

KIWI_CONN = (
    "2010-12-15 15:00:25\tLocal0.Info\t192.168.20.254\t[2010-12-15 14:56:37] EFW: CONN: prio=1 "
    "id=00600005 rev=1 event=conn_close_natsat action=close rule=local_to_wan_http_alg "
    "conn=close connipproto=TCP connrecvif=core connsrcip=92.45.16.122 connsrcport=19920 "
    "conndestif=wan conndestip=81.8.63.21 conndestport=80 connnewsrcip=92.45.16.122 "
    "connnewsrcport=19920 connnewdestip=81.8.63.21 connnewdestport=80 origsent=1106 termsent=920"
)
KIWI_ALG = (
    "2010-12-15 15:00:25\tLocal0.Notice\t192.168.20.254\t[2010-12-15 14:56:37] EFW: ALG: prio=2 "
    'id=00200125 rev=2 event=request_url action=allow categories="Business oriented" audit=off '
    "override=no connipproto=TCP connrecvif=wan connsrcip=88.249.168.180 connsrcport=52047 "
    "conndestif=core conndestip=92.45.16.135 conndestport=80 origsent=419 termsent=84 "
    'url="www.turkak.org.tr/favicon.ico" algname=local_local_alg algmod=http algsesid=100330'
)
KIWI_REASSEMBLY = (
    "2010-12-15 15:00:35\tLocal0.Error\t192.168.20.254\t[2010-12-15 14:56:47] EFW: REASSEMBLY: "
    "prio=4 id=04800004 rev=1 event=mismatching_data_in_overlapping_tcp_segment "
    "action=correct the data connipproto=TCP connrecvif=core connsrcip=85.102.128.208 "
    "connsrcport=2444"
)
NETCON = "<134>[2014-09-01 13:04:04] EFW: NETCON: prio=1 id=02300001 rev=1 event=init_complete"
SYSTEM = (
    "<134>[2014-09-01 13:04:11] EFW: SYSTEM: prio=2 id=03204001 rev=1 event=accept_configuration "
    "action=using_new_config username=admin userdb=AdminUsers client_ip=172.16.10.1 "
    "config_system=HTTP"
)
OLD_DROP = (
    "Oct 20 2003 09:42:25 gateway EFW: DROP: prio=1 rule=Rule_1 action=drop recvif=wan "
    "srcip=192.168.10.2 destip=192.168.0.1 ipproto=TCP ipdatalen=28 srcport=3572 destport=135 "
    "tcphdrlen=28 syn=1"
)
MGMT_EXPORT = (
    "<1>1 2026-02-09T07:32:47Z 15c8cb06-465b-48b2-b7f7-b6c206e749dc CONN : id=600004 "
    'event=conn_open_natsat [message=Connection opened connrecvzone="" conndestzone="" ]'
    "[conn [conn connsrcip=10.48.11.55 conndestip=20.242.39.171 connipproto=TCP "
    "conndestport=443 connrecvif=lan conndestif=wan connnewsrcip=62.111.230.212 ]]"
)


@pytest.mark.parametrize("fast", [True, False])
def test_a_pri_the_line_carries_wins_over_the_receiver_column(fast):
    from ikefilter.pipeline import Pipeline

    line = "<134>" + KIWI_CONN.replace("Local0.Info", "Local0.Debug")  # column: 135
    assert decode_line(line).pri == 134
    [event] = Pipeline(fast=fast).process_lines([line])
    assert event.log.syslog.priority == 134


def test_kiwi_receiver_columns():
    d = decode_line(KIWI_CONN)
    assert d.categories == ["CONN"]
    assert d.pri == 134  # the receiver's column: Local0.Info
    assert d.host == "192.168.20.254"
    assert d.time == "2010-12-15T14:56:37.000Z"  # the device time, not the receiver's
    assert d.params == {
        "prio": "1", "id": "00600005", "rev": "1", "event": "conn_close_natsat",
        "action": "close", "rule": "local_to_wan_http_alg", "conn": "close",
        "connipproto": "TCP", "connrecvif": "core", "connsrcip": "92.45.16.122",
        "connsrcport": "19920", "conndestif": "wan", "conndestip": "81.8.63.21",
        "conndestport": "80", "connnewsrcip": "92.45.16.122", "connnewsrcport": "19920",
        "connnewdestip": "81.8.63.21", "connnewdestport": "80", "origsent": "1106",
        "termsent": "920",
    }
    assert d.notes is None


def test_kiwi_quoted_values():
    d = decode_line(KIWI_ALG)
    assert d.categories == ["ALG"]
    assert d.params["categories"] == "Business oriented"
    assert d.params["url"] == "www.turkak.org.tr/favicon.ico"
    assert d.params["audit"] == "off"
    assert d.params["algsesid"] == "100330"
    assert len(d.params) == 21


def test_kiwi_bare_multi_word_value():
    d = decode_line(KIWI_REASSEMBLY)
    assert d.categories == ["REASSEMBLY"]
    assert d.time == "2010-12-15T14:56:47.000Z"
    assert d.params["action"] == "correct the data"
    assert d.params["event"] == "mismatching_data_in_overlapping_tcp_segment"
    assert d.params["connipproto"] == "TCP"
    assert d.params["connsrcport"] == "2444"


def test_pri_and_bracketed_device_time():
    d = decode_line(NETCON)
    assert (d.pri, d.time, d.host, d.categories) == (
        134, "2014-09-01T13:04:04.000Z", None, ["NETCON"],
    )
    assert d.params == {"prio": "1", "id": "02300001", "rev": "1", "event": "init_complete"}
    d = decode_line(SYSTEM)
    assert d.params["action"] == "using_new_config"
    assert d.params["client_ip"] == "172.16.10.1"
    assert d.params["config_system"] == "HTTP"


def test_old_rfc3164_with_year_and_no_id():
    d = decode_line(OLD_DROP)
    assert d.pri is None
    assert d.time == "2003-10-20T09:42:25.000Z"
    assert d.host == "gateway"
    assert d.categories == ["DROP"]
    assert d.params["rule"] == "Rule_1"
    assert d.params["syn"] == "1"
    assert "id" not in d.params


def test_management_export_rfc5424_with_bracketed_groups():
    d = decode_line(MGMT_EXPORT)
    assert d.pri == 1
    assert d.time == "2026-02-09T07:32:47.000Z"
    assert d.host == "15c8cb06-465b-48b2-b7f7-b6c206e749dc"
    assert d.categories == ["CONN"]
    assert d.params == {
        "id": "600004", "event": "conn_open_natsat", "message": "Connection opened",
        "connrecvzone": "", "conndestzone": "", "connsrcip": "10.48.11.55",
        "conndestip": "20.242.39.171", "connipproto": "TCP", "conndestport": "443",
        "connrecvif": "lan", "conndestif": "wan", "connnewsrcip": "62.111.230.212",
    }


@pytest.mark.parametrize(
    "line", [KIWI_CONN, KIWI_ALG, KIWI_REASSEMBLY, NETCON, SYSTEM, MGMT_EXPORT]
)
def test_public_captures_are_unknown_messages_kept_with_their_params(pipeline, line):
    out = doc(pipeline, line)
    d = decode_line(line)
    assert ecs.TAG_UNKNOWN_MESSAGE in out["tags"]
    assert ecs.TAG_PARSE_FAILURE not in out["tags"]
    assert out["event"]["code"] == str(int(d.params["id"]))
    assert out["event"]["original"] == line
    assert out["@timestamp"] == d.time
    header = {"prio", "id", "rev", "event", "action"}
    extra = {k: v for k, v in d.params.items() if k not in header}
    assert out["clavister"].get("extra", {}) == extra


def test_old_firmware_line_without_id_is_kept_and_tagged(pipeline):
    out = doc(pipeline, OLD_DROP)
    assert out["event"]["original"] == OLD_DROP
    assert ecs.TAG_PARSE_FAILURE in out["tags"]
    assert "id=" in out["error"]["message"]
    assert out["clavister"]["action"] == "drop"
    assert out["clavister"]["extra"]["srcip"] == "192.168.10.2"
    assert out["observer"]["hostname"] == "gateway"
    assert out["event"]["severity"] == 6  # prio=1 -> 7 - 1


# -- the shapes an IKE line can take ---------------------------------------------------------

IKE_BODY = (
    'prio=2 id=530 rev=1 event=ike_sa_established localip=203.0.113.1 localport=500 '
    'remoteip=198.51.100.7 remoteport=4500 algorithms="AES-256 SHA256 DH14"'
)
IKE_PARAMS = {
    "prio": "2", "id": "530", "rev": "1", "event": "ike_sa_established",
    "localip": "203.0.113.1", "localport": "500", "remoteip": "198.51.100.7",
    "remoteport": "4500", "algorithms": "AES-256 SHA256 DH14",
}


@pytest.mark.parametrize("line, pri, time, host", [
    (f"<134>[2026-11-26 10:00:00] EFW: IKE: {IKE_BODY}", 134, "2026-11-26T10:00:00.000Z", None),
    (f"[2026-11-26 10:00:00] EFW: IKE: {IKE_BODY}", None, "2026-11-26T10:00:00.000Z", None),
    (f"<134>1 2026-11-26T10:00:00Z fw1 EFW - - - IKE: {IKE_BODY}",
     134, "2026-11-26T10:00:00.000Z", "fw1"),
    (f"<134>1 2026-11-26T10:00:00.250Z fw1 EFW - - - IKE: {IKE_BODY}",
     134, "2026-11-26T10:00:00.250Z", "fw1"),
    (f"<134>1 2026-11-26T11:00:00+01:00 fw1 EFW - - - IKE: {IKE_BODY}",
     134, "2026-11-26T10:00:00.000Z", "fw1"),
    (f"<134>1 2026-11-26T05:00:00-05:00 fw1 EFW 4711 IKE - IKE: {IKE_BODY}",
     134, "2026-11-26T10:00:00.000Z", "fw1"),
    (f'<134>1 2026-11-26T10:00:00Z fw1 EFW - - [origin ip="192.0.2.1" x="a]b"][m@1 k="v"] '
     f"IKE: {IKE_BODY}", 134, "2026-11-26T10:00:00.000Z", "fw1"),
    (f"<134>1 2026-11-26T10:00:00Z fw1 EFW - - - \ufeffIKE: {IKE_BODY}",
     134, "2026-11-26T10:00:00.000Z", "fw1"),
    (f"<134>Nov 26 11:00:00 fw1 [2026-11-26 10:00:00] EFW: IKE: {IKE_BODY}",
     134, "2026-11-26T10:00:00.000Z", "fw1"),
    (f"<134>Nov 26 10:00:00 fw1 EFW: IKE: {IKE_BODY}", 134, "2026-11-26T10:00:00.000Z", "fw1"),
    (f"Nov 26 10:00:00 fw1 EFW: IKE: {IKE_BODY}", None, "2026-11-26T10:00:00.000Z", "fw1"),
    (f"<134>Nov  6 10:00:00 fw1 EFW: IKE: {IKE_BODY}", 134, "2026-11-06T10:00:00.000Z", "fw1"),
    (f"2026-11-26 10:00:01\tLocal0.Notice\tfw1\t[2026-11-26 10:00:00] EFW: IKE: {IKE_BODY}",
     133, "2026-11-26T10:00:00.000Z", "fw1"),
    (f"\ufeff<134>[2026-11-26 10:00:00] EFW: IKE: {IKE_BODY}", 134, "2026-11-26T10:00:00.000Z",
     None),
    (f"EFW: IKE: {IKE_BODY}", None, None, None),
    (f"<134>EFW: IKE: {IKE_BODY}", 134, None, None),
    (f"IKE: {IKE_BODY}", None, None, None),
])
def test_ike_line_shapes(line, pri, time, host):
    d = decode_line(line, now=NOW)
    assert d.params == IKE_PARAMS
    assert d.categories == ["IKE"]
    assert (d.pri, d.time, d.host) == (pri, time, host)
    assert d.notes is None
    assert d.original == line


def test_rfc3164_year_is_inferred_from_now():
    d = decode_line("<134>Dec 31 23:59:59 fw1 EFW: IKE: id=530",
                    now=datetime(2027, 1, 1, 0, 0, 5, tzinfo=timezone.utc))
    assert d.time == "2026-12-31T23:59:59.000Z"
    d = decode_line("<134>Jan  1 00:00:01 fw1 EFW: IKE: id=530",
                    now=datetime(2027, 1, 1, 0, 0, 5, tzinfo=timezone.utc))
    assert d.time == "2027-01-01T00:00:01.000Z"



@pytest.mark.parametrize("line, now, expected", [
    # the device's clock a little ahead of ours, across a month end and a year end
    ("Feb  1 00:00:01", datetime(2026, 1, 31, 23, 59, 59), "2026-02-01T00:00:01.000Z"),
    ("Jan  1 00:00:01", datetime(2026, 12, 31, 23, 59, 59), "2027-01-01T00:00:01.000Z"),
    ("Mar  1 00:00:01", datetime(2026, 2, 28, 23, 0, 0), "2026-03-01T00:00:01.000Z"),
    # a day behind, and far behind: this year and last year
    ("Nov 25 10:00:00", datetime(2026, 11, 26, 10, 0, 0), "2026-11-25T10:00:00.000Z"),
    ("Dec  3 10:00:00", datetime(2026, 11, 26, 10, 0, 0), "2025-12-03T10:00:00.000Z"),
    # 29 February: the last year that had one, never a day that does not exist
    ("Feb 29 12:00:00", datetime(2026, 3, 1, 0, 0, 0), None),
    ("Feb 29 12:00:00", datetime(2028, 3, 1, 0, 0, 0), "2028-02-29T12:00:00.000Z"),
])
def test_rfc3164_year_at_month_and_year_ends(line, now, expected):
    d = decode_line(f"<134>{line} fw1 EFW: IKE: id=530", now=now.replace(tzinfo=timezone.utc))
    assert d.time == expected


@pytest.mark.parametrize("cats, expected", [
    ("IKE", ["IKE"]),
    ("IKE,IPSEC", ["IKE", "IPSEC"]),
    ("IKE,RULE", ["IKE", "RULE"]),
    ("IKE,IPSEC,RULE", ["IKE", "IPSEC", "RULE"]),
])
def test_category_list(cats, expected):
    assert decode_line(f"<134>[2026-11-26 10:00:00] EFW: {cats}: id=530").categories == expected


def test_categories_reach_the_event(pipeline):
    out = doc(pipeline, "<133>[2026-11-26 10:00:00] EFW: IKE,IPSEC: prio=2 id=530")
    assert out["clavister"]["categories"] == ["IKE", "IPSEC"]


# -- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body, expected", [
    ('reason="No proposal chosen"', {"reason": "No proposal chosen"}),
    ('reason="a=b: c" x=1', {"reason": "a=b: c", "x": "1"}),
    ('localid="CN=vpn.example.com, O=Example AB, C=SE" x=1',
     {"localid": "CN=vpn.example.com, O=Example AB, C=SE", "x": "1"}),
    ('x="" y=2', {"x": "", "y": "2"}),
    ('y=2 x=""', {"y": "2", "x": ""}),
    ("action=correct the data next=1", {"action": "correct the data", "next": "1"}),
    ("reason=No proposal chosen", {"reason": "No proposal chosen"}),
    ("url=http://h/p?a=b&c=d x=1", {"url": "http://h/p?a=b&c=d", "x": "1"}),
    ("ts=10.0.0.0/24 port=500", {"ts": "10.0.0.0/24", "port": "500"}),
    ('reason="Peer sent \\"INVALID_KE_PAYLOAD\\"" x=1',
     {"reason": 'Peer sent "INVALID_KE_PAYLOAD"', "x": "1"}),
    ('path="C:\\\\ike\\\\log" x=1', {"path": "C:\\ike\\log", "x": "1"}),
    ('remoteid="CN=Smith\\, John, O=Example" x=1',
     {"remoteid": "CN=Smith\\, John, O=Example", "x": "1"}),
    ("x=1    y=2", {"x": "1", "y": "2"}),
    ("a.b=1 c-d=2 _e=3", {"a.b": "1", "c-d": "2", "_e": "3"}),
])
def test_values(body, expected):
    d = decode_line(f"EFW: IKE: {body}")
    assert d.params == expected
    assert d.notes is None


def test_unbalanced_quote_is_noted_never_a_crash(pipeline):
    line = '<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 localip=203.0.113.1 reason="no end'
    d = decode_line(line)
    assert d.params["localip"] == "203.0.113.1"
    assert d.params["reason"] == "no end"
    assert d.notes == ["unbalanced quote in reason"]
    out = doc(pipeline, line)
    assert ecs.TAG_PARSE_FAILURE in out["tags"]
    assert "unbalanced quote in reason" in out["error"]["message"]
    assert out["event"]["code"] == "530"
    assert out["event"]["original"] == line


@pytest.mark.parametrize("body, expected, notes", [
    ('x="', {"x": ""}, ["unbalanced quote in x"]),
    ('x="\\', {"x": "\\"}, ["unbalanced quote in x"]),
    ('x="a\\"', {"x": 'a\\"'}, ["unbalanced quote in x"]),
    ("x=", {"x": ""}, None),
    ("x==", {"x": "="}, None),
    # Words that are no name= belong to the bare value before them.
    ('"', {"rev": '1 "'}, None),
    ('""', {"rev": '1 ""'}, None),
    ('="x', {"rev": '1 ="x'}, None),
    ("=", {"rev": "1 ="}, None),
    ("=x y=2", {"rev": "1 =x", "y": "2"}, None),
    ('"x"="y"', {"rev": '1 "x"="y"'}, None),
    ("a:b=1", {"rev": "1 a:b=1"}, None),
    ('x="b"_c y=1', {"x": "b", "y": "1"}, None),
    ("x=]", {"x": ""}, None),
])
def test_odd_bodies(pipeline, body, expected, notes):
    line = f"EFW: IKE: id=530 rev=1 {body}"
    d = decode_line(line)
    assert d.params == {"id": "530", "rev": "1", **expected}
    assert d.notes == notes
    assert "" not in d.params  # never a field with an empty name
    out = doc(pipeline, line)
    assert out["event"]["code"] == "530"
    assert out["event"]["original"] == line


@pytest.mark.parametrize("raw", ["530", "00000530", "0530"])
def test_id_with_leading_zeros(pipeline, raw):
    line = f"<133>[2026-11-26 10:00:00] EFW: IKE: prio=2 id={raw} rev=1"
    assert decode_line(line).params["id"] == raw  # the raw string is kept
    out = doc(pipeline, line)
    assert out["event"]["code"] == "530"
    assert out["event"]["action"] == "ike-sa-established"
    assert out["message"] == "Successfully established IKE SA."
    assert out["event"]["original"] == line


def test_ipv6_addresses(pipeline):
    line = ("<133>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 localip=2001:db8:0:1::1 "
            "localport=500 remoteip=2A02:DB8::5 remoteport=4500 initiator=true")
    d = decode_line(line)
    assert d.params["localip"] == "2001:db8:0:1::1"
    assert d.params["remoteip"] == "2A02:DB8::5"
    out = doc(pipeline, line)
    assert out["source"] == {"ip": "2001:db8:0:1::1", "port": 500}
    assert out["destination"] == {"ip": "2a02:db8::5", "port": 4500}
    assert out["network"]["type"] == "ipv6"


# -- time -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, instant", [
    ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=timezone.utc)),
    ("2026-11-26T11:00:00+01:00", datetime(2026, 11, 26, 10, tzinfo=timezone.utc)),
    ("2026-11-26T01:30:00-08:30", datetime(2026, 11, 26, 10, tzinfo=timezone.utc)),
    ("2026-11-27T00:30:00+14:30", datetime(2026, 11, 26, 10, tzinfo=timezone.utc)),
    ("2026-11-26T12:00:00.123+02:00",
     datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=timezone.utc)),
    ("2026-11-26T10:00:00", datetime(2026, 11, 26, 10, tzinfo=timezone.utc)),
    ("2026-11-26 10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=timezone.utc)),
])
def test_utc_iso_converts_to_utc(text, instant):
    out = wire.utc_iso(text)
    assert out is not None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out)
    parsed = datetime.fromisoformat(out[:-1]).replace(tzinfo=timezone.utc)
    assert parsed == instant


@pytest.mark.parametrize("text", [
    "garbage", "garbageZ", "2026-02-30T10:00:00Z", "2026-13-01T00:00:00Z",
    "2026-11-26T25:00:00+01:00", "", "Z",
])
def test_utc_iso_rejects_what_is_not_a_time(text):
    assert wire.utc_iso(text) is None


@pytest.mark.parametrize("line", [
    "<134>[2026-02-30 10:00:00] EFW: IKE: prio=2 id=530",
    "<134>[2026-99-99 99:99:99] EFW: IKE: prio=2 id=530",
    "<134>Feb 30 10:00:00 fw1 EFW: IKE: prio=2 id=530",
    "<134>1 2026-11-26T10:61:00Z fw1 EFW - - - IKE: prio=2 id=530",
])
def test_impossible_line_time_is_noted_and_not_used(pipeline, line):
    d = decode_line(line, now=NOW)
    assert d.time is None
    assert d.notes and d.notes[0].startswith("invalid timestamp")
    out = doc(pipeline, line)
    stamp = out["@timestamp"]
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).year >= 2026  # "now"
    assert ecs.TAG_PARSE_FAILURE in out["tags"]
    assert "invalid timestamp" in out["error"]["message"]
    assert out["event"]["action"] == "ike-sa-established"


def test_record_time_is_used_when_the_line_has_none(pipeline):
    rec = {"log": "<133>EFW: IKE: prio=2 id=530", "time": "2026-11-26T11:00:00+01:00"}
    assert doc(pipeline, json.dumps(rec))["@timestamp"] == "2026-11-26T10:00:00.000Z"
    rec["time"] = "not a time Z"
    stamp = doc(pipeline, json.dumps(rec))["@timestamp"]
    assert stamp.endswith("Z") and stamp.startswith("20")


# -- PRI --------------------------------------------------------------------------------------


def test_pri_out_of_range_is_not_a_pri(pipeline):
    line = "<999>[2026-11-26 10:00:00] EFW: IKE: id=530"
    assert decode_line(line).pri is None
    out = doc(pipeline, line)
    assert "syslog" not in out["log"]
    assert out["event"]["severity"] == 5  # the catalog default of 530 (Notice)


# -- what is not ours -------------------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "hello world",
    "",
    "ERROR: disk full",
    "<13>Nov 26 10:00:00 host sshd[123]: Accepted publickey for bob from 192.0.2.1",
    "<13>Nov 26 10:00:00 host CRON: job=backup status=done",
    "<13>1 2026-11-26T10:00:00Z host app - - - plain text",
    "GET /index.html?id=5 HTTP/1.1",
])
def test_non_clavister_lines(pipeline, line):
    with pytest.raises(NotClavister):
        decode_line(line)
    # a blank line is a counted drop, not a document
    assert doc(pipeline, line) == ({"message": line} if line else None)


def test_non_clavister_record_passes_unchanged(pipeline):
    rec = {"log": "some other app", "kubernetes": {"pod": "x"}}
    assert doc(pipeline, json.dumps(rec)) == rec
    assert doc(pipeline, '{"a": [1, 2], "b": null}') == {"a": [1, 2], "b": None}


def test_clavister_header_without_pairs_is_undecodable(pipeline):
    with pytest.raises(Undecodable):
        decode_line("EFW: IKE:")
    with pytest.raises(Undecodable):
        decode_line("<134>[2026-11-26 10:00:00] EFW: IKE: nothing here")
    out = doc(pipeline, "<134>[2026-11-26 10:00:00] EFW: IKE: ")
    assert out["tags"] == ["clavister", ecs.TAG_PARSE_FAILURE]
    assert out["event"]["original"] == "<134>[2026-11-26 10:00:00] EFW: IKE: "
    assert out["error"]["message"] == "no name=value pairs after the header"


def test_pairs_without_header_but_with_id():
    d = decode_line("prio=2 id=530 localip=203.0.113.1")
    assert d.params == {"prio": "2", "id": "530", "localip": "203.0.113.1"}
    assert d.categories is None and d.pri is None


# -- pipeline-wrapped records --------------------------------------------

LINE = f"<133>[2026-11-26 10:00:00] EFW: IKE,IPSEC: {IKE_BODY}"


@pytest.mark.parametrize("record", [
    {"log": LINE},
    {"message": LINE, "host": "fw9"},
    {"MESSAGE": f"[2026-11-26 10:00:00] EFW: IKE,IPSEC: {IKE_BODY}", "HOST": "fw9"},
    {"msg": f" IKE,IPSEC: {IKE_BODY}", "rawmsg": LINE, "hostname": "fw9",
     "timereported": "2026-11-26T10:00:00Z", "pri": "133"},
    {"@timestamp": "2026-11-26T10:00:00Z", "host": "fw9", **IKE_PARAMS},
])
def test_wrapped_records(pipeline, record):
    out = doc(pipeline, json.dumps(record))
    assert out["event"]["code"] == "530"
    assert out["@timestamp"] == "2026-11-26T10:00:00.000Z"
    assert out["source"] == {"ip": "198.51.100.7", "port": 4500}
    assert out["clavister"]["ike"]["algorithms"] == "AES-256 SHA256 DH14"
    assert not [t for t in out["tags"] if t.startswith("ikefilter_")]
    if "host" in record or "hostname" in record or "HOST" in record:
        assert out["observer"]["hostname"] == "fw9"


def test_split_record_with_non_string_values(pipeline):
    out = doc(pipeline, json.dumps({"id": 530, "localport": 500, "localip": "203.0.113.1"}))
    assert out["event"]["code"] == "530"
    assert out["destination"] == {"ip": "203.0.113.1", "port": 500}


def test_invalid_json_record_is_a_tagged_failure(pipeline):
    out = doc(pipeline, '{"log": ')
    assert out["tags"] == ["clavister", ecs.TAG_PARSE_FAILURE]
    assert out["event"]["original"] == '{"log": '
    assert out["error"]["message"].startswith("invalid JSON record")


# -- the fast pair splitter gives what the exact one gives -----------------------------------

_TOKENS = ['a', 'id', 'x.y', '=', '"', ' ', '  ', '\\', '[', ']', '530', 'b c', ':', ',', '\t',
           'é', '{', '}', "'", '1', '-', '_', '/', '\u00a0', '\x00', 'a="b"', 'x=1 ', 'a=""']


@settings(max_examples=examples(1000), deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join))
def test_fast_pairs_equal_exact_pairs(body):
    data = wire.pairs_json(body)
    if data is not None and b"\n" not in data:
        fast = wire.decode_pairs(data)
        if fast is not None and wire.names_ok(fast):
            assert (fast, None) == wire.split_pairs_exact(body)
    assert wire.split_pairs(body) == wire.split_pairs_exact(body)


@settings(max_examples=examples(1000), deadline=None)
@given(st.text(alphabet='ab=" ,:.-_1]\t', max_size=16))
def test_fast_pairs_equal_exact_pairs_any_text(body):
    assert wire.split_pairs(body) == wire.split_pairs_exact(body)


@pytest.mark.parametrize("body, expected", [
    ("=x id=530", {"id": "530"}),                      # was {"": "x", ...} on the fast path
    ("= id=530", {"id": "530"}),
    ("a:b=1 id=530", {"b": "1", "id": "530"}),        # was {"a:b": "1", ...}
    ('"x"="y" id=530', {"id": "530"}),                # was {"x": "y", ...}
    ('x="b"_c id=530', {"x": "b", "id": "530"}),      # was {"x": "b_c", ...}
    ("x=] id=530", {"x": "", "id": "530"}),           # was {"x": "]", ...}
    ("id=530 localport=5e2", {"id": "530", "localport": "5e2"}),
])
def test_pairs_regressions(body, expected):
    assert wire.split_pairs(body) == (expected, None)


def test_bracketed_ipv6_value_is_kept_and_normalized():
    d = wire.decode_line(
        "<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 remoteip=[2001:db8::1] "
        "remoteport=500 localip=203.0.113.1"
    )
    assert d.params["remoteip"] == "[2001:db8::1]"
    assert d.params["localip"] == "203.0.113.1"
    event = Normalizer(catalog.load()).normalize(d, "2026-11-26T10:00:00Z")
    assert event.source.ip == "2001:db8::1" and event.source.port == 500
    assert event.tags == ["clavister", "ike"]


def test_rfc5424_nil_timestamp_keeps_pri_host_and_categories():
    d = wire.decode_line("<134>1 - fw01 EFW - - - IKE,IPSEC: prio=2 id=530")
    assert (d.pri, d.host, d.categories, d.time) == (134, "fw01", ["IKE", "IPSEC"], None)


# -- zone-less times in the site's zone ---------------------------------------------------------


@pytest.mark.parametrize(("header", "zone", "utc"), [
    ("[2026-07-01 12:00:00]", "Europe/Stockholm", "2026-07-01T10:00:00.000Z"),   # CEST
    ("[2026-01-15 12:00:00]", "Europe/Stockholm", "2026-01-15T11:00:00.000Z"),   # CET
    # The hour after 02:59 CEST on 2026-10-25 happens twice: the first of the two.
    ("[2026-10-25 02:30:00]", "Europe/Stockholm", "2026-10-25T00:30:00.000Z"),
    # 02:30 on 2026-03-29 never happens in Stockholm: read with the offset before the change.
    ("[2026-03-29 02:30:00]", "Europe/Stockholm", "2026-03-29T01:30:00.000Z"),
    ("[2026-07-01 12:00:00]", "America/New_York", "2026-07-01T16:00:00.000Z"),
    ("[2026-07-01 12:00:00]", "UTC", "2026-07-01T12:00:00.000Z"),
    ("<134>Jul  1 12:00:00 fw1", "Europe/Stockholm", "2026-07-01T10:00:00.000Z"),
    ("<134>Jan 15 2026 12:00:00 fw1", "Asia/Kolkata", "2026-01-15T06:30:00.000Z"),
    ("2026-07-01 12:00:05\tLocal0.Info\tfw1\t", "Europe/Stockholm", "2026-07-01T10:00:05.000Z"),
    # A time that says its zone keeps it.
    ("<134>1 2026-07-01T12:00:00+02:00 fw1 EFW - - -", "Asia/Kolkata",
     "2026-07-01T10:00:00.000Z"),
])
def test_zone_less_times_in_the_site_zone(header, zone, utc):
    from ikefilter.localtime import LocalTime

    now = datetime(2026, 8, 1, tzinfo=timezone.utc)
    sep = "" if header.endswith("\t") else " "
    line = f"{header}{sep}EFW: IKE: prio=2 id=530" if "EFW -" not in header else \
        f"{header} IKE: prio=2 id=530"
    assert decode_line(line, now, LocalTime(zone)).time == utc


def test_a_zone_that_does_not_exist_is_a_config_error():
    from ikefilter import config

    with pytest.raises(config.ConfigError, match=r"site.toml:1: time: 'Europe/Stockhlom' is"):
        config.loads('[time]\nzone = "Europe/Stockhlom"\n', "site.toml")
    assert config.loads('[time]\nzone = "Europe/Stockholm"\n').time.zone == "Europe/Stockholm"


@pytest.mark.parametrize(("text", "out"), [
    ("2026-11-26T10:00:00Z", "2026-11-26T10:00:00.000Z"),
    ("2026-11-26T10:00:00.123000Z", "2026-11-26T10:00:00.123Z"),
    ("2026-11-26T10:00:00.792Z", "2026-11-26T10:00:00.792Z"),
    ("2026-11-26T10:00:00.9Z", "2026-11-26T10:00:00.900Z"),
    ("2026-11-26T10:00:00.999999999Z", "2026-11-26T10:00:00.999Z"),
    ("2026-11-26T11:00:00.5+01:00", "2026-11-26T10:00:00.500Z"),
])
def test_one_fraction_format_for_every_time(text, out):
    assert wire.utc_iso(text) == out
