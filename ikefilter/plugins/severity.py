"""Built-in severity remapping, configured by ``[[severity.rule]]``: a plugin like any site's.

Each rule matches on exactly one of ``code`` (the message ID), ``action`` (``event.action``)
or ``category`` (any ``event.category`` value), and either sets ``severity`` (a name or 0-7)
or drops the event (``drop = true``). The first matching rule wins. ``event.severity`` and
``log.level`` follow; the severity before remapping stays in ``clavister.original_severity``.

Rules are compiled once, at configure time, into dict lookups; the answer for each
(code, action, categories) seen is memoized, so the batch loop is one dict lookup per event.
"""

from __future__ import annotations

from .. import hookimpl
from ..config import PipelineInfo, SeverityRule, SiteConfig
from ..ecs import Clavister, Event, Log
from ..severity import LEVELS

_MISS = object()
_MEMO_MAX = 4096


class SeverityPlugin:
    """Severity rules from ``[[severity.rule]]``; inactive without rules."""

    def __init__(self) -> None:
        self.rules: list[SeverityRule] = []

    @hookimpl
    def ikefilter_configure(self, config: SiteConfig, info: PipelineInfo) -> None:
        self.rules = list(config.severity.rule)
        self.labels = [r.name or f"rule[{i}]" for i, r in enumerate(self.rules)]
        # First rule wins: keep the lowest index per key.
        self.by_code: dict[str, int] = {}
        self.by_action: dict[str, int] = {}
        self.by_category: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if rule.code is not None:
                self.by_code.setdefault(rule.code, i)
            elif rule.action is not None:
                self.by_action.setdefault(rule.action, i)
            else:
                self.by_category.setdefault(rule.category, i)
        self.memo: dict[tuple, int | None] = {}

    def match(self, code: str | None, action: str | None, categories: list[str] | None
              ) -> int | None:
        """The index of the first rule that matches, or None."""
        found = []
        if code is not None and code in self.by_code:
            found.append(self.by_code[code])
        if action is not None and action in self.by_action:
            found.append(self.by_action[action])
        if categories:
            found += [self.by_category[c] for c in categories if c in self.by_category]
        return min(found) if found else None

    @hookimpl
    def ikefilter_severity(self, events: list[Event]) -> dict[int, str] | None:
        if not self.rules:
            return None
        memo = self.memo
        rules = self.rules
        by_category, by_action = self.by_category, self.by_action
        drops: dict[int, str] | None = None
        for i, ev in enumerate(events):
            e = ev.event
            cats = e.category
            # Only what some rule looks at: the code alone is the common key.
            if by_category:
                key = (e.code, e.action, tuple(cats) if cats else None)
            elif by_action:
                key = (e.code, e.action)
            else:
                key = e.code
            hit = memo.get(key, _MISS)
            if hit is _MISS:
                hit = self.match(e.code, e.action, cats)
                if len(memo) >= _MEMO_MAX:
                    memo.clear()
                memo[key] = hit
            if hit is None:
                continue
            rule = rules[hit]
            if rule.drop:
                if drops is None:
                    drops = {}
                drops[i] = self.labels[hit]
                continue
            sev = rule.severity
            clav = ev.clavister
            if clav is None:
                ev.clavister = clav = Clavister()
            if clav.original_severity is None:
                clav.original_severity = e.severity
            e.severity = sev
            if ev.log is None:
                ev.log = Log(level=LEVELS[sev])
            else:
                ev.log.level = LEVELS[sev]
        return drops
