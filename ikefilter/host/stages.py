"""The batch stages: enrich, redact, severity, once per batch, with the fault policy of
docs/plugins.md (enrichment fails open, redaction fails closed).

:class:`StageRunner` is the ``stages`` callable of :class:`~ikefilter.pipeline.Pipeline`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pluggy

from .. import ecs
from ..config import SiteConfig
from ..stats import Stats
from .derived import Deriver
from .manager import BUILTIN_PLUGINS, call_impl, hook_impls
from .quarantine import Quarantine, QuarantineRecord

log = logging.getLogger("ikefilter")

TAG_ENRICH_FAILURE = "ikefilter_enrich_failure"
TAG_SEVERITY_FAILURE = "ikefilter_severity_failure"


@dataclass
class _Impl:
    name: str
    call: Callable[[list[ecs.Event]], Any]


@dataclass
class _Stage:
    name: str
    fails_closed: bool
    tag: str | None
    impls: list[_Impl]


STAGES = (
    # hook, stage name, fails closed, tag when it fails open
    ("ikefilter_enrich", "enrich", False, TAG_ENRICH_FAILURE),
    ("ikefilter_redact", "redact", True, None),
    ("ikefilter_severity", "severity", False, TAG_SEVERITY_FAILURE),
)


class StageRunner:
    """The ``stages`` callable of a Pipeline: enrich, redact, severity, once per batch.

    Each implementation is called on its own (never one pluggy call per stage), so a plugin
    that raises neither hides its error nor skips the others. Counts go to :attr:`stats`:
    bind it to the pipeline's with :meth:`bind`.
    """

    def __init__(self, stages: list[_Stage], *, redaction: bool = False,
                 quarantine: Quarantine | None = None, unconfigure: list[_Impl] = ()):
        self.stages = [s for s in stages if s.impls]
        # A site plugin may leave a value no encoder takes (a set, an object): such an
        # event must not take its whole batch down at output. Built-ins are trusted.
        self.check_output = any(
            impl.name not in BUILTIN_PLUGINS for stage in self.stages for impl in stage.impls
        )
        self.redaction = redaction
        self.quarantine = quarantine
        self.stats = Stats()
        self._unconfigure = list(unconfigure)
        self._reported: set[tuple[str, str]] = set()
        self._closed = False
        self.derive: Deriver | None = None  # the ikefilter_derive plugins, when any

    @classmethod
    def from_manager(cls, pm: pluggy.PluginManager, *, redaction: bool = False,
                     quarantine: Quarantine | None = None,
                     config: SiteConfig | None = None) -> StageRunner:
        stages = [
            _Stage(stage, closed, tag, [_bind(impl) for impl in hook_impls(pm, hook)])
            for hook, stage, closed, tag in STAGES
        ]
        unconfigure = [
            _Impl(impl.plugin_name, lambda impl=impl: call_impl(impl, config=config))
            for impl in hook_impls(pm, "ikefilter_unconfigure")
        ]
        runner = cls(stages, redaction=redaction, quarantine=quarantine, unconfigure=unconfigure)
        derive = [(i.plugin_name, _bind(i).call) for i in hook_impls(pm, "ikefilter_derive")]
        runner.derive = Deriver(runner, derive) if derive else None
        return runner

    def bind(self, stats: Stats) -> None:
        """Count into ``stats`` (the pipeline's) from now on."""
        self.stats = stats

    def __call__(self, events: list[ecs.Event]) -> list[ecs.Event | None]:
        out: list[ecs.Event | None] = events
        live = events
        where: list[int] | None = None  # position in ``events`` of each live event
        for stage in self.stages:
            drops: dict[int, str] = {}
            for impl in stage.impls:
                try:
                    result = impl.call(live)
                    if result:
                        _collect(drops, result, impl.name, len(live))
                except Exception as exc:
                    if stage.fails_closed:
                        self._quarantine(live, stage, impl, exc)
                        return [None] * len(events)
                    self._fail_open(live, stage, impl, exc)
            if drops:
                if out is events:
                    out = list(events)
                stats = self.stats
                by_rule = stats.dropped_by_rule
                for i, rule in drops.items():
                    out[where[i] if where is not None else i] = None
                    by_rule[rule] = by_rule.get(rule, 0) + 1
                stats.dropped += len(drops)
                where = [where[i] if where is not None else i
                         for i in range(len(live)) if i not in drops]
                live = [events[i] for i in where]
                if not live:
                    break
        if self.redaction:
            # Whatever the plugins did, the raw line never leaves a redacting process.
            for event in live:
                event.event.original = None
        if self.check_output and live:
            out = self._encodable(events, out, live, where)
        return out

    def _encodable(self, events: list[ecs.Event], out: list[ecs.Event | None],
                   live: list[ecs.Event], where: list[int] | None) -> list[ecs.Event | None]:
        """Replace each event a plugin left unencodable with a tagged failure event."""
        try:
            _check_encoder.encode(live)
            return out
        except (TypeError, ValueError, OverflowError):
            pass
        if out is events:
            out = list(events)
        for i, event in enumerate(live):
            try:
                _check_encoder.encode(event)
            except (TypeError, ValueError, OverflowError) as exc:
                why = f"a site plugin left a value that cannot be encoded ({type(exc).__name__})"
                if ("output", type(exc).__name__) not in self._reported:
                    self._reported.add(("output", type(exc).__name__))
                    log.error("%s; such events are written as tagged %s (logged once)",
                              why, ecs.TAG_INTERNAL_ERROR)
                out[where[i] if where is not None else i] = ecs.failure(
                    why, ["clavister", ecs.TAG_INTERNAL_ERROR], ecs.now(), code=_plain_code(event))
        return out

    def _fail_open(self, live: list[ecs.Event], stage: _Stage, impl: _Impl,
                   exc: Exception) -> None:
        self._report(stage, impl, exc, f"events go on tagged {stage.tag}")
        why = f"{stage.name} plugin {impl.name} failed ({type(exc).__name__})"
        for event in live:
            event.tag(stage.tag)
            event.add_error(why)

    def _quarantine(self, live: list[ecs.Event], stage: _Stage, impl: _Impl,
                    exc: Exception) -> None:
        where = f"to {self.quarantine.path}" if self.quarantine else "discarded: no quarantine"
        self._report(stage, impl, exc, f"its batches are quarantined ({where})")
        self.stats.quarantined += len(live)
        if self.quarantine is None:
            return
        now = ecs.now()
        records = [
            QuarantineRecord(now, stage.name, impl.name, type(exc).__name__, e.event.code,
                             e.event.original)
            for e in live
        ]
        try:
            self.quarantine.write(records)
        except OSError as err:
            log.error("cannot write the quarantine file %s (%s): %d events lost",
                      self.quarantine.path, err.strerror, len(records))

    def _report(self, stage: _Stage, impl: _Impl, exc: Exception, consequence: str) -> None:
        key = (stage.name, impl.name)
        if key in self._reported:
            log.debug("%s plugin %s failed again", stage.name, impl.name, exc_info=exc)
            return
        self._reported.add(key)
        # With redaction on, an exception's text may hold the values being redacted: the
        # type alone goes to the log, the traceback only at debug level.
        detail = type(exc).__name__ if self.redaction else f"{type(exc).__name__}: {exc}"
        log.error("%s plugin %s failed (%s); %s (logged once)", stage.name, impl.name,
                  detail, consequence)
        log.debug("traceback of %s plugin %s", stage.name, impl.name, exc_info=exc)

    def close(self) -> None:
        """Call every ``ikefilter_unconfigure`` and close the quarantine. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for impl in self._unconfigure:
            try:
                impl.call()
            except Exception as exc:
                log.error("plugin %s failed to unconfigure: %s: %s", impl.name,
                          type(exc).__name__, exc)
        if self.quarantine is not None:
            self.quarantine.close()


_check_encoder = msgspec.json.Encoder()


def _plain_code(event: ecs.Event) -> str | None:
    code = getattr(getattr(event, "event", None), "code", None)
    return code if isinstance(code, str) else None


def _bind(impl: pluggy.HookImpl) -> _Impl:
    fn = impl.function
    if tuple(impl.argnames) == ("events",):
        return _Impl(impl.plugin_name, fn)
    return _Impl(impl.plugin_name, lambda events: fn())


def _collect(drops: dict[int, str], result: Any, plugin: str, n: int) -> None:
    if isinstance(result, dict):
        items = ((i, f"{plugin}:{rule}") for i, rule in result.items())
    else:
        items = ((i, plugin) for i in result)
    for i, rule in items:
        if type(i) is not int or not 0 <= i < n:
            raise TypeError(f"{plugin} returned {i!r}, not an index of the batch (0-{n - 1})")
        drops[i] = rule
