"""ikefilter plugin: label the remote IKE peer from a site table (CSV or TOML).

Each row has a ``network`` (an address or a CIDR network) and labels (``tunnel``, ``owner``,
``site``, or any other column), written to the event's ECS ``labels``. An address matches
its exact row first, then the longest network that holds it. Answers are cached per address.
"""

from __future__ import annotations

import csv
import ipaddress
import os
from typing import Literal

import msgspec

import ikefilter
from ikefilter._toml import load_toml

_MISS = object()
_CACHE_MAX = 1 << 16


class Options(msgspec.Struct, forbid_unknown_fields=True):
    """``[plugins.sitetable]``."""

    path: str
    peer: Literal["remote", "source", "destination", "both"] = "remote"


def read_table(path: str) -> dict[str, dict[str, str]]:
    """Network text -> labels, from a CSV file (header row) or a TOML file (``[[peer]]``)."""
    if path.endswith(".toml"):
        with open(path, "rb") as f:
            data = load_toml(f.read())
        rows = data.get("peer")
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected [[peer]] tables")
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    table: dict[str, dict[str, str]] = {}
    for number, row in enumerate(rows, 1):
        network = row.get("network") if isinstance(row, dict) else None
        if not network:
            raise ValueError(f"{path}: row {number} has no network")
        labels = {}
        for key, value in row.items():
            if key == "network" or value in (None, ""):
                continue
            if not isinstance(value, str):
                raise ValueError(f"{path}: row {number}: {key} must be text")
            labels[key.strip().lower()] = value
        table[network.strip()] = labels
    return table


class Lookup:
    """Exact addresses, then the longest matching prefix; one dict per prefix length."""

    def __init__(self, table: dict[str, dict[str, str]]):
        self.exact: dict[str, dict[str, str]] = {}
        self.by_prefix: dict[tuple[int, int], dict[int, dict[str, str]]] = {}
        for text, labels in table.items():
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"site table: {text!r} is not an address or network") \
                    from None
            if net.prefixlen == net.max_prefixlen:
                self.exact[str(net.network_address)] = labels
            else:
                key = (net.version, net.prefixlen)
                self.by_prefix.setdefault(key, {})[int(net.network_address)] = labels
        # longest first
        self.prefixes = sorted(self.by_prefix, key=lambda k: -k[1])
        self.cache: dict[str, dict[str, str] | None] = {}

    def __call__(self, ip: str) -> dict[str, str] | None:
        hit = self.cache.get(ip, _MISS)
        if hit is not _MISS:
            return hit
        hit = self.exact.get(ip)
        if hit is None and self.prefixes:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                addr = None
            if addr is not None:
                value, bits = int(addr), addr.max_prefixlen
                for version, plen in self.prefixes:
                    if version != addr.version:
                        continue
                    net = value >> (bits - plen) << (bits - plen)
                    hit = self.by_prefix[(version, plen)].get(net)
                    if hit is not None:
                        break
        if len(self.cache) >= _CACHE_MAX:
            self.cache.clear()
        self.cache[ip] = hit
        return hit


class SiteTable:
    """The plugin object; the entry point registers :data:`plugin`."""

    name = "sitetable"

    def __init__(self) -> None:
        self.lookup: Lookup | None = None

    @ikefilter.hookimpl
    def ikefilter_config_tables(self):
        return {"sitetable": Options}

    @ikefilter.hookimpl
    def ikefilter_configure(self, config, info):
        options: Options | None = config.plugins.get("sitetable")
        if options is None:
            self.lookup = None
            return
        path = options.path
        if info.config_path and not os.path.isabs(path):
            path = os.path.join(os.path.dirname(os.path.abspath(info.config_path)), path)
        self.lookup = Lookup(read_table(path))
        self.peer = options.peer

    @ikefilter.hookimpl
    def ikefilter_enrich(self, events):
        lookup = self.lookup
        if lookup is None:
            return
        peer = self.peer
        for event in events:
            for endpoint in event.endpoints(peer):
                if endpoint is None or endpoint.ip is None:
                    continue
                labels = lookup(endpoint.ip)
                if labels:
                    if event.labels is None:
                        event.labels = dict(labels)
                    else:
                        event.labels.update(labels)
                    break


plugin = SiteTable()
