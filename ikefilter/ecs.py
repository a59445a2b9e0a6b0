"""The output document: ECS fields as msgspec Structs, plus the vendor's ``clavister.*``.

Structs rather than dicts: building them is several times cheaper and they encode straight
to JSON or msgpack. Every field is optional except what every event carries, and ``None``
fields are left out of the output.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import msgspec

from .localtime import utc_text
from .sender import observer_host
from .severity import FACILITIES, LEVELS

ECS_VERSION = "9.5.0"


# gc=False: events never form reference cycles, and tracking millions of short-lived
# Structs made the collector a third of the run time.
class _S(msgspec.Struct, omit_defaults=True, gc=False):
    pass


# Frozen and shared: one per PRI (``SYSLOG``). A stage that changes them replaces them.
class SyslogCode(_S, frozen=True):
    code: int
    name: str | None = None


class Syslog(_S, frozen=True):
    priority: int
    facility: SyslogCode
    severity: SyslogCode


#: ``log.syslog`` of each PRI, 0-191
SYSLOG = tuple(
    Syslog(pri, SyslogCode(pri >> 3, FACILITIES[pri >> 3]), SyslogCode(pri & 7, LEVELS[pri & 7]))
    for pri in range(192)
)


class Log(_S):
    level: str
    syslog: Syslog | None = None


class EventFields(_S):
    # No default on what every event carries: omit_defaults would leave it out. module and
    # dataset are absent from the one kind of event that is not Clavister's (a record
    # tagged ikefilter_not_clavister).
    kind: str
    module: str | None = None
    dataset: str | None = None
    code: str | None = None
    action: str | None = None
    category: list[str] | None = None
    type: list[str] | None = None
    outcome: str | None = None
    reason: str | None = None
    severity: int | None = None
    original: str | None = None
    ingested: str | None = None
    # RFC 3339 UTC and nanoseconds: a tunnel's span, on the events that close or sum it up
    start: str | None = None
    end: str | None = None
    duration: int | None = None


class Interface(_S):
    name: str


class Ingress(_S):
    interface: Interface


class Observer(_S):
    vendor: str
    product: str
    type: str
    hostname: str | None = None
    ingress: Ingress | None = None
    ip: list[str] | None = None
    # What a site plugin knows of the firewall: its own name for it, and where it stands
    # (ECS ``observer.geo.*``; ``geo.name`` is the site, "boston-dc").
    name: str | None = None
    geo: dict | None = None


class Endpoint(_S):
    """``source`` or ``destination``: ``ip`` is always a valid IP; pseudonyms go to ``address``."""

    ip: str | None = None
    port: int | None = None
    address: str | None = None
    # ECS ``geo.*`` (country_iso_code, city_name, location {lat, lon}, ...) and ``as.*``
    # (number, organization {name}) as enrichment plugins write them.
    geo: dict | None = None
    as_: dict | None = msgspec.field(default=None, name="as")


class Network(_S):
    transport: str | None = None
    protocol: str | None = None
    type: str | None = None
    direction: str | None = None


class User(_S):
    name: str | None = None
    email: str | None = None
    domain: str | None = None


class Related(_S):
    ip: list[str] | None = None
    user: list[str] | None = None


class Error(_S):
    message: str


class Ecs(_S, frozen=True):
    version: str


class DataStream(_S, frozen=True):
    """``data_stream.*``: where the document belongs in Elasticsearch."""

    type: str
    dataset: str
    namespace: str


class Ike(_S):
    local_id: str | None = None
    remote_id: str | None = None
    local_spi: str | None = None
    remote_spi: str | None = None
    old_local_spi: str | None = None
    old_remote_spi: str | None = None
    initiator: bool | None = None
    algorithms: str | None = None
    version: int | None = None
    rekey_time: int | None = None
    reauth_time: int | None = None


class Ipsec(_S):
    inbound_spi: str | None = None
    outbound_spi: str | None = None
    old_inbound_spi: str | None = None
    old_outbound_spi: str | None = None
    protocol: str | None = None
    local_ts: str | None = None
    remote_ts: str | None = None
    lifetime: int | None = None


class IpPool(_S):
    name: str | None = None
    # An IP, mapped as one: redaction that yields a token writes it to ``token`` instead.
    address: Annotated[str, msgspec.Meta(extra={"mapping": "ip"})] | None = None
    count: int | None = None
    token: str | None = None


class Limit(_S):
    max: int | None = None


class Tunnel(_S):
    """``clavister.tunnel.*``: the tunnel session an event belongs to (the ``tunnels`` plugin)."""

    id: str | None = None
    state: str | None = None
    age: int | None = None  # seconds since the tunnel came up, at this event
    rekeys: int | None = None
    ipsec_sas: int | None = None
    ipsec_rekeys: int | None = None
    close_reason: str | None = None
    partial: bool | None = None  # its start was not seen: start and duration are lower bounds
    out_of_order: bool | None = None
    flaps: int | None = None


class Clavister(_S):
    """Vendor fields: what ECS has no place for, and everything the catalog does not list."""

    categories: list[str] | None = None
    prio: int | None = None
    rev: str | None = None
    event: str | None = None
    action: str | None = None
    iface: str | None = None
    original_severity: int | None = None
    ike: Ike | None = None
    ipsec: Ipsec | None = None
    ip_pool: IpPool | None = None
    limit: Limit | None = None
    tunnel: Tunnel | None = None
    extra: dict[str, str] | None = None


class Event(_S, rename={"timestamp": "@timestamp"}):
    """One normalized event, as written out."""

    timestamp: str
    event: EventFields
    message: str | None = None
    log: Log | None = None
    observer: Observer | None = None
    source: Endpoint | None = None
    destination: Endpoint | None = None
    network: Network | None = None
    user: User | None = None
    related: Related | None = None
    error: Error | None = None
    tags: list[str] | None = None
    clavister: Clavister | None = None
    ecs: Ecs | None = None
    labels: dict[str, str] | None = None
    data_stream: DataStream | None = None

    def endpoints(self, which: str = "remote") -> tuple[Endpoint | None, ...]:
        """``source`` and/or ``destination`` by role, for plugins that look up peers.

        ``remote`` is the other IKE peer: the destination when this firewall initiated
        (``clavister.ike.initiator`` true), else the source; ``local`` is this firewall's
        end, the other one of the two. ``source``, ``destination``, or ``both`` (source then
        destination). Always a tuple (of one item but for ``both``); items may be None.
        """
        if which in ("remote", "local"):
            ike = self.clavister.ike if self.clavister is not None else None
            initiated = ike is not None and bool(ike.initiator)
            remote_is_destination = initiated == (which == "remote")
            return (self.destination if remote_is_destination else self.source,)
        if which == "source":
            return (self.source,)
        if which == "destination":
            return (self.destination,)
        if which == "both":
            return (self.source, self.destination)
        raise ValueError(f"which: expected remote, local, source, destination or both, not "
                         f"{which!r}")

    def tag(self, *names: str) -> None:
        """Add tags, once each."""
        tags = self.tags if self.tags is not None else []
        for name in names:
            if name not in tags:
                tags.append(name)
        self.tags = tags

    def add_error(self, text: str) -> None:
        """Record why something went wrong; several reasons join with '; '."""
        self.error = Error(text if self.error is None else f"{self.error.message}; {text}")


def event_fields(**fields) -> EventFields:
    """``event.*`` with the values every Clavister event carries."""
    return EventFields("event", "clavister", "clavister.log", **fields)


def now() -> str:
    """The processing time, RFC 3339 UTC to the millisecond: ``@timestamp`` of an event that
    carries no time of its own. The one clock of the pipeline and its stages."""
    return utc_text(datetime.now(timezone.utc))


def failure(why: str, tags: list[str], timestamp: str, original: str | None = None, *,
            code: str | None = None, message: str | None = None,
            clavister: bool = True) -> Event:
    """The event written in place of an input that gave no normal one: ``why`` in
    ``error.message``, the input as received (``original``), when it was seen.

    :param clavister: False for a record that is not Clavister's at all: no
        ``event.module`` or ``event.dataset`` claims it.
    """
    fields = (event_fields(code=code, original=original) if clavister
              else EventFields("event", code=code, original=original))
    return Event(timestamp=timestamp, event=fields, message=message, tags=tags,
                 error=Error(why), ecs=ECS)


def invalid_time(event: Event, value: str | None) -> None:
    """Tag an event whose line carries no time and whose record's time (``value``, as sent),
    or else the shipper's (None), is not a date and time in the years 0001-9999: not used."""
    what = f"the record's time {value[:64]!r}" if value is not None else "the shipper's time"
    event.tag(TAG_INVALID_TIME)
    event.add_error(f"{what} is not a date and time in the years 0001-9999 and is not used")


def observer(host: str | None = None) -> Observer:
    """The firewall that logged an event, named by ``host``: ``observer.ip`` when that is an
    address, else ``observer.hostname``."""
    hostname, ips = observer_host(host)
    return Observer("Clavister", "cOS Stream", "firewall", hostname, ip=ips)


ECS = Ecs(ECS_VERSION)


# Tags written by the core.
TAG_PARSE_FAILURE = "ikefilter_parse_failure"
TAG_UNKNOWN_MESSAGE = "ikefilter_unknown_message"
TAG_INVALID_VALUE = "ikefilter_invalid_value"
TAG_NOT_CLAVISTER = "ikefilter_not_clavister"
TAG_TRUNCATED = "ikefilter_truncated"
TAG_INVALID_TIME = "ikefilter_invalid_time"
TAG_INTERNAL_ERROR = "ikefilter_internal_error"
TAG_UNENCODABLE = "ikefilter_unencodable"
