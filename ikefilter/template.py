"""``ikefilter template``: the Elasticsearch component and index templates for the documents.

Generated, never written by hand: every field the Structs of :mod:`ikefilter.ecs` can hold
is mapped, the ECS ones with the type ECS gives them (``catalog/ecs-field-types.csv``), the
vendor's ``clavister.*`` from their Python types (``int`` a ``long``, ``str`` a ``keyword``,
a mapping a ``flattened`` field, or the type a field's ``Meta(extra={"mapping": ...})``
names). A field added to the Structs is mapped by the next run; ``docs/elasticsearch/
templates.json`` is this command's output, and a test keeps it so.

Nothing is left to dynamic mapping: the root is ``"dynamic": false`` (a field a site plugin
adds is kept in ``_source``, not indexed, never a mapping conflict), ``clavister`` is
``"strict"`` (every one of its fields is ours: a document with another is refused, and a
template older than the filter shows at once), ``labels`` maps each value as a keyword.
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
from typing import Any

import msgspec

from . import catalog, ecs
from .shaping import DATA_STREAM_DATASET, DATA_STREAM_TYPE

NAME = f"{DATA_STREAM_TYPE}-{DATA_STREAM_DATASET}"
ECS_COMPONENT = "ikefilter-ecs"
VENDOR_COMPONENT = "ikefilter-clavister"
#: the component a site fills with its own settings (lifecycle, shards); optional
CUSTOM_COMPONENT = f"{NAME}@custom"
#: above the ``logs`` template built into Elasticsearch (100), which also matches logs-*-*
PRIORITY = 200
VENDOR = "clavister"
_KEYWORD = {"type": "keyword", "ignore_above": 1024}
_CONTAINERS = {"object", "nested", "flattened"}
_PYTHON = {msgspec.inspect.StrType: "keyword", msgspec.inspect.IntType: "long",
           msgspec.inspect.BoolType: "boolean", msgspec.inspect.FloatType: "double"}


class TemplateError(ValueError):
    """A field of the Structs has no mapping: not in ECS, or of a type with no rule."""


@functools.lru_cache(maxsize=1)
def ecs_fields() -> dict[str, tuple[str, bool]]:
    """ECS field -> (type, indexed), from the shipped table."""
    with open(catalog.data_dir() / "ecs-field-types.csv", newline="", encoding="utf-8") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {r["Field"]: (r["Type"], r["Indexed"] == "true") for r in rows}


def _ecs_leaf(field: str, types: dict[str, tuple[str, bool]]) -> dict:
    """The mapping of one ECS field, with the multi-fields ECS gives it (``.text``)."""
    kind, indexed = types[field]
    mapping: dict[str, Any] = dict(_KEYWORD) if kind in ("keyword", "wildcard") else {}
    mapping["type"] = kind
    if not indexed:
        mapping.update(index=False, doc_values=False)
    subs = {name[len(field) + 1:]: types[name][0] for name in types
            if name.startswith(field + ".") and "." not in name[len(field) + 1:]}
    if subs:
        mapping["fields"] = {sub: {"type": t} for sub, t in sorted(subs.items())}
    return mapping


def _put(props: dict, dotted: list[str], mapping: dict) -> None:
    for part in dotted[:-1]:
        props = props.setdefault(part, {"properties": {}})["properties"]
    props[dotted[-1]] = mapping


def _ecs_children(field: str, types: dict[str, tuple[str, bool]]) -> dict:
    """The ECS fields under ``field`` (``source.geo``), nested, for a Struct field that
    holds a mapping an enrichment plugin fills."""
    props: dict = {}
    for name in sorted(types):
        if not name.startswith(field + ".") or types[name][0] in _CONTAINERS:
            continue
        parent = name.rsplit(".", 1)[0]
        if parent in types and types[parent][0] not in _CONTAINERS:
            continue  # a multi-field, mapped with its parent
        _put(props, name[len(field) + 1:].split("."), _ecs_leaf(name, types))
    return props


def _unwrap(t: msgspec.inspect.Type) -> tuple[msgspec.inspect.Type, dict]:
    """The type without ``None``, lists and ``Annotated``, and its ``Meta`` extra."""
    extra: dict = {}
    while True:
        if isinstance(t, msgspec.inspect.UnionType):
            kinds = [k for k in t.types if not isinstance(k, msgspec.inspect.NoneType)]
            if len(kinds) != 1:
                raise TemplateError(f"a union of {kinds} has no single mapping")
            t = kinds[0]
        elif isinstance(t, msgspec.inspect.Metadata):
            extra.update(t.extra or {})
            t = t.type
        elif isinstance(t, (msgspec.inspect.ListType, msgspec.inspect.SetType,
                            msgspec.inspect.FrozenSetType, msgspec.inspect.VarTupleType)):
            t = t.item_type  # Elasticsearch maps a list as its items
        else:
            return t, extra


def _properties(struct: msgspec.inspect.StructType, path: str,
                types: dict[str, tuple[str, bool]]) -> dict:
    props = {}
    for f in struct.fields:
        name = f"{path}.{f.encode_name}" if path else f.encode_name
        props[f.encode_name] = _field(f.type, name, types)
    return props


def _field(t: msgspec.inspect.Type, path: str, types: dict[str, tuple[str, bool]]) -> dict:
    t, extra = _unwrap(t)
    vendor = path == VENDOR or path.startswith(VENDOR + ".")
    if isinstance(t, msgspec.inspect.StructType):
        mapping: dict[str, Any] = {"properties": _properties(t, path, types)}
        if path == VENDOR:
            mapping = {"type": "object", "dynamic": "strict", **mapping}
        return mapping
    if "mapping" in extra:
        return {"type": extra["mapping"]}
    if vendor:
        if isinstance(t, msgspec.inspect.DictType):
            return {"type": "flattened"}
        kind = _PYTHON.get(type(t))
        if kind is None:
            raise TemplateError(f"{path}: no mapping for a {type(t).__name__}")
        return dict(_KEYWORD) if kind == "keyword" else {"type": kind}
    if path not in types and not isinstance(t, msgspec.inspect.DictType):
        raise TemplateError(f"{path} is not an ECS field: map it by a Meta(extra="
                            '{"mapping": ...}) or move it under clavister')
    if isinstance(t, msgspec.inspect.DictType):
        children = _ecs_children(path, types)
        if children:
            return {"properties": children}
        if types.get(path, ("",))[0] != "object":
            raise TemplateError(f"{path}: ECS has no fields under it")
        return {"type": "object", "dynamic": True}  # labels: see _DYNAMIC_TEMPLATES
    return _ecs_leaf(path, types)


def _dynamic_templates(properties: dict) -> list[dict]:
    """``labels`` and its kin (ECS objects of free keys): each value a keyword."""
    return [{f"{name}_as_keyword": {"path_match": f"{name}.*", "match_mapping_type": "string",
                                    "mapping": dict(_KEYWORD)}}
            for name, mapping in properties.items() if mapping.get("dynamic") is True]


def templates() -> dict:
    """``{"component_templates": {NAME: BODY}, "index_templates": {NAME: BODY}}``, each BODY
    what ``PUT _component_template/NAME`` or ``PUT _index_template/NAME`` takes."""
    types = ecs_fields()
    props = _properties(msgspec.inspect.type_info(ecs.Event), "", types)
    vendor = props.pop(VENDOR)
    meta = {"managed_by": "ikefilter", "ecs_version": ecs.ECS_VERSION}
    ecs_mappings = {"dynamic": False, "date_detection": False,
                    "dynamic_templates": _dynamic_templates(props), "properties": props}
    return {
        "component_templates": {
            ECS_COMPONENT: {"template": {"mappings": ecs_mappings}, "_meta": meta},
            VENDOR_COMPONENT: {"template": {"mappings": {"properties": {VENDOR: vendor}}},
                               "_meta": meta},
        },
        "index_templates": {
            NAME: {
                "index_patterns": [f"{NAME}-*"],
                "data_stream": {},
                "priority": PRIORITY,
                "composed_of": [ECS_COMPONENT, VENDOR_COMPONENT, CUSTOM_COMPONENT],
                "ignore_missing_component_templates": [CUSTOM_COMPONENT],
                "_meta": meta,
            },
        },
    }


def dumps() -> bytes:
    """:func:`templates` as the command prints it: indented, keys in a stable order."""
    data = msgspec.json.encode(templates(), order="deterministic")
    return msgspec.json.format(data, indent=2) + b"\n"


def register(subparsers) -> None:
    p = subparsers.add_parser("template", help=cmd_template.__doc__,
                              description=cmd_template.__doc__)
    p.set_defaults(func=cmd_template)


def cmd_template(args: argparse.Namespace) -> int:
    """Print the Elasticsearch component and index templates of the documents, as JSON."""
    sys.stdout.buffer.write(dumps())
    return 0
