"""Where a shipper puts things in a record it decoded: the raw line, the time, the host, PRI."""

from __future__ import annotations

from .wire import utc_iso

# Where a shipper puts the raw line, in the order they are tried (Fluent Bit/Fluentd `log`,
# Logstash/Vector `message`, rsyslog `rawmsg`, syslog-ng `MESSAGE`, rsyslog `msg`).
DEFAULT_SOURCE_KEYS = ("log", "message", "rawmsg", "MESSAGE", "msg")
TIME_KEYS = ("@timestamp", "timestamp", "time", "timereported", "DATE")
# A shipper's event time that is not a time (out of range, unreadable): falsy, like no time.
INVALID_TIME = ""
HOST_KEYS = ("host", "hostname", "HOST", "fromhost")
# Keys a shipper adds to a record whose pairs it already split; not Clavister parameters.
RECORD_META = frozenset(TIME_KEYS + HOST_KEYS + ("tag", "source", "pri", "severity", "facility"))


def first_str(record: dict, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` whose value is a non-empty string."""
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def lent_time(record: dict | None, time: str | None, shipper: str | None
              ) -> tuple[str | None, str | None, bool]:
    """The time of a line that has ``time`` (None: none of its own), else its record's, else
    the shipper's (``INVALID_TIME``: one that is not a time). With it: the record's time as
    sent, when it was passed over as not a time, and whether the shipper's was. The one rule
    of the batch lane and the per-record path."""
    if time is not None:
        return time, None, False
    bad = None
    if record is not None:
        bad = first_str(record, TIME_KEYS)
        if bad is not None:
            time = utc_iso(bad)
            if time is not None:
                return time, None, False
    return shipper or None, bad, shipper == INVALID_TIME


def record_host(record: dict) -> str | None:
    return first_str(record, HOST_KEYS)


def record_pri(record: dict) -> int | None:
    """The record's ``pri`` (text or number) when it is a valid syslog PRI, 0-191."""
    return pri_of(record.get("pri"))


def pri_of(value: object) -> int | None:
    """``value`` (text or number) as a syslog PRI when it is a valid one, 0-191."""
    try:
        pri = int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return None
    return pri if pri is not None and 0 <= pri < 192 else None
