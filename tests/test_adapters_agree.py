"""One record decoder for every adapter: the same content, handed over the way each engine
hands it, gives the same document in ``run``, the msgpack stream, ``forward``, the syslog-ng
parser and rsyslog's mmexternal."""

from __future__ import annotations

import asyncio
import io
import json

import msgspec
import pytest

from ikefilter import app
from ikefilter.adapters import lines, mmexternal, msgpack_stream, syslogng
from ikefilter.adapters.forward.entries import encode_packed_forward, event_time, pack_entries
from ikefilter.adapters.forward.server import ForwardServer

BODY = ("prio=2 id=590 rev=1 event=ike_sa_deleted localip=203.0.113.1 remoteip=81.2.3.4"
        " localikespi=b48efa0b1f0abd80 remoteikespi=e998a35aba5ea0bd iface=ipsec_branch07")
# What sits in the line field: a JSON line a shipper carried as text (Fluent Bit tail without
# a parser, rsyslog handing a JSON line over), split pairs as JSON, and a plain line.
CONTENTS = [
    json.dumps({"log": f"<134>[2026-11-26 10:00:00] EFW: IKE: {BODY}", "host": "fw1"}),
    json.dumps({"message": f"EFW: IKE: {BODY}", "@timestamp": "2026-11-26T09:00:00.250Z"}),
    json.dumps({"id": "530", "localip": "10.0.0.1", "remoteip": "10.0.0.2", "initiator": "yes",
                "@timestamp": "2026-11-26T10:00:01Z", "host": "fw2"}),
    json.dumps({"id": "530", "localport": 500, "remoteip": "10.0.0.2"}),
    f"<134>[2026-11-26 10:00:02] EFW: IKE: {BODY}",
]
UNTIMED = 3  # carries no time anywhere: each adapter stamps it its own way


def pipeline():
    return app.build_pipeline(entry_points=False)


def comparable(doc: dict) -> dict:
    doc["event"].pop("ingested", None)  # each process's own clock
    return doc


def via_run() -> list[dict]:
    out = io.BytesIO()
    lines.run(pipeline(), [io.BytesIO("\n".join(CONTENTS).encode())], out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def via_msgpack_stream() -> list[dict]:
    out = io.BytesIO()
    data = b"".join(msgspec.msgpack.encode({"log": text}) for text in CONTENTS)
    msgpack_stream.run(pipeline(), io.BytesIO(data), out, output_format="json")
    return [json.loads(line) for line in out.getvalue().splitlines()]


def via_forward() -> list[dict]:
    written: list[bytes] = []

    async def main():
        server = ForwardServer(pipeline(), ("127.0.0.1", 0), output=written.append)
        host, port = await server.start()
        try:
            payload, size = pack_entries([event_time(1795687200)] * len(CONTENTS),
                                         [{"log": text} for text in CONTENTS])
            frame = encode_packed_forward("ike", payload, "c1", size)
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(frame)
            await writer.drain()
            assert msgspec.msgpack.decode(await reader.read(1024)) == {"ack": "c1"}
            writer.close()
        finally:
            await server.stop()

    asyncio.run(main())
    return [json.loads(line) for chunk in written for line in chunk.splitlines()]


def via_syslog_ng() -> list[dict]:
    parser = syslogng.Parser()
    assert parser.init({})
    docs = []
    try:
        for text in CONTENTS:
            message = {"RAWMSG": text.encode(), "HOST": b"", "ISODATE": b""}
            assert parser.parse(message)
            docs.append(json.loads(message[syslogng.DEFAULT_OUTPUT_FIELD]))
    finally:
        parser.deinit()
    return docs


def via_mmexternal() -> list[dict]:
    answers = mmexternal.Answers(pipeline())
    replies = [answers.one(json.dumps({"rawmsg": text}).encode()) for text in CONTENTS]
    return [json.loads(reply)["$!"] for reply in replies]


ADAPTERS = {"msgpack stream": via_msgpack_stream, "forward": via_forward,
            "syslog-ng": via_syslog_ng, "mmexternal": via_mmexternal}


@pytest.fixture(scope="module")
def reference() -> list[dict]:
    docs = [comparable(d) for d in via_run()]
    assert len(docs) == len(CONTENTS)
    # the JSON line in "log" is read as run reads it: the device time, the interface
    assert docs[0]["@timestamp"] == "2026-11-26T10:00:00.000Z"
    assert docs[0]["clavister"]["iface"] == "ipsec_branch07"
    assert docs[1]["@timestamp"] == "2026-11-26T09:00:00.250Z"
    assert docs[2]["event"]["code"] == "530" and docs[2]["observer"]["hostname"] == "fw2"
    assert all("ikefilter_parse_failure" not in d["tags"] for d in docs)
    return docs


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_every_adapter_writes_what_run_writes(name, reference):
    docs = [comparable(d) for d in ADAPTERS[name]()]
    assert len(docs) == len(reference)
    for i, (content, doc, expected) in enumerate(zip(CONTENTS, docs, reference, strict=True)):
        if i == UNTIMED:  # the time of receipt, or the forward frame's time
            doc.pop("@timestamp")
            expected = {k: v for k, v in expected.items() if k != "@timestamp"}
        assert doc == expected, (name, content)


# JSON lines at the edges of what is read as a record: each goes through mmexternal's own
# path for one message, and must come out as ``run`` writes it.
EDGE_LINES = [
    b"\xef\xbb\xbf" + json.dumps({"log": CONTENTS[4]}).encode(),  # a BOM before the record
    json.dumps({"log": CONTENTS[4], "note": "x"}).encode()[:-2] + b"\xff\"}",  # not UTF-8
    json.dumps({"log": CONTENTS[4], "deep": [[[[[[1]]]]]]}).encode(),  # deeper than allowed
    json.dumps({"log": CONTENTS[4], "pad": "x" * 400}).encode(),  # longer than allowed
    json.dumps({"log": CONTENTS[4], "n": 1}).encode()[:-1],  # not JSON
    json.dumps(json.loads(CONTENTS[2])).encode(),  # split pairs: no line under a source key
    b"[" + json.dumps({"log": CONTENTS[4]}).encode() + b"]",  # not an object
]


@pytest.mark.parametrize("line", EDGE_LINES, ids=range(len(EDGE_LINES)))
def test_mmexternal_reads_a_json_line_as_run_reads_it(line):
    def limited():
        return app.build_pipeline(entry_points=False, max_line=300, max_depth=4)

    expected = limited().process_lines([line])[0]
    reply = json.loads(mmexternal.Answers(limited()).one(line))
    if type(expected) is dict:  # a record passed on unchanged: mmexternal leaves it alone
        assert reply == {}
        return
    got, want = reply["$!"], json.loads(msgspec.json.encode(expected))
    if want["event"].get("ingested") in (None, want["@timestamp"]):
        # stamped by the clock (a failure, a line with no time): a moment apart in each
        got.pop("@timestamp")
        want.pop("@timestamp")
    assert comparable(got) == comparable(want)


def test_a_line_sent_as_msgpack_bin_is_read_as_text_by_forward_as_by_the_stream():
    """Fluentd packs a Ruby string not marked UTF-8 as msgpack bin, through out_forward and
    exec_filter alike."""
    from ikefilter.adapters.forward.entries import EventTimes
    from ikefilter.adapters.forward.frames import decode_frame
    from ikefilter.pipeline import Pipeline

    line = b"[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 rev=1 localip=10.0.0.1 host=\xff"
    frame = msgspec.msgpack.encode(["t", [[1_700_000_000, {"log": line, "tag": b"fw"}]]])
    decoded = decode_frame(frame)
    assert decoded.records[0]["log"] == line  # bytes as the frame carries them
    [event] = Pipeline().process_records(decoded.records, EventTimes(decoded.times))
    assert event.event.code == "530" and event.related.ip == ["10.0.0.1"]
    assert event.event.original == line.decode("utf-8", "replace")
