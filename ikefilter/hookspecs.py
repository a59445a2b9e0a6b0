"""Hook specifications: everything a site plugin can implement.

A plugin is a module or an object with functions named like the specs below, marked with
``@ikefilter.hookimpl``. An implementation may accept any subset of a spec's arguments,
in any order: pluggy passes what it asks for by name. A hook name that starts with
``ikefilter_`` but matches no spec is a start-up error.

Setup hooks run once per process. Batch hooks run once per batch of events, never once per
event: a pluggy call costs more than decoding an event. No ``ikefilter``
hook supports ``wrapper``/``hookwrapper`` implementations.

``docs/plugins.md`` is the guide; ``tests/test_docs.py`` checks that it covers every spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import msgspec

    from .config import PipelineInfo, SiteConfig
    from .ecs import Event

hookspec = pluggy.HookspecMarker("ikefilter")

# -------------------------------------------------------------------------------------------
# Start-up: once per process, before the first batch
# -------------------------------------------------------------------------------------------


@hookspec
def ikefilter_config_tables() -> dict[str, type[msgspec.Struct]] | None:
    """Claim site config tables: ``[plugins.NAME]`` is decoded into the Struct given.

    Called once per process, after every plugin is loaded and before
    :func:`ikefilter_configure`. Not ``firstresult``: every plugin's answer is merged, and
    two plugins claiming one name is a start-up error.

    The Struct should set ``forbid_unknown_fields=True``: a typo in the table is then a
    start-up error that names the file, line and key. A ``[plugins.NAME]`` table that no
    loaded plugin claims is also a start-up error, unless ``NAME`` is a disabled plugin.

    :return: a mapping of table name (the ``NAME`` in ``[plugins.NAME]``) to a
        ``msgspec.Struct`` type, or None when the plugin has no config table.
    """


@hookspec
def ikefilter_configure(config: SiteConfig, info: PipelineInfo) -> None:
    """Set the plugin up from the site config, once per process, before the first batch.

    This is where a plugin reads its table, opens its databases, loads keys and compiles its
    rules into lookups, so the batch hooks stay tight loops. Every plugin's implementation
    is called (not ``firstresult``).

    Raising any exception refuses start-up: the process prints the plugin's name and the
    exception text and exits, so the text must never hold a secret.

    :param config: the decoded site config. ``config.plugins[NAME]`` holds the plugin's own
        table, decoded into the Struct it claimed in :func:`ikefilter_config_tables`, or
        the raw dict when it claimed none. A missing key means the site has no such table:
        the plugin should stay inactive, not fail.
    :param info: the command running, the config file's path (resolve relative paths
        against it) and whether redaction is on.
    :return: nothing; a returned value is ignored.
    """


@hookspec
def ikefilter_unconfigure(config: SiteConfig) -> None:
    """Release what :func:`ikefilter_configure` opened, once, when the process ends.

    Called after the last batch. Not ``firstresult``: every plugin's implementation is
    called, in pluggy's order; an exception is logged and the next plugin is still called.

    :param config: the same site config object the plugin was configured with.
    :return: nothing; a returned value is ignored.
    """


# -------------------------------------------------------------------------------------------
# Batch stages: once per batch, in this fixed order: enrich, redact, severity
# -------------------------------------------------------------------------------------------
#
# Contract shared by the three stage hooks:
#
# * ``events`` is a list of ``ikefilter.ecs.Event`` Structs (never the pass-through records
#   of non-Clavister input). Change them in place: set fields, build sub-Structs where they
#   are None, add tags with ``event.tag(...)``. Never replace, reorder, add or remove list
#   items: the list stays aligned with the batch.
# * Return None when nothing is to be dropped, or the indices (into ``events``) of the
#   events that must not be written: an iterable of ints counts each drop under the plugin's
#   name in ``stats.dropped_by_rule``; a mapping of index to rule name counts it under
#   ``"<plugin>:<rule>"``. Drops take effect when every implementation of the stage has
#   run, and later stages never see the dropped events.
# * Implementations of one stage run in pluggy's order: the last registered first, unless
#   ``tryfirst``/``trylast`` say otherwise. Each is called on its own, so one that raises
#   does not skip the others.
# * Every event counts: out, dropped (by rule), or quarantined.


@hookspec
def ikefilter_enrich(events: list[Event]) -> Iterable[int] | Mapping[int, str] | None:
    """Add context to a batch of events: site labels, GeoIP, asset data.

    Called once per batch, first of the three stages. Not ``firstresult``: every
    implementation runs, each on its own. Runs before redaction, so it sees the real
    addresses and identities.

    Fails open: when an implementation raises, the batch goes on, every event in it is
    tagged ``ikefilter_enrich_failure`` with an ``error.message`` naming the plugin, and the
    error is logged once per plugin.

    :param events: the batch's events, to change in place (see the stage contract above).
    :return: None, or the events to drop: indices, or a mapping of index to rule name.
    """


@hookspec
def ikefilter_redact(events: list[Event]) -> Iterable[int] | Mapping[int, str] | None:
    """Remove or pseudonymize personal data in a batch of events.

    Called once per batch, after enrichment and before severity remapping. Not
    ``firstresult``: every implementation runs, each on its own. The built-in
    ``redact`` plugin implements it from ``[redact]``. When redaction is on, the host also
    removes ``event.original`` from every event after this stage.

    Fails closed: when an implementation raises, no event of that batch is written; they go
    to the quarantine file (see ``docs/config.md``), are counted in ``stats.quarantined``,
    and the error is logged once per plugin.

    :param events: the batch's events, to change in place (see the stage contract above).
    :return: None, or the events to drop: indices, or a mapping of index to rule name.
    """


@hookspec
def ikefilter_severity(events: list[Event]) -> Iterable[int] | Mapping[int, str] | None:
    """Re-grade a batch of events: change ``event.severity`` and ``log.level``.

    Called once per batch, last, after redaction: it sees redacted values. Not
    ``firstresult``: every implementation runs, each on its own. The built-in
    ``severity`` plugin implements it from ``[[severity.rule]]``. An implementation that
    changes a severity keeps the earlier one in ``clavister.original_severity``.

    Fails open like enrichment: the events go on with their severity as it was, tagged
    ``ikefilter_severity_failure``, and the error is logged once per plugin.

    :param events: the batch's events, to change in place (see the stage contract above).
    :return: None, or the events to drop: indices, or a mapping of index to rule name.
    """


# -------------------------------------------------------------------------------------------
# After the stages: once per batch
# -------------------------------------------------------------------------------------------


@hookspec
def ikefilter_derive(events: list[Event]) -> list[Event] | None:
    """Make new events of what the batch and those before it showed: summaries, alerts.

    Called once per batch, after the three stages have run on it. Not ``firstresult``:
    every implementation runs, each on its own. The events returned are new
    ``ikefilter.ecs.Event`` Structs (never items of ``events``); they go through enrich,
    redact and severity like any event, are written after the batch's own by the commands
    that write a stream (``run``), and are counted in ``stats.derived``. A stateful plugin
    builds them in :func:`ikefilter_enrich`, where it sees the values before redaction,
    and hands them over here. Events derived from derived events are not asked for.

    Fails open: when an implementation raises, nothing is derived from it for that batch,
    and the error is logged once per plugin.

    :param events: the batch's events as they will be written (after every stage; the
        dropped ones left out). Read them, never change them.
    :return: None, or a list of new events.
    """
