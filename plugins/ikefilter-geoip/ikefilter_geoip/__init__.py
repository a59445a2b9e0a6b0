"""ikefilter plugin: ECS ``geo.*`` and ``as.*`` for the remote IKE peer, from MaxMind DBs.

Enrichment runs before redaction, so the lookups see the real addresses; the location and
AS stay in the output when the addresses themselves are redacted.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import maxminddb
import msgspec

import ikefilter

_MISS = object()
_CACHE_MAX = 1 << 16


class Options(msgspec.Struct, forbid_unknown_fields=True):
    """``[plugins.geoip]``."""

    city_db: str | None = None
    asn_db: str | None = None
    peer: Literal["remote", "source", "destination", "both"] = "remote"
    language: str = "en"

    def __post_init__(self) -> None:
        if self.city_db is None and self.asn_db is None:
            raise ValueError("set city_db, asn_db or both")


def geo_fields(record: dict[str, Any] | None, language: str) -> dict[str, Any] | None:
    """A City or Country record as ECS ``geo.*``."""
    if not record:
        return None
    geo: dict[str, Any] = {}

    def name(part: dict | None) -> str | None:
        names = (part or {}).get("names") or {}
        return names.get(language) or names.get("en")

    city, continent = record.get("city"), record.get("continent")
    country = record.get("country") or record.get("registered_country")
    if name(city):
        geo["city_name"] = name(city)
    if continent:
        if continent.get("code"):
            geo["continent_code"] = continent["code"]
        if name(continent):
            geo["continent_name"] = name(continent)
    if country:
        if country.get("iso_code"):
            geo["country_iso_code"] = country["iso_code"]
        if name(country):
            geo["country_name"] = name(country)
    subdivisions = record.get("subdivisions") or []
    if subdivisions:
        region = subdivisions[0]
        if region.get("iso_code") and country and country.get("iso_code"):
            geo["region_iso_code"] = f"{country['iso_code']}-{region['iso_code']}"
        if name(region):
            geo["region_name"] = name(region)
    postal = (record.get("postal") or {}).get("code")
    if postal:
        geo["postal_code"] = postal
    location = record.get("location") or {}
    if location.get("time_zone"):
        geo["timezone"] = location["time_zone"]
    if location.get("latitude") is not None and location.get("longitude") is not None:
        geo["location"] = {"lat": location["latitude"], "lon": location["longitude"]}
    return geo or None


def as_fields(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """An ASN record as ECS ``as.*``."""
    if not record or record.get("autonomous_system_number") is None:
        return None
    out: dict[str, Any] = {"number": record["autonomous_system_number"]}
    org = record.get("autonomous_system_organization")
    if org:
        out["organization"] = {"name": org}
    return out


def _get(reader: Any, ip: str) -> Any:
    try:
        return reader.get(ip)
    except ValueError:
        return None  # not an IP, or an IPv6 address in an IPv4-only database


class GeoIP:
    """The plugin object; the entry point registers :data:`plugin`."""

    name = "geoip"

    def __init__(self) -> None:
        self.readers: list[Any] = []
        self.active = False

    @ikefilter.hookimpl
    def ikefilter_config_tables(self):
        return {"geoip": Options}

    @ikefilter.hookimpl
    def ikefilter_configure(self, config, info):
        self.close()
        options: Options | None = config.plugins.get("geoip")
        self.active = options is not None
        if options is None:
            return
        base = os.path.dirname(os.path.abspath(info.config_path)) if info.config_path else ""
        self.city = self._open(options.city_db, base)
        self.asn = self._open(options.asn_db, base)
        self.peer = options.peer
        self.language = options.language
        self.cache: dict[str, tuple[dict | None, dict | None]] = {}

    def _open(self, path: str | None, base: str) -> Any:
        if path is None:
            return None
        reader = maxminddb.open_database(os.path.join(base, path))
        self.readers.append(reader)
        return reader

    def lookup(self, ip: str) -> tuple[dict | None, dict | None]:
        hit = self.cache.get(ip, _MISS)
        if hit is _MISS:
            geo = geo_fields(_get(self.city, ip), self.language) if self.city else None
            asn = as_fields(_get(self.asn, ip)) if self.asn else None
            hit = (geo, asn)
            if len(self.cache) >= _CACHE_MAX:
                self.cache.clear()
            self.cache[ip] = hit
        return hit

    @ikefilter.hookimpl
    def ikefilter_enrich(self, events):
        if not self.active:
            return
        lookup, peer = self.lookup, self.peer
        for event in events:
            for endpoint in event.endpoints(peer):
                if endpoint is None or endpoint.ip is None:
                    continue
                geo, asn = lookup(endpoint.ip)
                # Shared, read-only dicts: one per address, not one per event.
                if geo is not None:
                    endpoint.geo = geo
                if asn is not None:
                    endpoint.as_ = asn

    @ikefilter.hookimpl
    def ikefilter_unconfigure(self):
        self.close()

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        self.readers = []


plugin = GeoIP()
