"""The sending host as ECS ``observer.*``: ``observer.ip`` when a header or record names it by
address (as syslog receivers' columns do), else ``observer.hostname``."""

from __future__ import annotations

from . import values

_CACHE_MAX = 4096
_hosts: dict[str | None, tuple[str | None, list[str] | None]] = {None: (None, None)}


def observer_host(host: str | None) -> tuple[str | None, list[str] | None]:
    """(``observer.hostname``, ``observer.ip``) of ``host``; each call gets its own list."""
    hit = _hosts.get(host)
    if hit is None:
        ip = values.valid_ip(host)
        hit = (host, None) if ip is None else (None, [ip])
        if len(_hosts) >= _CACHE_MAX:
            _hosts.clear()
            _hosts[None] = (None, None)
        _hosts[host] = hit
    name, ips = hit
    return name, ips if ips is None else list(ips)
