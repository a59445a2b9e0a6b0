"""ECS categorisation under the strict rule Kibana's validators apply: every ``event.type`` of
an event is one that each of its ``event.category`` values expects (ECS 9.5's
``expected_event_types``, in tests/data/ecs-allowed-values.json)."""

from __future__ import annotations

import json

import msgspec
import pytest
from conftest import DATA
from test_ecs_fields import HOSTILE

from ikefilter import catalog, ecs, generate
from ikefilter.pipeline import Pipeline

ALLOWED = json.loads((DATA / "ecs-allowed-values.json").read_text())
EXPECTED = ALLOWED["expected_event_types_by_category"]


def strictly_wrong(categories: list[str], types: list[str]) -> list[str]:
    """Each (category, type) pair the category does not expect."""
    return [f"{t} in {c}" for c in categories for t in types if t not in EXPECTED.get(c, ())]


def test_the_rule_itself():
    assert strictly_wrong(["network", "session"], ["connection", "start"]) == [
        "connection in session"]
    assert strictly_wrong(["network", "session"], ["start"]) == []


@pytest.mark.parametrize("msg", catalog.load().messages, ids=lambda m: str(m.id))
def test_every_message_of_the_catalog(msg):
    assert msg.ecs.category and msg.ecs.type
    assert set(msg.ecs.category) <= set(ALLOWED["allowed_values"]["event.category"])
    assert set(msg.ecs.type) <= set(ALLOWED["allowed_values"]["event.type"])
    assert strictly_wrong(msg.ecs.category, msg.ecs.type) == []


def test_every_generated_document():
    lines = list(generate.lines(catalog.load(), 28 * len(generate.SHAPES) * 3))
    lines += list(generate.lines(catalog.load(), 28 * 20, seed=3, mix="wild")) + HOSTILE
    docs = [json.loads(msgspec.json.encode(o)) for o in Pipeline().process_lines(lines)
            if type(o) is ecs.Event]
    classified = [d["event"] for d in docs if "category" in d["event"]]
    assert len({e["code"] for e in classified}) == 28
    wrong = {(e["code"], w) for e in classified for w in strictly_wrong(e["category"], e["type"])}
    assert wrong == set()
