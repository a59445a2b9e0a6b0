"""Built-in redaction, configured by ``[redact]``: a plugin like any site's.

docs/config.md, `[redact]`, is the contract. Two classes of value, each with its own mode:

* IP addresses (``ip``): ``keep``, ``mask`` (``0.0.0.0`` / ``::``), ``truncate`` (to
  ``ipv4_prefix`` / ``ipv6_prefix`` bits), ``cryptopan`` (prefix-preserving), ``hmac``
  (a keyed token; not an IP, so it goes to ``*.address`` and ``*.ip`` is removed).
* Identities (``identity``): IKE local/remote IDs and user names: ``keep``, ``mask``
  (``redacted``), ``hmac``.

Every copy is covered: ``source``/``destination``, ``related.ip``/``related.user``,
``user.name``/``email``/``domain``, ``clavister.ike.local_id``/``remote_id``,
``clavister.ip_pool.address`` (a token goes to ``clavister.ip_pool.token``), the traffic
selectors, ``clavister.extra`` (where an invalid value is kept raw), ``observer.ip`` (a
token goes to ``observer.hostname``) and an ``observer.hostname`` that is an IP, and any
free text (``message`` when it is not the
catalog's text, ``error.message``, ``event.reason``). ``event.original`` is removed.

It fails closed: with identities redacted, every identity of an event is also replaced
wherever its text appears in that event's free text, and every other value under
``clavister.extra`` (a parameter it does not know, a value that did not fit its field) is
redacted as an identity unless ``keep_extra`` names it. SPIs are
kept (they identify tunnels, not people). Addresses in ``keep_networks`` (the firewall's own)
are kept as they are.

Keyed modes are stable across runs and hosts that share the key; every pseudonym is cached
for the life of the process, so a repeated value costs one dict lookup.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable

from .. import hookimpl
from ..config import PipelineInfo, SiteConfig
from ..ecs import Event
from ..values import extra_name, valid_ip
from .pseudonym import CryptoPAn, keyed_token, load_key, mac_key, truncate_ip

MASK = "redacted"
_MASK_IP = {4: "0.0.0.0", 6: "::"}
_CACHE_MAX = 1 << 15


def _remember(cache: dict, key: str, value):
    """Cache ``value`` under ``key``, emptying the cache when full; returns ``value``."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


# Parameter names, as they reach clavister.extra (unknown messages, invalid values).
IP_PARAMS = frozenset({"localip", "remoteip", "srcip", "destip", "ip"})
IDENTITY_PARAMS = frozenset({"localid", "remoteid", "userid"})

_V4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_V6 = r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}"
_IP_TEXT = re.compile(rf"(?<![\w.:])(?:{_V4}|{_V6})(?![\w:]|\.\d)")
_ID_PAIR = re.compile(
    r"""(?P<pre>\b(?:localid|remoteid|userid)=)(?P<val>"(?:[^"\\]|\\.)*"?|[^\s\]]*)"""
    r"""|(?P<jpre>"(?:localid|remoteid|userid)"\s*:\s*)(?P<jval>"(?:[^"\\]|\\.)*")"""
)


class RedactPlugin:
    """Redaction from ``[redact]``; inactive while both modes are ``keep``."""

    def __init__(self) -> None:
        self.active = False
        self.ip: Callable[[str], tuple[str, bool]] | None = None
        self.identity: Callable[[str], str] | None = None

    # -- setup ------------------------------------------------------------------------------

    @hookimpl
    def ikefilter_configure(self, config: SiteConfig, info: PipelineInfo) -> None:
        r = config.redact
        self.active = r.enabled
        self.ip = self.identity = None
        self._ips: dict[str, tuple[str, bool]] = {}
        self._ids: dict[str, str] = {}
        self._texts: dict[str, str] = {}
        self._raw_ips: dict[str, str] = {}
        self._selectors: dict[str, str] = {}
        # a name as sent (x.y) or as written (x_y): the field clavister.extra.x_y
        self._keep_extra = frozenset(map(extra_name, r.keep_extra))
        self._extra_closed = r.identity != "keep"
        if not self.active:
            return
        key = b""
        if r.needs_key:
            env, path = r.key_source
            try:
                key = load_key(env, path)
            except ValueError as exc:
                # load_key names the variable or file, never the key.
                modes = f"ip = {r.ip!r}, identity = {r.identity!r}"
                raise ValueError(f"[redact] {modes} needs a key: {exc}") from None
        self._key = key
        self._length = r.token_length
        self._keep = _Networks(r.keep_networks)
        if r.ip != "keep":
            self._ip_pseudonym = self._ip_function(r.ip, key, r.ipv4_prefix, r.ipv6_prefix)
            self.ip = self._ip_cached
        if r.identity != "keep":
            self.identity = self._id_cached
            self._id_pseudonym = token_function(key, self._length) if r.identity == "hmac" \
                else (lambda value: MASK)
        elif self.ip is not None:
            # An IKE ID may be an IP address: with identities kept, it is still an IP.
            self.identity = self._id_as_ip

    def _ip_function(self, mode: str, key: bytes, v4: int, v6: int
                     ) -> Callable[[str], tuple[str, bool]]:
        if mode == "mask":
            return lambda ip: (_MASK_IP[6 if ":" in ip else 4], True)
        if mode == "truncate":
            return lambda ip: (truncate_ip(ip, v4, v6), True)
        if mode == "cryptopan":
            pan = CryptoPAn.from_secret(key)
            return lambda ip: (pan.anonymize(ip), True)
        token = token_function(key, self._length)
        return lambda ip: (token(ip), False)

    # -- pseudonyms, cached per process -----------------------------------------------------

    def _ip_cached(self, ip: str) -> tuple[str, bool]:
        """A valid IP's pseudonym and whether it is still an IP."""
        hit = self._ips.get(ip)
        if hit is None:
            hit = _remember(self._ips, ip,
                            (ip, True) if self._keep.contains(ip) else self._ip_pseudonym(ip))
        return hit

    def _ip_text(self, raw: str) -> str:
        """Any text that stood where an IP belongs (perhaps not a valid one)."""
        ip = valid_ip(raw)
        if ip is not None:
            return self._ip_cached(ip)[0]
        hit = self._raw_ips.get(raw)
        if hit is None:
            hit = _remember(self._raw_ips, raw,
                            keyed_token(self._key, raw, self._length) if self._key else MASK)
        return hit

    def _id_cached(self, value: str) -> str:
        hit = self._ids.get(value)
        if hit is None:
            hit = _remember(self._ids, value, self._id_pseudonym(value))
        return hit

    def _id_as_ip(self, value: str) -> str:
        ip = valid_ip(value)
        return value if ip is None else self._ip_cached(ip)[0]

    def scrub(self, text: str) -> str:
        """Free text with every IP and ``localid=``/``remoteid=``/``userid=`` value replaced."""
        hit = self._texts.get(text)
        if hit is not None:
            return hit
        out = text
        if self.identity is not None:
            out = _ID_PAIR.sub(self._replace_pair, out)
        if self.ip is not None:
            out = _IP_TEXT.sub(self._replace_ip, out)
        return _remember(self._texts, text, out)

    def _selector(self, text: str) -> str:
        """A traffic selector: ``address/length`` (fast path), else any text. Cached."""
        hit = self._selectors.get(text)
        if hit is not None:
            return hit
        addr, sep, length = text.partition("/")
        ip = valid_ip(addr)
        if ip is not None and (not sep or length.isdigit()):
            hit = self._ip_cached(ip)[0] + sep + length
        else:
            hit = self.scrub(text)
        return _remember(self._selectors, text, hit)

    def _replace_pair(self, m: re.Match) -> str:
        if m["pre"] is not None:
            raw = m["val"]
            quoted = raw.startswith('"')
            value = raw.strip('"').replace('\\"', '"') if quoted else raw
            new = self.identity(value) if value else value
            return m["pre"] + (f'"{new}"' if quoted or " " in new else new)
        value = m["jval"][1:-1].replace('\\"', '"')
        return m["jpre"] + '"' + self.identity(value).replace('"', '\\"') + '"'

    def _replace_ip(self, m: re.Match) -> str:
        ip = valid_ip(m[0])
        return m[0] if ip is None else self._ip_cached(ip)[0]

    # -- the batch --------------------------------------------------------------------------

    @hookimpl
    def ikefilter_redact(self, events: list[Event]) -> None:
        if not self.active:
            return None
        ipf = self.ip
        idf = self.identity
        # The caches' own lookups, inline: a call per value costs more than the lookup.
        ip_hit = self._ips.get
        id_hit = self._ids.get
        closed = self._extra_closed
        for ev in events:
            ev.event.original = None
            # the identities as they came, to be found again in the event's free text: read
            # before they are replaced, and only for an event that has such text
            known = _identities(ev) if closed and (
                ev.event.reason is not None or ev.error is not None
                or (ev.message is not None and ev.event.action is None)) else None
            if ipf is not None:
                for ep in (ev.source, ev.destination):
                    if ep is not None and ep.ip is not None:
                        value, is_ip = ip_hit(ep.ip) or ipf(ep.ip)
                        if is_ip:
                            ep.ip = value
                        else:
                            ep.ip, ep.address = None, value
                obs = ev.observer
                if obs is not None:
                    if obs.hostname is not None:
                        host = valid_ip(obs.hostname)
                        if host is not None:
                            obs.hostname = ipf(host)[0]
                    if obs.ip is not None:
                        pairs = [ip_hit(ip) or ipf(ip) for ip in obs.ip]
                        obs.ip = [value for value, is_ip in pairs if is_ip] or None
                        tokens = [value for value, is_ip in pairs if not is_ip]
                        if tokens:
                            obs.hostname = tokens[0]
            rel = ev.related
            if rel is not None:
                if ipf is not None and rel.ip:
                    kept = []
                    for ip in rel.ip:
                        value, is_ip = ip_hit(ip) or ipf(ip)
                        if is_ip and value not in kept:
                            kept.append(value)
                    rel.ip = kept or None
                if idf is not None and rel.user:
                    users = []
                    for name in rel.user:
                        value = id_hit(name) or idf(name)
                        if value not in users:
                            users.append(value)
                    rel.user = users
                if rel.ip is None and rel.user is None:
                    ev.related = None
            user = ev.user
            if idf is not None and user is not None:
                if user.name is not None:
                    user.name = id_hit(user.name) or idf(user.name)
                if user.email is not None:
                    user.email = id_hit(user.email) or idf(user.email)
                if user.domain is not None:
                    user.domain = id_hit(user.domain) or idf(user.domain)
            clav = ev.clavister
            if clav is not None:
                ike = clav.ike
                if ike is not None and idf is not None:
                    if ike.local_id is not None:
                        ike.local_id = id_hit(ike.local_id) or idf(ike.local_id)
                    if ike.remote_id is not None:
                        ike.remote_id = id_hit(ike.remote_id) or idf(ike.remote_id)
                if ipf is not None:
                    pool = clav.ip_pool
                    if pool is not None and pool.address is not None:
                        value, is_ip = ip_hit(pool.address) or ipf(pool.address)
                        if is_ip:
                            pool.address = value
                        else:
                            pool.address, pool.token = None, value
                    ipsec = clav.ipsec
                    if ipsec is not None:
                        if ipsec.local_ts is not None:
                            ipsec.local_ts = self._selector(ipsec.local_ts)
                        if ipsec.remote_ts is not None:
                            ipsec.remote_ts = self._selector(ipsec.remote_ts)
                if clav.extra:
                    clav.extra = self._extra(clav.extra)
            reason = ev.event.reason
            if reason is not None:
                ev.event.reason = self._free(reason, known)
            if ev.message is not None and ev.event.action is None:
                # Not the catalog's text: an undecoded line, or a non-Clavister record.
                ev.message = self._free(ev.message, known)
            if ev.error is not None:
                ev.error.message = self._free(ev.error.message, known)
        return None

    def _free(self, text: str, known: list[str] | None) -> str:
        """Free text scrubbed, then every identity of its event replaced in it."""
        text = self.scrub(text)
        if known:
            for value in known:
                if value in text:
                    text = text.replace(value, self.identity(value))
        return text

    def _extra(self, extra: dict[str, str]) -> dict[str, str]:
        out = {}
        for name, value in extra.items():
            if name in IP_PARAMS and self.ip is not None:
                out[name] = self._ip_text(value) if value else value
            elif name in IDENTITY_PARAMS and self.identity is not None:
                out[name] = self.identity(value) if value else value
            elif self._extra_closed and name not in self._keep_extra:
                out[name] = self.identity(value) if value else value
            else:
                out[name] = self.scrub(value)
        return out


def _identities(ev: Event) -> list[str]:
    """The identity values of an event as they came, longest first (so that one holding
    another is replaced whole)."""
    found = set()
    ike = ev.clavister.ike if ev.clavister is not None else None
    if ike is not None:
        found.update(v for v in (ike.local_id, ike.remote_id) if v)
    user = ev.user
    if user is not None:
        found.update(v for v in (user.name, user.email) if v)
    if ev.related is not None and ev.related.user:
        found.update(u for u in ev.related.user if u)
    extra = ev.clavister.extra if ev.clavister is not None else None
    if extra:
        found.update(v for k, v in extra.items() if k in IDENTITY_PARAMS and v)
    return sorted(found, key=len, reverse=True)


def token_function(key: bytes, length: int) -> Callable[[str], str]:
    """:func:`~ikefilter.plugins.pseudonym.keyed_token` with the keyed state built once: the same
    tokens, at half the cost of a call per value."""
    base = hashlib.blake2b(key=mac_key(key), digest_size=32)

    def token(value: str) -> str:
        h = base.copy()
        h.update(value.encode("utf-8"))
        return h.hexdigest()[:length]

    return token


class _Networks:
    """Membership in a few networks; the caller caches the answer per address."""

    def __init__(self, networks: list[str]):
        self.nets = [ipaddress.ip_network(n, strict=False) for n in networks]

    def contains(self, ip: str) -> bool:
        if not self.nets:
            return False
        addr = ipaddress.ip_address(ip)
        return any(addr.version == n.version and addr in n for n in self.nets)
