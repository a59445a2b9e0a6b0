"""The message catalog: typed entries, built from the Log Reference plus curated ECS data.

``catalog/ike.json`` is built by :func:`build` from the reference text and
``catalog/ike-ecs.toml`` and checked in; :func:`load` reads it into Structs that reject
unknown fields, so a hand edit with a typo fails at start-up.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec

from . import refdoc, severity
from ._toml import load_toml

Outcome = Literal["success", "failure", "unknown"]


class EcsMapping(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The curated ECS classification of one message."""

    action: str
    category: list[str]
    type: list[str]
    outcome: Outcome | None = None


class Message(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One catalog entry: every field of the reference, plus its ECS mapping."""

    id: int
    section: str
    title: str
    categories: list[str]
    message: str
    severity: str
    severity_code: int
    parameters: list[str]
    explanation: str
    gateway_action: str
    action_description: str
    proposed_action: str
    ecs: EcsMapping


class Catalog(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    chapter: str
    title: str
    intro: str
    source: str
    messages: list[Message]

    def by_id(self) -> dict[int, Message]:
        return {m.id: m for m in self.messages}


class _CuratedEntry(msgspec.Struct, forbid_unknown_fields=True):
    action: str
    type: list[str]
    category: list[str] | None = None
    outcome: Outcome | None = None


class _CuratedDefaults(msgspec.Struct, forbid_unknown_fields=True):
    category: list[str]


class _Curated(msgspec.Struct, forbid_unknown_fields=True):
    defaults: _CuratedDefaults
    messages: dict[int, _CuratedEntry]


class CatalogError(ValueError):
    """The reference and the curated mapping disagree, or a catalog file is malformed."""


def build(reference_text: str, curated_toml: bytes, source: str) -> Catalog:
    """Build a catalog from a Log Reference chapter and its curated ECS mapping.

    Every message of the reference must have a curated entry and vice versa.
    """
    chapter = refdoc.parse(reference_text)
    try:
        curated = msgspec.convert(load_toml(curated_toml), _Curated, strict=False)
    except msgspec.ValidationError as exc:
        raise CatalogError(f"curated mapping: {exc}") from None
    ids = [s.id for s in chapter.sections]
    if len(set(ids)) != len(ids):
        raise CatalogError("the reference lists an ID twice")
    extra = set(curated.messages) - set(ids)
    missing = set(ids) - set(curated.messages)
    if extra or missing:
        raise CatalogError(
            f"curated mapping out of step with the reference: missing {sorted(missing)}, "
            f"unknown {sorted(extra)}"
        )
    messages = []
    for sec in chapter.sections:
        f = sec.fields
        cur = curated.messages[sec.id]
        messages.append(
            Message(
                id=sec.id,
                section=sec.section,
                title=sec.title,
                categories=refdoc.split_list(f["categories"]),
                message=f["message"],
                severity=f["severity"],
                severity_code=severity.code_of(f["severity"]),
                parameters=refdoc.split_list(f["parameters"]),
                explanation=f["explanation"],
                gateway_action=f["gateway_action"],
                action_description=f["action_description"],
                proposed_action=f["proposed_action"],
                ecs=EcsMapping(
                    action=cur.action,
                    category=cur.category or curated.defaults.category,
                    type=cur.type,
                    outcome=cur.outcome,
                ),
            )
        )
    return Catalog(chapter.number, chapter.title, chapter.intro, source, messages)


_ENCODER = msgspec.json.Encoder(order="deterministic")
_DECODER = msgspec.json.Decoder(Catalog)


def dumps(catalog: Catalog) -> bytes:
    """The catalog as the checked-in file holds it: stable, indented JSON."""
    return msgspec.json.format(_ENCODER.encode(catalog), indent=2) + b"\n"


def loads(data: bytes) -> Catalog:
    try:
        return _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise CatalogError(f"catalog: {exc}") from None


def data_dir() -> Path:
    """Where the shipped catalog files are: the installed package, else the source tree."""
    try:
        return Path(str(resources.files("ikefilter.catalog_files")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "catalog"


@functools.lru_cache(maxsize=8)
def load(path: str | None = None) -> Catalog:
    """Load a built catalog; the shipped IKE chapter by default."""
    file = Path(path) if path else data_dir() / "ike.json"
    try:
        return loads(file.read_bytes())
    except (CatalogError, msgspec.DecodeError) as exc:
        raise CatalogError(f"{file}: not a built catalog ({exc})") from None
