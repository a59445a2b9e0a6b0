"""ikefilter-geoip against tiny MaxMind databases that the test writes itself."""

from __future__ import annotations

import ipaddress
import struct

import maxminddb
import msgspec
import pytest
from ikefilter_geoip import GeoIP, as_fields, geo_fields

from ikefilter import app
from ikefilter.config import ConfigError

# -- a minimal MaxMind DB writer (format 2.0, 24-bit records, IPv6 tree) ----------------------


class U16(int):
    pass


class U64(int):
    pass


def _control(kind: int, size: int) -> bytes:
    if size < 29:
        bits, extra = size, b""
    elif size < 285:
        bits, extra = 29, bytes([size - 29])
    elif size < 65821:
        bits, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        bits, extra = 31, (size - 65821).to_bytes(3, "big")
    head = bytes([(kind << 5) | bits]) if kind <= 7 else bytes([bits, kind - 7])
    return head + extra


def encode(value) -> bytes:
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _control(2, len(data)) + data
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        kind = 5 if isinstance(value, U16) else 9 if isinstance(value, U64) else 6
        data = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return _control(kind, len(data)) + data
    if isinstance(value, dict):
        return _control(7, len(value)) + b"".join(encode(k) + encode(v)
                                                  for k, v in value.items())
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(value)


def write_mmdb(path, networks: dict[str, dict], database_type: str) -> None:
    """Networks must not overlap. IPv4 networks go under ::/96, as MaxMind's do."""
    data = b""
    nodes: list[list] = [[None, None]]
    for text, record in networks.items():
        offset = len(data)
        data += encode(record)
        net = ipaddress.ip_network(text)
        bits, plen = int(net.network_address), net.prefixlen
        if net.version == 4:
            plen += 96
        node = 0
        for depth in range(plen):
            bit = (bits >> (127 - depth)) & 1
            if depth == plen - 1:
                nodes[node][bit] = ("data", offset)
            else:
                if nodes[node][bit] is None:
                    nodes.append([None, None])
                    nodes[node][bit] = ("node", len(nodes) - 1)
                node = nodes[node][bit][1]
    count = len(nodes)

    def record(ref) -> int:
        if ref is None:
            return count
        return ref[1] if ref[0] == "node" else count + 16 + ref[1]

    tree = b"".join(record(a).to_bytes(3, "big") + record(b).to_bytes(3, "big")
                    for a, b in nodes)
    metadata = {
        "node_count": count, "record_size": U16(24), "ip_version": U16(6),
        "database_type": database_type, "languages": ["en"],
        "binary_format_major_version": U16(2), "binary_format_minor_version": U16(0),
        "build_epoch": U64(1_700_000_000), "description": {"en": "ikefilter test"},
    }
    path.write_bytes(tree + bytes(16) + data + b"\xab\xcd\xefMaxMind.com" + encode(metadata))


CITY = {
    "81.2.0.0/16": {
        "city": {"geoname_id": 2692969, "names": {"en": "Malmo", "sv": "Malmö"}},
        "continent": {"code": "EU", "names": {"en": "Europe"}},
        "country": {"iso_code": "SE", "names": {"en": "Sweden"}},
        "location": {"latitude": 55.6059, "longitude": 13.0007,
                     "time_zone": "Europe/Stockholm"},
        "postal": {"code": "211 20"},
        "subdivisions": [{"iso_code": "M", "names": {"en": "Skane County"}}],
    },
    "2a02:1234::/32": {
        "country": {"iso_code": "DE", "names": {"en": "Germany"}},
        "continent": {"code": "EU", "names": {"en": "Europe"}},
    },
}
ASN = {
    "81.2.0.0/16": {"autonomous_system_number": 64500,
                    "autonomous_system_organization": "Example Carrier AB"},
}


@pytest.fixture
def dbs(tmp_path):
    write_mmdb(tmp_path / "city.mmdb", CITY, "GeoLite2-City")
    write_mmdb(tmp_path / "asn.mmdb", ASN, "GeoLite2-ASN")
    return tmp_path


def line(remote: str, initiator: str = "false", local: str = "203.0.113.1") -> str:
    return (f"<134>[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip={local}"
            f" remoteip={remote} initiator={initiator}")


def pipeline(dbs, options='city_db = "city.mmdb"\nasn_db = "asn.mmdb"\n', plugin=None):
    site = dbs / "site.toml"
    site.write_text(f"[plugins.geoip]\n{options}")
    return app.build_pipeline(config_path=str(site), plugins=[plugin or GeoIP()],
                              entry_points=False)


def test_the_writer_makes_a_database_maxminddb_reads(dbs):
    with maxminddb.open_database(str(dbs / "city.mmdb")) as reader:
        assert reader.get("81.2.3.4")["country"]["iso_code"] == "SE"
        assert reader.get("2a02:1234::1")["country"]["iso_code"] == "DE"
        assert reader.get("92.1.1.1") is None
        assert reader.metadata().database_type == "GeoLite2-City"


def test_geo_and_as_of_the_remote_peer(dbs):
    p = pipeline(dbs)
    [event] = p.process_lines([line("81.2.3.4")])
    assert event.source.geo == {
        "city_name": "Malmo", "continent_code": "EU", "continent_name": "Europe",
        "country_iso_code": "SE", "country_name": "Sweden", "region_iso_code": "SE-M",
        "region_name": "Skane County", "postal_code": "211 20",
        "timezone": "Europe/Stockholm", "location": {"lat": 55.6059, "lon": 13.0007},
    }
    assert event.source.as_ == {"number": 64500,
                                "organization": {"name": "Example Carrier AB"}}
    assert event.destination.geo is None  # the firewall itself is not looked up
    encoded = msgspec.json.encode(event)
    assert b'"as":{"number":64500' in encoded


def test_initiator_peer_ipv6_and_misses(dbs):
    p = pipeline(dbs)
    initiated, v6, unknown = p.process_lines([
        line("81.2.3.4", initiator="true"),
        line("2a02:1234::9", local="2001:db8::1"),
        line("92.1.1.1"),
    ])
    assert initiated.destination.geo["country_iso_code"] == "SE"
    assert initiated.source.geo is None
    assert v6.source.geo == {"continent_code": "EU", "continent_name": "Europe",
                             "country_iso_code": "DE", "country_name": "Germany"}
    assert v6.source.as_ is None
    assert unknown.source.geo is None and unknown.source.as_ is None


def test_language_and_both_peers(dbs):
    p = pipeline(dbs, 'city_db = "city.mmdb"\npeer = "both"\nlanguage = "sv"\n')
    [event] = p.process_lines([line("81.2.3.4", local="81.2.9.9")])
    assert event.source.geo["city_name"] == "Malmö"
    assert event.destination.geo["city_name"] == "Malmö"


def test_geo_survives_redaction(dbs, monkeypatch):
    monkeypatch.setenv("IKEFILTER_REDACT_KEY", "k")
    p = pipeline(dbs, 'asn_db = "asn.mmdb"\n[redact]\nip = "hmac"\n')
    [event] = p.process_lines([line("81.2.3.4")])
    assert event.source.ip is None and event.source.as_["number"] == 64500


def test_lookups_are_cached_and_databases_closed(dbs):
    plugin = GeoIP()
    p = pipeline(dbs, plugin=plugin)
    p.process_lines([line("81.2.3.4")] * 5)
    assert list(plugin.cache) == ["81.2.3.4"]
    assert len(plugin.readers) == 2
    p.site.runner.close()
    assert plugin.readers == []


def test_config_errors(dbs):
    with pytest.raises(ConfigError, match="plugins.geoip: set city_db, asn_db or both"):
        pipeline(dbs, 'peer = "remote"\n')
    with pytest.raises(ConfigError, match=r"site\.toml:2: plugins\.geoip\.citydb: unknown key"):
        pipeline(dbs, 'citydb = "x"\n')


def test_field_builders_tolerate_sparse_records():
    assert geo_fields(None, "en") is None and geo_fields({}, "en") is None
    assert geo_fields({"registered_country": {"iso_code": "SE"}}, "en") == {
        "country_iso_code": "SE"}
    assert as_fields({"autonomous_system_number": 1}) == {"number": 1}
    assert as_fields({}) is None
