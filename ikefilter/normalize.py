"""Turn a :class:`~ikefilter.wire.Decoded` line into an ECS :class:`~ikefilter.ecs.Event`.

Catalog-driven and free of I/O: the message's builder (:mod:`ikefilter.builders`) does it,
the same one the batch lane calls. A value that does not fit its ECS type never lands in the
typed field: it stays under ``clavister.extra`` and the event is tagged.
"""

from __future__ import annotations

import functools
from typing import Literal

from . import ecs
from .builder_table import Builders
from .catalog import Catalog
from .record import RECORD_META
from .shaping import DEFAULT, Shaping
from .wire import Decoded

SeverityDialect = Literal["clavister", "syslog"]


class Normalizer:
    """Built once per process from a catalog; :meth:`normalize` is called per event."""

    def __init__(
        self,
        catalog: Catalog,
        severity_dialect: SeverityDialect = "clavister",
        keep_original: bool = True,
        shaping: Shaping = DEFAULT,
    ):
        self.catalog = catalog
        self.severity_dialect = severity_dialect
        self.keep_original = keep_original
        self.shaping = shaping
        #: how times without a zone are read (``[time] zone``)
        self.local_time = shaping.local_time
        self.builders = Builders(catalog, severity_dialect, keep_original, shaping=shaping)

    @functools.cached_property
    def record_builders(self) -> Builders:
        """The builders for records whose pairs a shipper split into fields: they pass over
        the record's own keys (time, host, ...)."""
        return Builders(self.catalog, self.severity_dialect, self.keep_original, RECORD_META,
                        self.shaping)

    def normalize(self, d: Decoded, now: str) -> ecs.Event:
        """The event of one decoded line; ``now`` dates it when the line has no time."""
        build = self.builders(d.params.get("id"))
        return build(d.params, d.pri, d.time, d.categories, d.host, d.original, now, d.notes)
