"""TOML reading on every supported Python (tomllib from 3.11, tomli before)."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TOMLDecodeError = tomllib.TOMLDecodeError


def load_toml(data: bytes | str) -> dict:
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return tomllib.loads(data)
