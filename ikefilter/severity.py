"""Syslog severities: codes, the names the catalog writes, ECS ``log.level`` names."""

from __future__ import annotations

# code -> log.level (the lowercase name of the effective severity)
LEVELS = ("emergency", "alert", "critical", "error", "warning", "notice", "information", "debug")

_ALIASES = {
    "emerg": 0, "panic": 0, "crit": 2, "err": 3, "warn": 4,
    "informational": 6, "info": 6,
}
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
