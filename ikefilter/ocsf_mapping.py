"""The OCSF mapping of the catalog, ``catalog/ike-ocsf.toml``, as checked Structs.

The file holds every OCSF fact the renderer (:mod:`ikefilter.ocsf`) uses: the version
written, the product, the severity and status tables, the classes used (names, category,
activities, the attributes the renderer may write, the class's constraints), the class and
activity of each message, and the reason rules. Loading rejects unknown keys, a message
whose class or activity is not listed, and a message the catalog does not have.
"""

from __future__ import annotations

import functools
from pathlib import Path

import msgspec

from ._toml import load_toml
from .catalog import Catalog, CatalogError, data_dir

FILE = "ike-ocsf.toml"
BASE_CLASS = 0


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class Product(_Table):
    vendor_name: str
    name: str


class SeverityTable(_Table):
    by_syslog_code: tuple[int, int, int, int, int, int, int, int]
    names: dict[int, str]


class StatusTable(_Table):
    success: tuple[int, str]
    failure: tuple[int, str]
    unknown: tuple[int, str]


class OcsfClass(_Table):
    """One OCSF class: what the published schema says of it that the renderer needs."""

    name: str
    category_uid: int
    category_name: str
    activities: dict[int, str]
    attributes: frozenset[str]
    required: frozenset[str]
    at_least_one: tuple[str, ...]
    protocol_name: str | None = None


class MessageClass(_Table):
    """The class and activity of one message (``activity_name`` only with 99, Other)."""

    class_uid: int
    activity_id: int
    activity_name: str | None = None
    service: str | None = None
    app: str | None = None


class ReasonRule(MessageClass):
    """A class and activity for the listed messages whose ``reason`` contains a word."""

    messages: frozenset[int] = frozenset()
    contains: tuple[str, ...] = ()


class Mapping(_Table):
    version: str
    product: Product
    severity: SeverityTable
    status: StatusTable
    classes: dict[int, OcsfClass]
    messages: dict[int, MessageClass]
    reasons: tuple[ReasonRule, ...] = ()

    def __post_init__(self) -> None:
        if BASE_CLASS not in self.classes:
            raise ValueError("classes: the base event (0) must be listed")
        for where, entry in [*((f"messages.{i}", m) for i, m in self.messages.items()),
                             *((f"reasons[{n}]", r) for n, r in enumerate(self.reasons))]:
            cls = self.classes.get(entry.class_uid)
            if cls is None:
                raise ValueError(f"{where}: class {entry.class_uid} is not under [classes]")
            if entry.activity_id not in cls.activities:
                raise ValueError(f"{where}: activity {entry.activity_id} is not one of "
                                 f"{cls.name}'s")
            if (entry.activity_name is not None) != (entry.activity_id == 99):
                raise ValueError(f"{where}: activity_name goes with activity 99 (Other), "
                                 "and only with it")
        for n, rule in enumerate(self.reasons):
            unknown = rule.messages - self.messages.keys()
            if unknown or not rule.contains:
                raise ValueError(f"reasons[{n}]: needs `contains` and listed messages "
                                 f"(unknown: {sorted(unknown)})")


def loads(data: bytes | str, source: str = FILE) -> Mapping:
    """Decode and check mapping text; ``source`` names it in errors.

    :raises CatalogError: for a malformed or inconsistent mapping.
    """
    try:
        return msgspec.convert(load_toml(data), Mapping, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise CatalogError(f"{source}: {exc}") from None


@functools.lru_cache(maxsize=4)
def load(path: str | None = None) -> Mapping:
    """The shipped mapping (or the one at ``path``)."""
    file = Path(path) if path else data_dir() / FILE
    return loads(file.read_bytes(), str(file))


def check_against(mapping: Mapping, catalog: Catalog) -> None:
    """Every catalog message has a class, and the mapping names no other message.

    :raises CatalogError: naming the IDs out of step.
    """
    ids = {m.id for m in catalog.messages}
    missing, extra = ids - mapping.messages.keys(), mapping.messages.keys() - ids
    if missing or extra:
        raise CatalogError(f"{FILE} out of step with the catalog: missing {sorted(missing)}, "
                           f"unknown {sorted(extra)}")
