"""The fields of an :class:`ikefilter.ecs.Event`, as the table in docs/plugins.md.

Made from the Structs themselves (``python -m ikefilter.fieldtable`` prints it), and
tests/test_docs.py checks the guide's copy against it, so the table cannot go stale.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin

import msgspec

from . import ecs

BEGIN = "<!-- event-fields: made by `python -m ikefilter.fieldtable`; checked by tests -->"
END = "<!-- /event-fields -->"


def rows(struct: type = ecs.Event, attr: str = "", field: str = ""
         ) -> Iterator[tuple[str, str, str, str]]:
    """(attribute path, output field, type, note) for every field, depth first."""
    for info in msgspec.structs.fields(struct):
        path = f"{attr}.{info.name}" if attr else info.name
        name = f"{field}.{info.encode_name}" if field else info.encode_name
        inner = _struct_of(info.type)
        notes = []
        if info.required:
            notes.append("never None")
        if inner is not None and inner.__struct_config__.frozen:
            notes.append("frozen, shared: assign a new one, never into it")
        yield path, name, _render(info.type), "; ".join(notes)
        if inner is not None:
            yield from rows(inner, path, name)


def markdown() -> str:
    """The table, between its markers, as docs/plugins.md holds it."""
    lines = [BEGIN, "", "| attribute | output field | type | |", "|---|---|---|---|"]
    for path, name, type_, note in rows():
        shown = "" if name == path else f"`{name}`"
        lines.append(f"| `{path}` | {shown} | `{type_}` | {note} |")
    lines += ["", END]
    return "\n".join(lines)


def _struct_of(type_: Any) -> type | None:
    for candidate in (type_, *_members(type_)):
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


def _members(type_: Any) -> tuple:
    return get_args(type_) if get_origin(type_) in (Union, types.UnionType) else ()


def _render(type_: Any) -> str:
    """The type as a hook writer reads it; ``None`` left out (every field but the "never
    None" ones may be None), and no ``|``, which would end a table cell."""
    members = [m for m in _members(type_) if m is not type(None)]
    if members:
        return " or ".join(_render(m) for m in members)
    origin = get_origin(type_)
    if origin is not None:
        args = ", ".join(_render(a) for a in get_args(type_))
        return f"{origin.__name__}[{args}]" if args else origin.__name__
    return getattr(type_, "__name__", str(type_))


if __name__ == "__main__":
    print(markdown())
