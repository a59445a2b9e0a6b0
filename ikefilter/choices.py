"""The values a config key allows, read from the type that checks it.

A mistyped choice (``ip = "hmak"``) is answered with the choices, from the same ``Literal``
that refused it: no second list to keep in step.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec


def allowed(type_: Any, keys: list[str | int] | tuple[str | int, ...]) -> tuple[Any, ...]:
    """The ``Literal`` values allowed at ``keys`` under ``type_``, or ``()`` when the key is
    not a choice (or cannot be followed)."""
    current = type_
    for key in keys:
        current = _unwrap(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, msgspec.Struct):
            fields = {f.encode_name: f.type for f in msgspec.structs.fields(current)}
            if key not in fields:
                return ()
            current = fields[key]
        elif origin in (list, tuple, set, frozenset) and (isinstance(key, int) or key == "*"):
            current = get_args(current)[0] if get_args(current) else Any
        elif origin is dict:
            current = get_args(current)[1] if get_args(current) else Any
        else:
            return ()
    current = _unwrap(current)
    return get_args(current) if get_origin(current) is Literal else ()


def _unwrap(type_: Any) -> Any:
    """``Annotated[T, ...]`` and ``T | None`` as ``T`` (a union of several stays as it is)."""
    while True:
        origin = get_origin(type_)
        if origin is Annotated:
            type_ = get_args(type_)[0]
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(type_) if a is not type(None)]
            if len(rest) != 1:
                return type_
            type_ = rest[0]
        else:
            return type_
