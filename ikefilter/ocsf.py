"""The OCSF output profile: each ECS event of a batch rendered as an OCSF document.

The one place an event becomes OCSF. It runs on the pipeline's output, after the site
stages, so enrichment, redaction and severity rules reach both schemas alike; the class and
activity of each message, and every other OCSF fact, come from ``catalog/ike-ocsf.toml``
(:mod:`ikefilter.ocsf_mapping`).

A document is built from the event's ECS form: each part with an OCSF home moves there
(``source`` to ``src_endpoint``, ``event.reason`` to ``status_detail``, ...), constants of
ECS are dropped, and whatever is left (``clavister.*``, ``labels``, ``error``, and any field
this module does not know) goes to ``unmapped`` under its ECS name, so nothing is lost and a
new ECS field never makes a document invalid. An event whose message the mapping lacks (an
unknown ID, a parse failure, a line that is not Clavister's) is a base event (class 0) that
carries its tags in ``metadata.labels`` and the line in ``raw_data`` where it was kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Literal, get_args

import msgspec

from . import ecs
from .ocsf_mapping import BASE_CLASS, Mapping, MessageClass, OcsfClass
from .ocsf_mapping import load as load_mapping
from .values import valid_ip

Schema = Literal["ecs", "ocsf"]
SCHEMAS: tuple[str, ...] = get_args(Schema)
PROFILES = ["datetime", "host"]  # time_dt; device

DEVICE_FIREWALL = (9, "Firewall")
# ECS network.direction, then clavister.ike.initiator, to connection_info.direction_id
DIRECTIONS = {"inbound": (1, "Inbound"), "outbound": (2, "Outbound"),
              "internal": (3, "Lateral")}
BY_INITIATOR = {True: DIRECTIONS["outbound"], False: DIRECTIONS["inbound"]}
UNKNOWN_DIRECTION = (0, "Unknown")
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "esp": 50, "ah": 51, "icmp": 1, "ipv6-icmp": 58}
IP_VERSIONS = {"ipv4": 4, "ipv6": 6}
OBSERVABLE_IP = (2, "IP Address")
# OCSF's email_t, as the 1.8 dictionary defines it
EMAIL = re.compile(r"^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$")
OBSERVABLE_USER = (4, "User Name")

# ECS geo.* and as.* to OCSF location and autonomous_system
GEO = (("city_name", "city"), ("country_iso_code", "country"), ("continent_name", "continent"),
       ("region_iso_code", "region"), ("postal_code", "postal_code"))
USER = (("name", "name"), ("id", "uid"), ("domain", "domain"), ("email", "email_addr"),
        ("full_name", "full_name"))
# What ECS writes that OCSF states its own way (class, metadata, observables): not unmapped.
EVENT_DONE = frozenset(("kind", "module", "dataset", "code", "category", "type", "outcome",
                        "reason", "severity", "original"))
OBSERVER_DONE = ("vendor", "product", "type", "hostname")


class _S(msgspec.Struct, omit_defaults=True, gc=False):
    pass


class Document(_S):
    """One OCSF event as written out; a class's own attributes are set only for it."""

    class_uid: int
    class_name: str
    category_uid: int
    category_name: str
    activity_id: int
    activity_name: str
    type_uid: int
    type_name: str
    severity_id: int
    severity: str
    time: int
    time_dt: str
    metadata: dict
    status_id: int | None = None
    status: str | None = None
    status_detail: str | None = None
    message: str | None = None
    device: dict | None = None
    src_endpoint: dict | None = None
    dst_endpoint: dict | None = None
    connection_info: dict | None = None
    session: dict | None = None
    tunnel_interface: dict | None = None
    protocol_name: str | None = None
    app_protocol_name: str | None = None
    user: dict | None = None
    service: dict | None = None
    app: dict | None = None
    observables: list[dict] | None = None
    raw_data: str | None = None
    unmapped: dict | None = None


class Renderer:
    """Built once per process; called once per batch with the pipeline's output.

    :param mapping: the OCSF mapping (the shipped ``catalog/ike-ocsf.toml`` by default).
    """

    def __init__(self, mapping: Mapping | None = None):
        self.mapping = m = mapping or load_mapping()
        self.base = m.classes[BASE_CLASS]
        self.messages = {str(i): c for i, c in m.messages.items()}
        self.reasons = {str(i): [r for r in m.reasons if i in r.messages]
                        for i in m.messages if any(i in r.messages for r in m.reasons)}
        self.product = {"vendor_name": m.product.vendor_name, "name": m.product.name}
        self.severity = [(i, m.severity.names[i]) for i in m.severity.by_syslog_code]
        self.unknown_severity = (0, m.severity.names[0])
        self.status = {"success": m.status.success, "failure": m.status.failure,
                       "unknown": m.status.unknown}
        self._times: dict[str, tuple[int, str]] = {}

    def __call__(self, out: list) -> list:
        """``out`` with each ECS event replaced by its document; other items (records
        passed through, ``None``) stay as they are."""
        event_type, document = ecs.Event, self.document
        return [document(item) if type(item) is event_type else item for item in out]

    # -- one event --------------------------------------------------------------------------

    def document(self, event: ecs.Event) -> Document:
        """The OCSF document of one ECS event."""
        entry = self._entry(event)
        d = msgspec.to_builtins(event)
        if entry is None:
            return self._document(self.base, BASE_CLASS, 0, self.base.activities[0], d, {})
        cls = self.mapping.classes[entry.class_uid]
        name = entry.activity_name or cls.activities[entry.activity_id]
        if cls is self.base:
            return self._document(cls, BASE_CLASS, entry.activity_id, name, d, {})
        attrs = self._class_attributes(cls, entry, d)
        if _meets(cls, attrs):
            return self._document(cls, entry.class_uid, entry.activity_id, name, d, attrs)
        # The class's constraints are out of this event's reach (a line without its
        # addresses, say): the base event, named for the activity it would have been.
        return self._document(self.base, BASE_CLASS, 99, name, msgspec.to_builtins(event), {})

    def _entry(self, event: ecs.Event) -> MessageClass | None:
        code = event.event.code
        entry = self.messages.get(code) if code is not None else None
        if entry is not None and code in self.reasons and event.event.reason:
            reason = event.event.reason.lower()
            for rule in self.reasons[code]:
                if any(word in reason for word in rule.contains):
                    return rule
        return entry

    def _class_attributes(self, cls: OcsfClass, entry: MessageClass, d: dict) -> dict:
        """The class's own attributes this event fills, taken out of ``d``."""
        has = cls.attributes
        attrs: dict[str, Any] = {}
        clavister = d.get("clavister") or {}
        ike = clavister.get("ike") or {}
        network = d.get("network")
        for ecs_name, name in (("source", "src_endpoint"), ("destination", "dst_endpoint")):
            if name in has and ecs_name in d:
                endpoint = _endpoint(d[ecs_name])
                if endpoint is not None:
                    attrs[name] = endpoint
                _prune(d, ecs_name)
        if "connection_info" in has and network and ("transport" in network or "type" in network):
            attrs["connection_info"] = _connection(network, ike.get("initiator"))
        if "app_protocol_name" in has and network and "protocol" in network:
            attrs["app_protocol_name"] = network.pop("protocol")
        if network is not None:
            _prune(d, "network")
        if "session" in has:
            session = _session(ike, clavister.get("ipsec") or {})
            if session is not None:
                attrs["session"] = session
        if "tunnel_interface" in has:
            interface = _tunnel_interface(clavister)
            if interface is not None:
                attrs["tunnel_interface"] = interface
        if "protocol_name" in has and cls.protocol_name is not None:
            attrs["protocol_name"] = cls.protocol_name
        if "user" in has:
            user = _user(d)
            if user is None and "user" in cls.required and ike.get("remote_id"):
                user = {"name": ike["remote_id"]}  # the peer's identity is the one logging on
            if user is not None:
                attrs["user"] = user
        if "service" in has and entry.service is not None:
            attrs["service"] = {"name": entry.service}
        if "app" in has and entry.app is not None:
            attrs["app"] = {"name": entry.app, "vendor_name": self.product["vendor_name"]}
        return attrs

    def _document(self, cls: OcsfClass, class_uid: int, activity_id: int, activity_name: str,
                  d: dict, attrs: dict) -> Document:
        stamp = d.pop("@timestamp")
        time, time_dt = self._time(stamp)
        ev = d.pop("event")
        severity = ev.get("severity")
        severity_id, severity_name = (self.severity[severity] if type(severity) is int
                                      and 0 <= severity <= 7 else self.unknown_severity)
        status = self.status.get(ev.get("outcome"))
        log = d.pop("log", None) or {}
        metadata: dict[str, Any] = {"version": self.mapping.version, "product": self.product,
                                    "profiles": PROFILES}
        if ev.get("dataset") is not None:  # a record not Clavister's names none
            metadata["log_name"] = ev["dataset"]
        if ev.get("code") is not None:
            metadata["event_code"] = ev["code"]
        ingested = ev.pop("ingested", None)
        if ingested is not None:  # when this event was taken in: ECS event.ingested
            metadata["processed_time"], metadata["processed_time_dt"] = self._time(ingested)
        if log.get("level"):
            metadata["log_level"] = log.pop("level")
        tags = d.pop("tags", None)
        if tags:
            metadata["labels"] = tags
        message = d.pop("message", None)
        if message is None and class_uid == BASE_CLASS:
            message = (d.get("error") or {}).get("message")
        doc = Document(
            class_uid=class_uid, class_name=cls.name,
            category_uid=cls.category_uid, category_name=cls.category_name,
            activity_id=activity_id, activity_name=activity_name,
            type_uid=class_uid * 100 + activity_id, type_name=f"{cls.name}: {activity_name}",
            severity_id=severity_id, severity=severity_name, time=time, time_dt=time_dt,
            metadata=metadata, message=message, status_detail=ev.get("reason"),
            raw_data=ev.get("original"), device=_device(d), **attrs,
        )
        if status is not None:
            doc.status_id, doc.status = status
        doc.observables = _observables(doc)
        if not ev.keys() <= EVENT_DONE:
            d["event"] = {key: value for key, value in ev.items() if key not in EVENT_DONE}
        if log:
            d["log"] = log
        d.pop("related", None)  # every IP and user of the event: observables hold them
        d.pop("ecs", None)
        d.pop("data_stream", None)  # where Elasticsearch files an ECS document
        if d:
            doc.unmapped = d
        return doc

    def _time(self, stamp: str) -> tuple[int, str]:
        """Epoch milliseconds and RFC 3339 text of an ``@timestamp`` (cached: a batch's
        events share a few)."""
        done = self._times.get(stamp)
        if done is None:
            if len(self._times) >= 4096:
                self._times.clear()
            try:
                when = datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                when = datetime.now(timezone.utc)
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            when = when.astimezone(timezone.utc)
            ms = round(when.timestamp() * 1000)
            text = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            done = self._times[stamp] = (ms, text)
        return done


def _meets(cls: OcsfClass, attrs: dict) -> bool:
    return cls.required <= attrs.keys() and (
        not cls.at_least_one or any(name in attrs for name in cls.at_least_one))


def _prune(d: dict, key: str) -> None:
    if not d.get(key):
        d.pop(key, None)


def _endpoint(e: dict) -> dict | None:
    """``network_endpoint`` of an ECS ``source``/``destination`` (what it took is removed
    from ``e``); None when it has no address (a port alone is no endpoint)."""
    ip, address = e.get("ip"), e.get("address")
    if ip is None and address is None:
        return None
    out: dict[str, Any] = {}
    if ip is not None:
        out["ip"] = e.pop("ip")
    if address is not None:
        canonical = valid_ip(address) if ip is None else None
        # A pseudonym that is not an IP (redaction's hmac) identifies the endpoint.
        out["ip" if canonical else "uid"] = canonical or address
        e.pop("address")
    if "port" in e:
        out["port"] = e.pop("port")
    geo = e.get("geo")
    if geo:
        location = {name: geo.pop(key) for key, name in GEO if key in geo}
        point = geo.get("location")
        if isinstance(point, dict) and "lat" in point and "lon" in point:
            location["lat"], location["long"] = point["lat"], point["lon"]
            geo.pop("location")
        if location:
            out["location"] = location
        _prune(e, "geo")
    number = e.get("as")
    if number:
        org = number.get("organization")
        system = {}
        if "number" in number:
            system["number"] = number.pop("number")
        if isinstance(org, dict) and "name" in org:
            system["name"] = org.pop("name")
            if not org:
                number.pop("organization")
        if system:
            out["autonomous_system"] = system
        _prune(e, "as")
    return out


def _connection(network: dict, initiator: bool | None) -> dict:
    """``network_connection_info`` from ECS ``network`` (taken out of it)."""
    direction = network.pop("direction", None)
    direction_id, direction_name = (DIRECTIONS.get(direction) if direction
                                    else BY_INITIATOR.get(initiator)) or UNKNOWN_DIRECTION
    out: dict[str, Any] = {"direction_id": direction_id, "direction": direction_name}
    transport = network.pop("transport", None)
    if transport is not None:
        out["protocol_name"] = transport
        if transport in PROTOCOL_NUMBERS:
            out["protocol_num"] = PROTOCOL_NUMBERS[transport]
    version = network.pop("type", None)
    if version is not None:
        out["protocol_ver_id"] = IP_VERSIONS.get(version, 99)
        out["protocol_ver"] = version
    if direction is not None and direction not in DIRECTIONS:
        network["direction"] = direction  # a value with no OCSF id stays as sent
    return out


def _session(ike: dict, ipsec: dict) -> dict | None:
    """The tunnel's session: the IKE SA (its SPIs, this firewall's first) as ``uid``, which
    every event of one tunnel shares; the IPsec SA's SPIs as ``uid_alt``."""
    uid = _pair(ike.get("local_spi"), ike.get("remote_spi"))
    alt = _pair(ipsec.get("inbound_spi"), ipsec.get("outbound_spi"))
    if not uid and not alt:
        return None
    out: dict[str, Any] = {"is_vpn": True}
    if uid:
        out["uid"] = uid
    if alt:
        out["uid_alt"] = alt
    return out


def _pair(first: str | None, second: str | None) -> str:
    """``first:second``, or the one of them there is ("" for none)."""
    if first and second:
        return f"{first}:{second}"
    return first or second or ""


def _tunnel_interface(clavister: dict) -> dict | None:
    """``clavister.iface`` and the inner address of an IP pool message."""
    out: dict[str, Any] = {}
    if clavister.get("iface"):
        out["name"] = clavister.pop("iface")
    pool = clavister.get("ip_pool")
    if pool and pool.get("address") and valid_ip(pool["address"]):
        out["ip"] = pool.pop("address")
    return out or None


def _user(d: dict) -> dict | None:
    user = d.get("user")
    if not user or ("name" not in user and "id" not in user):
        return None  # no one to name: what there is stays under ``unmapped``
    # A pseudonym (redaction) is no e-mail address: it stays under ``unmapped``.
    bad = "email" in user and not EMAIL.match(user["email"])
    kept = {"email": user.pop("email")} if bad else {}
    out = {name: user.pop(key) for key, name in USER if key in user}
    user.update(kept)
    _prune(d, "user")
    return out


def _device(d: dict) -> dict | None:
    """The firewall that logged the event, when it is named (host or interface)."""
    observer = d.pop("observer", None)
    if not observer:
        return None
    out: dict[str, Any] = {"type_id": DEVICE_FIREWALL[0], "type": DEVICE_FIREWALL[1],
                           "vendor_name": observer.get("vendor")}
    if observer.get("hostname"):
        out["hostname"] = observer["hostname"]
    ingress = observer.get("ingress") or {}
    interface = (ingress.get("interface") or {}).get("name")
    if interface:
        out["interface_name"] = interface
        ingress["interface"].pop("name")
        if not ingress["interface"]:
            ingress.pop("interface")
        if not ingress:
            observer.pop("ingress")
    for key in OBSERVER_DONE:
        observer.pop(key, None)
    if observer:
        d["observer"] = observer  # what an enrichment added
    return out if ("hostname" in out or "interface_name" in out) else None


def _observables(doc: Document) -> list[dict] | None:
    out = []
    for name, endpoint in (("src_endpoint", doc.src_endpoint), ("dst_endpoint", doc.dst_endpoint),
                           ("tunnel_interface", doc.tunnel_interface)):
        if endpoint is not None and "ip" in endpoint:
            out.append({"name": f"{name}.ip", "type_id": OBSERVABLE_IP[0],
                        "type": OBSERVABLE_IP[1], "value": endpoint["ip"]})
    if doc.user is not None and "name" in doc.user:
        out.append({"name": "user.name", "type_id": OBSERVABLE_USER[0],
                    "type": OBSERVABLE_USER[1], "value": doc.user["name"]})
    return out or None


def renderer(schema: str) -> Callable[[list], list] | None:
    """The pipeline's output step for ``schema``: None for ECS (events go out as they are)."""
    if schema == "ecs":
        return None
    if schema == "ocsf":
        return Renderer()
    raise ValueError(f"schema: expected one of {', '.join(SCHEMAS)}, not {schema!r}")
