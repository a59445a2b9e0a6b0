"""The built-in severity remapping: first matching rule wins, level follows, original kept."""

from __future__ import annotations

import pytest

from ikefilter import app, catalog, generate
from ikefilter.config import loads
from ikefilter.ecs import Event
from ikefilter.plugins.severity import SeverityPlugin

DPD = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=1 id=803 rev=1 remoteip=81.2.3.4"  # Info
POOL = "<134>[2026-11-26 10:00:00] EFW: IKE,IPSEC: prio=1 id=1693 rev=1 ip=10.1.1.1"
WATCHDOG = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=3 id=770 rev=1"  # category host


def run(rules: str, lines: list[str]):
    p = app.build_pipeline(loads(rules, "site.toml"), entry_points=False)
    return p, p.process_lines(lines)


def test_a_code_rule_sets_severity_level_and_keeps_the_original():
    _, [event] = run('[[severity.rule]]\ncode = "803"\nseverity = "warning"\n', [DPD])
    assert event.event.severity == 4
    assert event.log.level == "warning"
    assert event.clavister.original_severity == 6
    assert event.log.syslog.severity.code == 6  # the header as sent is not rewritten


def test_without_rules_nothing_changes():
    _, [event] = run("", [DPD])
    assert event.event.severity == 6 and event.clavister.original_severity is None


def test_action_and_category_rules():
    rules = ('[[severity.rule]]\naction = "ike-peer-dead"\nseverity = 2\n'
             '[[severity.rule]]\ncategory = "process"\nseverity = "err"\n')
    _, [dpd, pool, watchdog] = run(rules, [DPD, POOL, WATCHDOG])
    assert (dpd.event.severity, dpd.log.level) == (2, "critical")
    assert pool.event.severity == 6 and pool.clavister.original_severity is None
    assert (watchdog.event.severity, watchdog.log.level) == (3, "error")
    assert watchdog.clavister.original_severity == 4


def test_the_first_matching_rule_wins_whatever_it_matches_on():
    first_category = ('[[severity.rule]]\ncategory = "network"\nseverity = 1\n'
                      '[[severity.rule]]\ncode = 803\nseverity = 7\n')
    _, [event] = run(first_category, [DPD])
    assert event.event.severity == 1
    first_code = ('[[severity.rule]]\ncode = 803\nseverity = 7\n'
                  '[[severity.rule]]\ncategory = "network"\nseverity = 1\n')
    _, [event, pool] = run(first_code, [DPD, POOL])
    assert event.event.severity == 7 and pool.event.severity == 1


def test_drop_rules_are_counted_by_name():
    rules = ('[[severity.rule]]\nname = "pool-noise"\ncode = 1693\ndrop = true\n'
             '[[severity.rule]]\ncode = 803\ndrop = true\n')
    p, out = run(rules, [POOL, DPD, WATCHDOG, POOL])
    assert [e is None for e in out] == [True, True, False, True]
    assert p.stats.dropped == 3
    assert p.stats.dropped_by_rule == {"severity:pool-noise": 2, "severity:rule[1]": 1}
    assert p.stats.in_ == p.stats.out + p.stats.dropped


def test_unknown_messages_match_by_code():
    line = "<134>[2026-11-26 10:00:00] EFW: IKE: prio=1 id=4242 rev=1"
    _, [event] = run('[[severity.rule]]\ncode = 4242\nseverity = "alert"\n', [line])
    assert event.event.severity == 1 and event.log.level == "alert"


def test_an_event_without_a_severity_gets_one():
    _, [event] = run('[[severity.rule]]\ncode = 4242\nseverity = 3\n',
                     ["EFW: IKE: id=4242"])
    assert event.event.severity == 3 and event.log.level == "error"
    assert event.clavister.original_severity is None


def test_rules_compile_to_lookups_and_answers_are_memoized():
    p, _ = run('[[severity.rule]]\ncode = 803\nseverity = 4\n'
               '[[severity.rule]]\ncode = 803\nseverity = 1\n'
               '[[severity.rule]]\naction = "ike-sa-deleted"\nseverity = 3\n', [DPD, DPD])
    plugin = p.site.pm.get_plugin("severity")
    assert isinstance(plugin, SeverityPlugin)
    assert plugin.by_code == {"803": 0}  # the later duplicate can never win
    assert plugin.by_action == {"ike-sa-deleted": 2}
    assert list(plugin.memo.values()) == [0]


@pytest.mark.parametrize("dialect", ["clavister", "syslog"])
def test_whole_corpus(dialect):
    lines = list(generate.lines(catalog.load(), 28 * 11))
    rules = (f'[ikefilter]\nseverity_dialect = "{dialect}"\n'
             '[[severity.rule]]\ncategory = "configuration"\nseverity = "warning"\n')
    _, out = run(rules, lines)
    events = [e for e in out if isinstance(e, Event)]
    hosts = [e for e in events if "configuration" in (e.event.category or [])]
    assert hosts and all(e.event.severity == 4 and e.log.level == "warning" for e in hosts)
    others = [e for e in events if e not in hosts]
    assert all(e.clavister.original_severity is None for e in others)
