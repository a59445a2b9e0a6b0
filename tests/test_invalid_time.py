"""A time that is not a time is never a silent fallback: the record's, or the shipper's."""

from __future__ import annotations

import json

import msgspec

from ikefilter.adapters.forward.entries import EventTimes, event_time
from ikefilter.pipeline import Pipeline

LINE = "EFW: IKE: prio=2 id=530 rev=1 localip=10.0.0.1 remoteip=10.0.0.2"
TAG = "ikefilter_invalid_time"


def test_a_shipper_time_out_of_range_is_tagged_and_the_clock_used():
    p = Pipeline()
    # 9999-12-31T23:59:59Z is the last second; a float past the year 300,000 is no time
    raw = [event_time(1, 0), 253402300800, -62135596801, 9.9e12, None]
    out = p.process_records([{"log": LINE} for _ in raw], EventTimes(raw))
    assert out[0].timestamp == "1970-01-01T00:00:01.000Z" and out[0].tags == ["clavister", "ike"]
    for event in out[1:4]:
        assert TAG in event.tags and "shipper's time" in event.error.message
        assert event.timestamp == event.event.ingested  # the time it was taken in
    assert out[4].tags == ["clavister", "ike"]  # no time given: nothing to say
    assert p.stats.tagged == 3


def test_a_record_time_that_is_not_a_time_is_tagged_in_every_path():
    p = Pipeline()
    bad = {"log": LINE, "@timestamp": "2026-02-30T10:00:00Z"}
    split = {"id": "530", "localip": "10.0.0.1", "time": "yesterday"}
    good = {"log": LINE, "@timestamp": "2026-11-26T10:00:00Z"}
    out = p.process_records([bad, split, good])
    assert [TAG in e.tags for e in out] == [True, True, False]
    assert "'2026-02-30T10:00:00Z'" in out[0].error.message
    assert out[2].timestamp == "2026-11-26T10:00:00.000Z"
    lines = [json.dumps(bad), json.dumps(good)]
    docs = [json.loads(msgspec.json.encode(e)) for e in p.process_lines(lines)]
    assert [TAG in d["tags"] for d in docs] == [True, False]


def test_a_line_with_its_own_time_is_not_tagged_for_its_record():
    p = Pipeline()
    line = "<134>[2026-11-26 10:00:00] " + LINE
    [event] = p.process_records([{"log": line, "@timestamp": "garbage"}], [""])
    assert event.timestamp == "2026-11-26T10:00:00.000Z" and TAG not in event.tags


def test_the_batch_lane_and_the_per_record_path_tag_alike():
    records = [{"log": "hello world"}, {"log": LINE}, {"log": LINE, "time": "soon"},
               {"id": "530", "time": "soon"}, {"id": "530"}]
    shipper = ["", "", "2026-11-26T10:00:00.000Z", "", ""]
    tags = []
    for fast in (True, False):
        p = Pipeline(non_clavister="tag", fast=fast)
        tags.append([e.tags for e in p.process_records(records, shipper)])
    assert tags[0] == tags[1]
    assert [TAG in t for t in tags[0]] == [False, True, True, True, True]
