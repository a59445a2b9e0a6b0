"""Syslog severities and facilities: codes, the names the catalog writes, the RFC 5424 names
ECS ``log.level`` and ``log.syslog.*.name`` take."""

from __future__ import annotations

# code -> log.level (the lowercase name of the effective severity)
LEVELS = ("emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug")

_ALIASES = {
    "emerg": 0, "panic": 0, "crit": 2, "err": 3, "warn": 4,
    "information": 6, "info": 6,
}

#: facility code -> its name, as syslog daemons write it (``log.syslog.facility.name``)
FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)
#: a facility name in any case (``Local0``, as syslog receivers write it) -> its code
FACILITY_CODES = {name: code for code, name in enumerate(FACILITIES)} | {
    "security/authorization": 4, "log audit": 13, "log alert": 14, "clock": 15}
_BY_NAME = {name: code for code, name in enumerate(LEVELS)} | _ALIASES


def code_of(value: str | int) -> int:
    """Return the 0-7 code of a severity given as a code or a name, in any case.

    :raises ValueError: for anything else, naming the value.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 7:
            return value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit() and int(text) <= 7:
            return int(text)
        if text in _BY_NAME:
            return _BY_NAME[text]
    raise ValueError(f"not a syslog severity: {value!r} (use 0-7 or a name such as 'warning')")
