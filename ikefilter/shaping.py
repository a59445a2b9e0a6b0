"""How a site's documents are shaped for its store: ``[time]`` and ``[ecs]`` of the site
config (docs/config.md), and :class:`Shaping`, what the builders read of them.

- ``[time] zone``: the IANA zone of times that carry none (:mod:`ikefilter.localtime`).
- ``[ecs] identity_users``: IKE identities that name a user fill ``user.*``
  (:mod:`ikefilter.identity`).
- ``[ecs] data_stream_namespace``: ``data_stream.namespace``, the last part of the data
  stream's name, ``logs-clavister.log-NAMESPACE``.
"""

from __future__ import annotations

import re

import msgspec

from . import ecs
from .localtime import LocalTime, zone_of

DATA_STREAM_TYPE = "logs"
DATA_STREAM_DATASET = "clavister.log"
DEFAULT_NAMESPACE = "default"
# Elasticsearch's rule for the part of an index name a namespace is: lowercase, none of
# these characters, at most 100 bytes.
_NAMESPACE = re.compile(r'[^A-Z\\/*?"<>| ,#:\-]{1,100}')


class TimeTable(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[time]``: how times without a zone are read."""

    zone: str = "UTC"

    def __post_init__(self) -> None:
        zone_of(self.zone)


class EcsTable(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[ecs]``: what goes into ECS fields beyond the catalog's mapping."""

    identity_users: bool = True
    data_stream_namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        if (not _NAMESPACE.fullmatch(self.data_stream_namespace)
                or len(self.data_stream_namespace.encode()) > 100):
            raise ValueError(
                f"data_stream_namespace: {self.data_stream_namespace!r} cannot be part of a "
                "data stream name (lowercase, no '-', at most 100 bytes, none of "
                '\\ / * ? " < > | , # : or a space)')


class Shaping:
    """Built once per pipeline from ``[time]`` and ``[ecs]``; the builders read it."""

    def __init__(self, time: TimeTable | None = None, ecs_table: EcsTable | None = None):
        time = time or TimeTable()
        ecs_table = ecs_table or EcsTable()
        self.local_time = LocalTime(time.zone)
        self.identity_users = ecs_table.identity_users
        self.data_stream = ecs.DataStream(DATA_STREAM_TYPE, DATA_STREAM_DATASET,
                                          ecs_table.data_stream_namespace)


#: every default: UTC, identities as users, the ``default`` namespace
DEFAULT = Shaping()
