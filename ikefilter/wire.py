"""Decode one Clavister log line, in any shape README.md lists, into a :class:`Decoded` record.

No ECS knowledge here: header fields, the category list and the ``name=value`` pairs, as text.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from datetime import datetime, timezone

import msgspec

from .localtime import UTC, LocalTime, utc_text
from .severity import FACILITY_CODES, code_of


class Decoded(msgspec.Struct):
    """What a line says, before any catalog lookup. ``params`` values are text as sent."""

    original: str
    params: dict[str, str]
    categories: list[str] | None = None
    pri: int | None = None
    time: str | None = None
    host: str | None = None
    notes: list[str] | None = None


class NotClavister(ValueError):
    """The line has no Clavister header and no ``id=`` pair."""


#: why a line is not Clavister's (the text of :class:`NotClavister`)
NOT_CLAVISTER = "not a Clavister log line"


class Undecodable(ValueError):
    """The line looks like a Clavister log line but cannot be decoded; the text says why."""


# Newline is excluded wherever a class could match it, so that the same pattern also finds
# every line's header in one pass over a whole batch (``fastlane``).
HEADER_PATTERN = r"""
    \ufeff?
    (?:<(?P<pri>\d{1,3})>)?
    (?:
        (?P<recv>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)\t(?P<recvpri>[^\t\n]*)\t(?P<recvhost>[^\t\n]*)\t
      | 1\ (?:(?P<ts5424>\d{4}-\d\d-\d\dT\S+)|-)\ (?P<host5424>\S+)[ ]
        (?:\S+\ \S+\ \S+\ (?:-|(?:\[(?:[^\]"\\\n]|\\.|"(?:[^"\\\n]|\\.)*")*\])+)\ \ufeff?)?
      | (?P<ts3164>[A-Z][a-z]{2}\ [\ \d]?\d(?:\ \d{4})?\ \d\d:\d\d:\d\d)\ (?P<host3164>\S+)[ ]
    )?
    (?:\[(?P<devtime>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)\]\ *)?
    (?P<efw>EFW:\ *)?
    (?P<cats>[A-Z][A-Z0-9_]*(?:,[A-Z][A-Z0-9_]*)*)\ ?:(?:\ +|$)
"""
#: one match per line, always: the header (``cats`` set) and the rest of the line (``body``),
#: or the line unmatched; on a batch of lines joined by newlines, one match per line
LINES = re.compile(rf"^(?:{HEADER_PATTERN}(?P<body>.*)|.*)$", re.X | re.M)
#: the index of each named group in a match's groups (and in each tuple ``findall`` gives)
GROUP = {name: number - 1 for name, number in LINES.groupindex.items()}

# A parameter name: at most 128 characters, so that a long word with no "=" costs one
# bounded look per position, not a scan to its end from every letter (quadratic).
_NAME = r"[A-Za-z_][\w.\-]{0,127}"

# name=value: a quoted value (backslash escapes allowed), an unbalanced quote that runs to
# the end, a bracketed IPv6 address, or a bare value that may span words up to the next
# ``name=``. Other words opening with a bracket are RFC 5424 structured-data framing, never
# part of a value. A name never starts right after a letter: a match from that letter would
# have covered it.
_PAIR = re.compile(
    rf"""(?<![A-Za-z_])({_NAME})=
    (?:"((?:[^"\\]|\\.)*)"
      |"(.*)
      |(\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](?=\s|$)
        |(?:[^\s\[\]"]\S*)?(?:\ +(?!{_NAME}=)[^\s\[\]]\S*)*)
    )""",
    re.X,
)
# Only a quote or a backslash is unescaped: other backslashes are data (an RFC 4514
# identity such as ``CN=Smith\, John`` keeps its escape).
_ESCAPE = re.compile(r'\\(["\\])')
_ID_ANYWHERE = re.compile(r"(?:^|[\s\[])id=")

NOTE_UNBALANCED_QUOTE = "unbalanced quote"


_PAIRS = msgspec.json.Decoder(dict[str, str])
_NAMES = re.compile(rf"{_NAME}(?:\0{_NAME})*").fullmatch
_ENDS_WITH_EQUALS = operator.methodcaller("endswith", b"=")
_NOT_AFTER_CLOSE = re.compile(b"\0[^ \n\0]")


def _one_blank(data: bytes) -> bytes:
    """Each run of blanks as one."""
    while b"  " in data:
        data = data.replace(b"  ", b" ")
    return data


def pairs_json(text: str) -> bytes | None:
    """The ``name=value`` pairs of one or more bodies (one per line) rewritten as JSON
    objects, one per line, for msgspec to decode; None when the text is not plain.

    Plain text is what this rewrite reads exactly as :func:`split_pairs_exact` does, or makes
    invalid JSON of (a bare value with a space or an ``=``): ASCII outside quotes, no bracket
    or backslash outside quotes, each quote opening a value right after ``=`` and closing it
    before a blank or the end of its line, and no escape in quotes but ``\\"`` and
    ``\\\\``. Blanks between pairs and at either end of a line may run; they are one
    separator. Names are checked by :func:`names_ok`. Work is on bytes: a pass costs a
    third less than on text."""
    try:
        data = text.encode()
    except UnicodeEncodeError:
        return None  # a lone surrogate
    escaped = b"\\" in data
    if b"\0" in data or escaped and (b"\1" in data or b"\2" in data):
        return None
    if escaped:
        data = data.replace(b"\\\\", b"\1").replace(b'\\"', b"\2")
        if b"\\" in data:
            return None  # another escape: JSON would read it, the splitter keeps it
    parts = data.split(b'"')
    if len(parts) == 1:
        outside = data
    else:
        if not len(parts) & 1 or b"\n" in b"".join(parts[1::2]):
            return None  # a line with an odd number of quotes
        if not all(map(_ENDS_WITH_EQUALS, parts[:-1:2])):
            return None
        if _NOT_AFTER_CLOSE.search(b"\0" + b"\0".join(parts[2::2])) is not None:
            return None
        # The parts outside quotes, rewritten by a few calls over all of them at once
        # (joined by a NUL, which a body never holds: see the check above).
        outside = b"\0".join(parts[::2])
    if b"[" in outside or b"]" in outside or not outside.isascii() or escaped and (
            b"\1" in outside or b"\2" in outside):
        return None
    # Plain pairs have one "=" each and one blank between two: a count that differs is the
    # sign of stray blanks (or of a bare value the decode will refuse). Counting is cheap;
    # looking for each kind of stray blank is not.
    if outside.count(b" ") != outside.count(b"=") - outside.count(b"\n") - 1:
        if b"  " in outside:
            outside = _one_blank(outside)
        if b" \n" in outside:
            outside = outside.replace(b" \n", b"\n")
        if b"\n " in outside:
            outside = outside.replace(b"\n ", b"\n")
        if outside[:1] == b" " or outside[-1:] == b" ":
            outside = outside.strip(b" ")
    outside = outside.replace(b"=", b'":"').replace(b" ", b'","').replace(b"\n", b'"}\n{"')
    if len(parts) == 1:
        data = outside
    else:
        parts[::2] = outside.split(b"\0")
        data = b"".join(parts)
        if escaped:
            data = data.replace(b"\1", b"\\\\").replace(b"\2", b'\\"')
    return b'{"' + data + b'"}'


def names_ok(names: Iterable[str]) -> bool:
    """Whether each of ``names`` is a parameter name as :func:`split_pairs_exact` finds one."""
    return _NAMES("\0".join(names)) is not None


def decode_pairs(data: bytes) -> dict[str, str] | None:
    """One line's rewritten pairs (:func:`pairs_json`) as a dictionary; None when they are
    not JSON (a bare value of several words, an ``=`` in one)."""
    try:
        return _PAIRS.decode(data)
    except msgspec.DecodeError:
        return None


def split_pairs(body: str) -> tuple[dict[str, str], list[str] | None]:
    """Split ``name=value`` pairs. Returns the pairs and notes on anything odd."""
    data = pairs_json(body)
    if data is not None and b"\n" not in data:
        params = decode_pairs(data)
        if params is not None and names_ok(params):
            return params, None
    return split_pairs_exact(body)


def split_pairs_exact(body: str) -> tuple[dict[str, str], list[str] | None]:
    """The exact splitter: every rule of the value syntax, one regex match per pair."""
    params: dict[str, str] = {}
    notes = None
    for m in _PAIR.finditer(body):
        # groups(), not findall(): an unbalanced quote with nothing after it is "", not
        # "did not match".
        name, quoted, unbalanced, bare = m.groups()
        if quoted is not None:
            params[name] = _ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        elif unbalanced is not None:
            params[name] = unbalanced.rstrip()
            notes = [f"{NOTE_UNBALANCED_QUOTE} in {name}"]
        else:
            params[name] = bare
    return params, notes


_RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z", re.ASCII)


_time_cache: dict[str, str | None] = {}
_TIME_CACHE_MAX = 4096
_MISS = object()


def utc_iso(text: str) -> str | None:
    """An RFC 3339 timestamp in UTC, from an ISO 8601 one with any offset.

    None when ``text`` is not a real date and time: an index rejects the whole document
    for a bad ``@timestamp``. Memoized: a busy firewall sends many lines a second.
    """
    value = _time_cache.get(text, _MISS)
    if value is _MISS:
        value = _utc_iso(text)
        if len(_time_cache) >= _TIME_CACHE_MAX:
            _time_cache.clear()
        _time_cache[text] = value
    return value  # type: ignore[return-value]


def _utc_iso(text: str) -> str | None:
    if text.endswith("Z"):
        if _RFC3339_UTC.fullmatch(text):
            try:
                datetime.fromisoformat(text[:19])
            except ValueError:
                return None
            # One form for every time written: milliseconds, cut (never rounded into the
            # next second).
            return f"{text[:19]}.{text[20:-1][:3].ljust(3, '0')}Z"
        text = text[:-1] + "+00:00"
    if not text.isascii():
        return None  # fromisoformat reads other scripts' digits; an index does not
    try:
        return utc_text(datetime.fromisoformat(text))  # (naive: taken as UTC)
    except (ValueError, OverflowError):
        return None  # OverflowError: year 1 or 9999 pushed past the range by the offset


def decode_line(line: str, now: datetime | None = None, local: LocalTime = UTC) -> Decoded:
    """Decode one line (no trailing newline).

    :raises NotClavister: no Clavister header and no ``id=`` anywhere.
    :raises Undecodable: a Clavister header whose body has no pairs.
    :param local: how times without a zone are read.
    """
    m = LINES.match(line)
    if not m["cats"]:
        if _ID_ANYWHERE.search(line) is None:
            raise NotClavister(NOT_CLAVISTER)
        params, notes = split_pairs(line)
        return Decoded(line, params, notes=notes)
    params, notes = split_pairs(line[m.start("body"):])
    if not m["efw"] and "id" not in params:
        # "ERROR: disk full" also fits the header: without "EFW:" only an id= makes it ours.
        raise NotClavister(NOT_CLAVISTER)
    if not params:
        raise Undecodable("no name=value pairs after the header")
    pri, time, host, stamp = header_fields(m.groups(), now, local)
    if stamp is not None and time is None:
        notes = (notes or []) + [invalid_timestamp(stamp)]
    return Decoded(
        original=line,
        params=params,
        categories=m["cats"].split(","),
        pri=pri,
        time=time,
        host=host,
        notes=notes,
    )


_PRIS = {str(pri): pri for pri in range(192)}
_column_pris: dict[str, int | None] = {}


def column_pri(text: str) -> int | None:
    """The PRI a syslog receiver's ``Facility.Severity`` column stands for (``Local0.Info``:
    134), or None when it is not one."""
    pri = _column_pris.get(text, _MISS)
    if pri is _MISS:
        facility, _, severity = text.strip().lower().rpartition(".")
        code = FACILITY_CODES.get(facility)
        pri = None
        if code is not None and severity and not severity.isdigit():
            try:
                pri = code << 3 | code_of(severity)
            except ValueError:
                pass
        if len(_column_pris) >= _TIME_CACHE_MAX:
            _column_pris.clear()
        _column_pris[text] = pri
    return pri  # type: ignore[return-value]


def invalid_timestamp(stamp: str) -> str:
    """The note on a header whose timestamp is not a real date and time."""
    return f"invalid timestamp {stamp!r}"


def header_fields(
    groups: tuple, now: datetime | None = None, local: LocalTime = UTC
) -> tuple[int | None, str | None, str | None, str | None]:
    """PRI, time (RFC 3339 UTC), host and the timestamp as sent, from the groups of a header
    match in pattern order. Time is None for a timestamp that is not a real one; ``local``
    reads the times that carry no zone. Without a ``<PRI>``, a receiver's
    ``Facility.Severity`` column gives it."""
    pri_text, recv, recvpri, recvhost, ts5424, host5424, ts3164, host3164, devtime = groups[:9]
    pri = _PRIS.get(pri_text)
    if pri is None:
        if pri_text:
            pri = int(pri_text)
            if pri > 191:
                pri = None  # RFC 5424: PRI is 0-191; anything else says nothing of severity
        elif recvpri:
            pri = column_pri(recvpri)
    stamp = time = None
    if devtime:
        stamp = devtime
        time = local.plain(stamp)
    elif ts5424:
        stamp = ts5424
        time = utc_iso(stamp)
    elif ts3164:
        stamp = ts3164
        time = local.bsd(stamp, now or datetime.now(timezone.utc))
    elif recv:
        stamp = recv
        time = local.plain(stamp)
    return pri, time, host5424 or host3164 or recvhost or None, stamp
