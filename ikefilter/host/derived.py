"""Events the plugins derive from the stream (``ikefilter_derive``): summaries, alerts.

They are new events, not inputs. Each goes through the same stages as the batch's own
(enrich, redact, severity: a summary leaks nothing redaction would remove), is written
after the batch where the output is a stream (``ikefilter run``), and is counted in
``stats.derived``, so the counts still add up: ``in + derived = out + dropped +
quarantined``. Where the output is one reply per input (syslog-ng, rsyslog) or a frame
acknowledged as sent (forward), there is no place for them: they are counted as dropped
under ``derived:not-written``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .. import ecs

log = logging.getLogger("ikefilter")

RULE_NOT_WRITTEN = "derived:not-written"


class Deriver:
    """Calls every ``ikefilter_derive`` once per batch and stages what they return.

    :param runner: the stage runner (``host.StageRunner``): the derived events go through
        it, and it counts their drops and quarantine in its ``stats`` (the pipeline's).
    :param impls: (plugin name, callable taking the batch's events), in pluggy's order.
    """

    def __init__(self, runner: Any,
                 impls: list[tuple[str, Callable[[list[ecs.Event]], Any]]]):
        self.runner = runner
        self.impls = impls
        self._reported: set[str] = set()

    def collect(self, events: list[ecs.Event]) -> list[ecs.Event]:
        """What every plugin derives from ``events``; a plugin that raises gives nothing."""
        made: list[ecs.Event] = []
        for name, call in self.impls:
            try:
                result = call(events)
                if not result:
                    continue
                result = list(result)
                wrong = next((e for e in result if type(e) is not ecs.Event), None)
                if wrong is not None:
                    raise TypeError(f"returned a {type(wrong).__name__}, not an Event")
            except Exception as exc:
                if name not in self._reported:
                    self._reported.add(name)
                    log.error("derive plugin %s failed (%s); nothing is derived from it for"
                              " such batches (logged once)", name, type(exc).__name__)
                log.debug("traceback of derive plugin %s", name, exc_info=exc)
                continue
            made += result
        return made

    def __call__(self, out: list, write: bool) -> list:
        """``out`` (a finished batch) with the derived events, staged, after it when
        ``write``; else ``out`` as it is, the derived events counted as not written (in the
        runner's counts, the pipeline's)."""
        made = self.collect([item for item in out if type(item) is ecs.Event])
        if not made:
            return out
        stats = self.runner.stats
        stats.derived += len(made)
        if not write:  # no room for them in this adapter's output: not staged for nothing
            stats.dropped += len(made)
            stats.dropped_by_rule[RULE_NOT_WRITTEN] = (
                stats.dropped_by_rule.get(RULE_NOT_WRITTEN, 0) + len(made))
            return out
        kept = [event for event in self.runner(made) if event is not None]
        stats.out += len(kept)
        return [*out, *kept] if kept else out
