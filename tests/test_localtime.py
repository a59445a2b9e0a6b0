"""The one written form of a time: ``YYYY-MM-DDThh:mm:ss.mmmZ``, in UTC, cut to the
millisecond."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from ikefilter.localtime import utc_text

FORM = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
offsets = st.none() | st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes)))


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), offsets)
def test_every_time_is_written_in_utc_to_the_millisecond(naive, zone) -> None:
    dt = naive if zone is None else naive.replace(tzinfo=zone)
    text = utc_text(dt)
    assert FORM.fullmatch(text)
    utc = dt if zone is None else dt.astimezone(timezone.utc).replace(tzinfo=None)
    # cut, never rounded into the next millisecond (or second, or year)
    assert datetime.fromisoformat(text[:-1]) == utc.replace(
        microsecond=utc.microsecond // 1000 * 1000)


def test_years_before_1000_keep_four_digits() -> None:
    assert utc_text(datetime(1, 1, 1)) == "0001-01-01T00:00:00.000Z"
    assert utc_text(datetime(999, 12, 31, 23, 59, 59, 999_999)) == "0999-12-31T23:59:59.999Z"


def test_a_year_left_out_is_the_sites_even_when_utc_is_still_on_the_day_before() -> None:
    from ikefilter.localtime import LocalTime

    local = LocalTime("Pacific/Kiritimati")  # UTC+14
    # 05:00 UTC on 31 December is 19:00 there: "Jan  2" is next year's only from 1 January
    assert local.bsd("Jan  2 00:30:00", datetime(2026, 12, 31, 5, tzinfo=timezone.utc)) == (
        "2026-01-01T10:30:00.000Z")
    # 11:00 UTC, the same UTC date, is already 1 January there: the same text, another year
    assert local.bsd("Jan  2 00:30:00", datetime(2026, 12, 31, 11, tzinfo=timezone.utc)) == (
        "2027-01-01T10:30:00.000Z")
