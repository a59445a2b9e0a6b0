"""Times that carry no zone, read in the site's zone (``[time] zone``), written as RFC 3339 UTC.

A Clavister device writes its bracketed time, and an RFC 3164 header or a syslog receiver
its column, in whatever zone the device or receiver runs in, without saying which. Read in
an IANA zone (``zoneinfo``), each becomes UTC by that zone's rules on that date: summer time
is applied where it was in force. A wall-clock time that occurs twice (the hour repeated
when summer time ends) is read as the first of the two; one that never occurs (the hour
skipped when it starts) is read with the offset in force before the change.

Every time written is :func:`utc_text`'s form: ``YYYY-MM-DDThh:mm:ss.mmmZ``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_CACHE_MAX = 4096
_MISS = object()


def utc_text(dt: datetime) -> str:
    """``dt`` (aware, or naive UTC) as RFC 3339 UTC to the millisecond."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    # (isoformat cuts the microseconds to milliseconds, never rounds, and pads the year)
    return dt.isoformat(timespec="milliseconds") + "Z"


def zone_of(name: str) -> tzinfo:
    """The zone named ``name`` (IANA, such as ``Europe/Stockholm``, or ``UTC``).

    :raises ValueError: naming it, when there is no such zone.
    """
    if name == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone name (such as "
                         "'Europe/Stockholm' or 'UTC')") from None


class LocalTime:
    """Zone-less times of one zone, as RFC 3339 UTC; memoized (a busy firewall sends many
    lines a second, with few distinct times)."""

    def __init__(self, zone: str = "UTC"):
        self.zone = zone
        self._tz = zone_of(zone)
        self._utc = self._tz is timezone.utc
        self._plain: dict[str, str | None] = {}
        self._bsd: dict[tuple[str, int], str | None] = {}

    def _utc_of(self, naive: datetime) -> str:
        if self._utc:
            return utc_text(naive)
        return utc_text(naive.replace(tzinfo=self._tz))

    def plain(self, text: str) -> str | None:
        """``YYYY-MM-DD hh:mm:ss`` (or with a ``T``) as RFC 3339 UTC; None when it is not a
        real date and time."""
        value = self._plain.get(text, _MISS)
        if value is _MISS:
            try:
                if not text.isascii():
                    raise ValueError  # fromisoformat reads other scripts' digits; an index not
                value = self._utc_of(datetime.fromisoformat(text))
            except (ValueError, OverflowError):
                value = None  # OverflowError: year 1 or 9999 pushed past the range
            if len(self._plain) >= _CACHE_MAX:
                self._plain.clear()
            self._plain[text] = value
        return value  # type: ignore[return-value]

    def bsd(self, text: str, now: datetime) -> str | None:
        """An RFC 3164 time (``Nov 26 10:00:00``, or with a year before the clock) as RFC
        3339 UTC. Without a year: the current one in this zone, or the last one for a date
        more than a day ahead. None when it is not a real date and time."""
        today = now.astimezone(self._tz).date()  # the year is this zone's, not UTC's
        key = (text, today.toordinal())
        value = self._bsd.get(key, _MISS)
        if value is _MISS:
            value = self._read_bsd(text, today)
            if len(self._bsd) >= _CACHE_MAX:
                self._bsd.clear()
            self._bsd[key] = value
        return value  # type: ignore[return-value]

    def _read_bsd(self, text: str, today: date) -> str | None:
        parts = text.split()
        month = _MONTHS.get(parts[0])
        if month is None:
            return None
        day = int(parts[1])
        if len(parts) == 4:
            year, clock = int(parts[2]), parts[3]
        else:
            year, clock = _year_of(month, day, today), parts[2]
        return self.plain(f"{year:04d}-{month:02d}-{day:02d}T{clock}")


def _year_of(month: int, day: int, today: date) -> int:
    """The year of a date sent without one: the latest that puts it at most a day ahead of
    ``today`` (a clock a little fast; "Jan  1" read on 31 December is next year's)."""
    for year in (today.year + 1, today.year, today.year - 1):
        try:
            if date(year, month, day) <= today + timedelta(days=1):
                return year
        except ValueError:  # 29 February of a year without one
            continue
    return today.year  # no such day in any of them: the reader refuses it


#: zone-less times read as UTC, the default
UTC = LocalTime("UTC")
