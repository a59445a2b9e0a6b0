"""Fluent Forward frame decoding and stream splitting, byte by byte."""

from __future__ import annotations

import gzip
import hashlib
import struct

import msgspec
import pytest
from msgspec.msgpack import Ext

from ikefilter.adapters.forward import protocol
from ikefilter.adapters.forward.protocol import (
    Frame,
    FrameError,
    FrameSplitter,
    count_objects,
    decode_ack,
    decode_frame,
    encode_ack,
    event_time,
    event_time_ns,
    pack_entries,
)
from ikefilter.adapters.msgpack_framing import walk

enc = msgspec.msgpack.Encoder()

SECONDS, NANOS = 1_700_000_000, 123_456_789
FIXEXT8_TIME = b"\xd7\x00" + struct.pack(">II", SECONDS, NANOS)
EXT8_TIME = b"\xc7\x08\x00" + struct.pack(">II", SECONDS, NANOS)
RECORD = {"log": "IKE_SA established", "host": "fw1", "n": 7}


def msgpack_str(text: str) -> bytes:
    return enc.encode(text)


def str32(data: bytes) -> bytes:
    """A msgpack str32 header as Fluentd's out_forward writes it, whatever the bytes are."""
    return b"\xdb" + len(data).to_bytes(4, "big") + data


def bin32(data: bytes) -> bytes:
    return b"\xc6" + len(data).to_bytes(4, "big") + data


def entries_bytes(time_bytes: bytes, records: list[dict]) -> bytes:
    """Concatenated ``[time, record]`` entries with the time encoded exactly as given."""
    return b"".join(b"\x92" + time_bytes + enc.encode(r) for r in records)


def records_n(n: int) -> list[dict]:
    return [{"log": f"line {i}", "seq": i} for i in range(n)]


def assert_times(frame: Frame, expected_ns: int) -> None:
    assert [event_time_ns(t) for t in frame.times] == [expected_ns] * len(frame.records)


EXPECTED_NS = SECONDS * 1_000_000_000 + NANOS


# --------------------------------------------------------------------------------------------
# modes and time encodings


@pytest.mark.parametrize("time_bytes", [FIXEXT8_TIME, EXT8_TIME], ids=["fixext8", "ext8"])
def test_message_mode_event_time(time_bytes: bytes) -> None:
    raw = b"\x93" + msgpack_str("ike") + time_bytes + enc.encode(RECORD)
    frame = decode_frame(raw)
    assert (frame.tag, frame.mode, frame.records, frame.chunk) == ("ike", "message", [RECORD], None)
    assert_times(frame, EXPECTED_NS)
    assert frame.times[0].code == 0 and frame.times[0].data == time_bytes[-8:]


def test_message_mode_int_and_float_time_with_chunk() -> None:
    frame = decode_frame(enc.encode(["ike", SECONDS, RECORD, {"chunk": "c1"}]))
    assert frame.times == [SECONDS] and frame.chunk == "c1"
    frame = decode_frame(enc.encode(["ike", 1.5, RECORD]))
    assert event_time_ns(frame.times[0]) == 1_500_000_000


@pytest.mark.parametrize("time_bytes", [FIXEXT8_TIME, EXT8_TIME], ids=["fixext8", "ext8"])
def test_forward_mode(time_bytes: bytes) -> None:
    records = records_n(3)
    raw = (
        b"\x93"
        + msgpack_str("ike")
        + b"\x93"
        + entries_bytes(time_bytes, records)
        + enc.encode({"chunk": "abc"})
    )
    frame = decode_frame(raw)
    assert (frame.mode, frame.records, frame.chunk) == ("forward", records, "abc")
    assert_times(frame, EXPECTED_NS)


@pytest.mark.parametrize("time_bytes", [FIXEXT8_TIME, EXT8_TIME], ids=["fixext8", "ext8"])
@pytest.mark.parametrize("header", [bin32, str32], ids=["bin", "str32"])
def test_packed_forward_bin_and_str32(header, time_bytes: bytes) -> None:
    records = records_n(20)
    payload = entries_bytes(time_bytes, records)
    raw = b"\x93" + msgpack_str("ike") + header(payload) + enc.encode({"size": 20, "chunk": "z"})
    frame = decode_frame(raw)
    assert (frame.mode, frame.records, frame.chunk) == ("packed", records, "z")
    assert_times(frame, EXPECTED_NS)


def test_packed_str32_is_read_as_raw_bytes_not_utf8() -> None:
    # nanoseconds 0xFFFFFFFF-like bytes and 0x92 lead bytes are never valid UTF-8
    payload = entries_bytes(b"\xd7\x00" + b"\xff" * 8, [RECORD])
    with pytest.raises(UnicodeDecodeError):
        payload.decode("utf-8")
    frame = decode_frame(b"\x92" + msgpack_str("ike") + str32(payload))
    assert frame.records == [RECORD] and frame.times[0].data == b"\xff" * 8


@pytest.mark.parametrize("size_option", [None, 5, 999], ids=["no-size", "right", "wrong"])
def test_packed_entry_count_with_or_without_size_option(size_option) -> None:
    records = records_n(5)
    option = {} if size_option is None else {"size": size_option}
    raw = enc.encode(["ike", entries_bytes(FIXEXT8_TIME, records), option])
    assert decode_frame(raw).records == records


@pytest.mark.parametrize("header", [bin32, str32], ids=["bin", "str32"])
def test_compressed_packed_forward_multi_member_gzip(header) -> None:
    records = records_n(30)
    payload = entries_bytes(FIXEXT8_TIME, records)
    # members split inside an entry: only the concatenation is msgpack
    members = (
        gzip.compress(payload[:7]) + gzip.compress(payload[7:500]) + gzip.compress(payload[500:])
    )
    raw = (
        b"\x93"
        + msgpack_str("ike")
        + header(members)
        + enc.encode({"compressed": "gzip", "size": 30, "chunk": "q=="})
    )
    frame = decode_frame(raw)
    assert (frame.mode, frame.records, frame.chunk) == ("compressed", records, "q==")


def test_compressed_limits_and_bad_gzip() -> None:
    big = entries_bytes(FIXEXT8_TIME, [{"log": "x" * 1000}] * 50)
    raw = enc.encode(["ike", gzip.compress(big), {"compressed": "gzip"}])
    with pytest.raises(FrameError, match="larger"):
        decode_frame(raw, max_decompressed=10_000)
    assert len(decode_frame(raw, max_decompressed=len(big)).records) == 50
    with pytest.raises(FrameError, match="gzip"):
        decode_frame(enc.encode(["ike", b"not gzip", {"compressed": "gzip"}]))
    with pytest.raises(FrameError, match="truncated"):
        decode_frame(enc.encode(["ike", gzip.compress(big)[:-20], {"compressed": "gzip"}]))
    with pytest.raises(FrameError, match="compression"):
        decode_frame(enc.encode(["ike", big, {"compressed": "zstd"}]))


def test_fluent_bit_metadata_entries() -> None:
    metadata = {"otel": {"trace_id": "ab"}}
    entries = b"".join(
        b"\x92\x92" + FIXEXT8_TIME + enc.encode(metadata) + enc.encode(r) for r in records_n(3)
    )
    frame = decode_frame(enc.encode(["ike", entries, {"size": 3}]))
    assert frame.records == records_n(3)
    assert_times(frame, EXPECTED_NS)
    frame = decode_frame(enc.encode(["ike", [[[event_time(SECONDS, NANOS), metadata], RECORD]]]))
    assert frame.records == [RECORD]
    assert_times(frame, EXPECTED_NS)


def test_heartbeat_is_none() -> None:
    assert decode_frame(b"\xc0") is None


def test_chunk_echoed_exactly() -> None:
    for chunk in ("0123456789abcdef0123456789abcdef", "p8n9gmxTQVC8/nh2wlKKeQ==\n", b"\x00\xff"):
        frame = decode_frame(enc.encode(["ike", 1, RECORD, {"chunk": chunk}]))
        assert frame.chunk == chunk
        ack = encode_ack(frame.chunk)
        assert ack == enc.encode({"ack": chunk})
        assert decode_ack(ack) == chunk


def test_invalid_entries_are_counted_not_processed() -> None:
    frame = decode_frame(enc.encode(["ike", [[1, RECORD], [1, "not a map"], "junk", [2, RECORD]]]))
    assert frame.records == [RECORD, RECORD] and frame.times == [1, 2] and frame.invalid == 2


def test_record_strings_that_are_not_utf8_are_replaced_not_fatal() -> None:
    bad = b"\x82\xa3log\xa4caf\xe9\xa1n\x01"  # {"log": b"caf\xe9", "n": 1} as str
    good = enc.encode(RECORD)
    payload = b"\x92" + FIXEXT8_TIME + good + b"\x92" + FIXEXT8_TIME + bad
    for raw in (
        enc.encode(["ike", payload, {"size": 2}]),
        b"\x93" + msgpack_str("ike") + str32(payload) + enc.encode({"size": 2}),
        b"\x93" + msgpack_str("ike") + FIXEXT8_TIME + bad,
        b"\x92" + msgpack_str("ike") + b"\x92\x92" + FIXEXT8_TIME + good + b"\x92\x01" + bad,
    ):
        frame = decode_frame(raw)
        assert frame.records[-1] == {"log": "caf\ufffd", "n": 1}
        assert_times(frame, EXPECTED_NS) if frame.mode != "forward" else None


@pytest.mark.parametrize(
    "raw, message",
    [
        (enc.encode("just a string"), "array"),
        (enc.encode([1, 2]), "tag"),
        (enc.encode(["ike"]), "array"),
        (enc.encode(["ike", 1]), "record"),
        (enc.encode(["ike", [], "opt"]), "option"),
        (enc.encode(["ike", b"\x92\x01", {}]), "truncated"),
        (b"\x93\xa3ike\xc1\x80", "malformed"),
    ],
)
def test_malformed_frames(raw: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode_frame(raw)


# --------------------------------------------------------------------------------------------
# stream splitting


def sample_stream() -> tuple[bytes, list[bytes]]:
    """One frame of every kind, as the stream a server would read."""
    records = records_n(4)
    payload = entries_bytes(FIXEXT8_TIME, records)
    big_record = {"log": "y" * 70_000, "n": 1}  # str32 and a frame spanning many reads
    frames = [
        b"\x94" + msgpack_str("a") + EXT8_TIME + enc.encode(RECORD) + enc.encode({"chunk": "1"}),
        b"\x93" + msgpack_str("b") + b"\x94" + entries_bytes(EXT8_TIME, records) + b"\x80",
        b"\xc0",
        b"\x93" + msgpack_str("c") + bin32(payload) + enc.encode({"size": 4}),
        b"\x93" + msgpack_str("d") + str32(payload) + enc.encode({"chunk": "x==\n"}),
        b"\x93"
        + msgpack_str("e")
        + str32(gzip.compress(payload) + gzip.compress(payload))
        + enc.encode({"compressed": "gzip"}),
        enc.encode(["f", list(range(300)), {"m": {"deep": [[1], {"k": [None, True, 1.5]}]}}]),
        enc.encode(["g", 1, big_record]),
        enc.encode(["h", -1, {"i": -(2**40), "u": 2**63, "f": -1.25, "b": b"\x00" * 300}]),
    ]
    return b"".join(frames), frames


def test_splitter_whole_stream() -> None:
    stream, frames = sample_stream()
    assert FrameSplitter().feed(stream) == frames
    decoded = [decode_frame(f) for f in frames]
    assert decoded[2] is None
    assert [f.mode for f in decoded if f] == [
        "message",
        "forward",
        "packed",
        "packed",
        "compressed",
        "forward",
        "message",
        "message",
    ]


def test_splitter_split_at_every_byte_offset() -> None:
    stream, frames = sample_stream()
    small = stream[: -len(frames[-1]) - len(frames[-2])]  # without the 70 KB frame: fast
    small_frames = frames[:-2]
    for cut in range(len(small) + 1):
        splitter = FrameSplitter()
        assert splitter.feed(small[:cut]) + splitter.feed(small[cut:]) == small_frames, cut
        assert splitter.buffered == 0
    for cut in range(0, len(stream) + 1, 997):
        splitter = FrameSplitter()
        assert splitter.feed(stream[:cut]) + splitter.feed(stream[cut:]) == frames, cut


@pytest.mark.parametrize("piece", [1, 7, 4096, 65536])
def test_splitter_fed_in_pieces(piece: int) -> None:
    stream, frames = sample_stream()
    splitter = FrameSplitter()
    out = []
    for i in range(0, len(stream), piece):
        out += splitter.feed(stream[i : i + piece])
    assert out == frames and splitter.buffered == 0


def test_splitter_rejects_garbage() -> None:
    with pytest.raises(FrameError, match="not a forward frame"):
        FrameSplitter().feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(FrameError, match="invalid msgpack byte"):
        FrameSplitter().feed(b"\x93\xa3ike\xc1")
    with pytest.raises(FrameError, match="nesting"):
        FrameSplitter().feed(b"\x91" * 200)
    good = enc.encode(["ike", 1, RECORD])
    splitter = FrameSplitter()
    with pytest.raises(FrameError):
        splitter.feed(good + b"\x00garbage")


def test_splitter_oversized_frame_rejected_from_its_header() -> None:
    # the bin32 header announces 1 GB: rejected before the payload is awaited or buffered
    header = b"\x93" + msgpack_str("ike") + b"\xc6" + (1 << 30).to_bytes(4, "big")
    with pytest.raises(FrameError, match="larger than 1000"):
        FrameSplitter(max_frame=1000).feed(header)
    # many small items: rejected once the walk passes the limit
    with pytest.raises(FrameError, match="larger than 1000"):
        FrameSplitter(max_frame=1000).feed(b"\x92\xa3ike\xdc\xff\xff" + b"\x01" * 2000)
    frame = enc.encode(["ike", [[1, {"log": "x" * 500}]] * 2])
    with pytest.raises(FrameError, match="larger than 1000"):
        FrameSplitter(max_frame=1000).feed(frame)
    assert FrameSplitter(max_frame=len(frame)).feed(frame) == [frame]


def test_splitter_large_packed_frame_walks_only_its_headers() -> None:
    payload = entries_bytes(FIXEXT8_TIME, records_n(5000))
    frame = enc.encode(["ike", payload, {"size": 5000}])
    splitter = FrameSplitter()
    out = []
    for i in range(0, len(frame), 65536):
        out += splitter.feed(frame[i : i + 65536])
    assert out == [frame]
    assert len(decode_frame(out[0]).records) == 5000


def test_count_objects() -> None:
    assert count_objects(entries_bytes(FIXEXT8_TIME, records_n(17))) == 17
    assert count_objects(b"") == 0
    with pytest.raises(FrameError):
        count_objects(entries_bytes(FIXEXT8_TIME, records_n(2))[:-1])


def test_count_objects_spends_its_budget_on_every_object() -> None:
    from ikefilter.adapters.msgpack_framing import Budget, OverBudget

    entries = entries_bytes(FIXEXT8_TIME, records_n(3))
    # each entry: the [time, record] array, its time, its map and the map's 2 keys and values
    assert count_objects(entries, Budget(3 * 7)) == 3
    with pytest.raises(OverBudget, match="more than 20 objects"):
        count_objects(entries, Budget(3 * 7 - 1))


def test_iter_ends_gives_each_objects_end_and_refuses_a_truncation() -> None:
    from ikefilter.adapters.msgpack_framing import iter_ends

    objects = [enc.encode(o) for o in ({"a": 1}, [1, 2, "x" * 300], None, Ext(3, b"abc"))]
    data = b"".join(objects)
    ends = [sum(map(len, objects[:i + 1])) for i in range(len(objects))]
    assert list(iter_ends(data)) == ends
    assert list(iter_ends(memoryview(data))) == ends
    assert list(iter_ends(b"")) == []
    cut = data[:-2]  # the ext's payload two bytes short
    assert list(iter_ends(cut, partial=True)) == ends[:-1]
    seen = []
    with pytest.raises(FrameError, match="truncated"):
        for end in iter_ends(cut):
            seen.append(end)
    assert seen == ends[:-1]  # the whole objects before it were given first
    with pytest.raises(FrameError, match="invalid msgpack byte 0xc1"):
        list(iter_ends(data + b"\xc1", partial=True))
    # a str whose header says more than max_object: refused before its bytes arrive
    big = b"\xdb" + (1 << 20).to_bytes(4, "big") + b"x" * 10
    assert list(iter_ends(big, partial=True)) == []
    with pytest.raises(FrameError, match="larger than"):
        list(iter_ends(big, max_object=1000, partial=True))


# --------------------------------------------------------------------------------------------
# re-emission and handshake


def test_pack_entries_keeps_times_and_skips_dropped() -> None:
    times = [event_time(SECONDS, NANOS), 5, 1.5]
    payload, count = pack_entries(times, [RECORD, None, {"x": 1}])
    assert count == 2
    raw = enc.encode(["ike", payload, {"size": count}])
    frame = decode_frame(raw)
    assert frame.records == [RECORD, {"x": 1}] and frame.times[1] == 1.5
    assert payload.startswith(b"\x92" + FIXEXT8_TIME)  # EventTime re-emitted byte for byte
    assert pack_entries([1], [None]) == (b"", 0)
    many, count = pack_entries([1] * 70_000, [{}] * 70_000)  # array32 header cut off
    assert count == 70_000 and many == b"\x92\x01\x80" * 70_000


def test_event_time_helpers() -> None:
    assert event_time(SECONDS, NANOS) == Ext(0, FIXEXT8_TIME[2:])
    assert event_time_ns(event_time(1, 2)) == 1_000_000_002
    assert event_time_ns(Ext(1, b"12345678")) is None and event_time_ns("x") is None


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e300, -1e300])
def test_a_float_that_is_no_time_is_none(value: float) -> None:
    # a sender's time never raises: it is None, and the event keeps its own or the current one
    assert event_time_ns(value) is None
    assert protocol.event_time_iso(value) is None


def test_handshake_messages_roundtrip() -> None:
    nonce, key = b"\x01" * 16, "s3cret"
    helo = protocol.decode_message(protocol.encode_helo(nonce))
    assert protocol.parse_helo(helo) == (nonce, b"", True)
    ping_raw = protocol.encode_ping("client-host", "salt", nonce, key)
    ping = protocol.parse_ping(protocol.decode_message(ping_raw))
    assert ping.digest == protocol.handshake_digest("salt", "client-host", nonce, key)
    assert ping.verify(nonce, key) and not ping.verify(nonce, "wrong")
    pong = protocol.decode_message(protocol.encode_pong(True, "", "srv", "salt", nonce, key))
    assert protocol.parse_pong(pong, "salt", nonce, key) == (True, "")
    assert protocol.parse_pong(pong, "salt", nonce, "other")[0] is False
    refused = protocol.decode_message(
        protocol.encode_pong(False, "shared_key mismatch", "srv", "salt", nonce, key)
    )
    assert protocol.parse_pong(refused, "salt", nonce, key) == (False, "shared_key mismatch")
    with pytest.raises(protocol.HandshakeError):
        protocol.parse_ping(["PONG"])


def test_handshake_digest_matches_the_specification() -> None:
    import hashlib

    expected = hashlib.sha512(b"salt" + b"host" + b"\x00\xffnonce" + b"key").hexdigest()
    assert protocol.handshake_digest("salt", "host", b"\x00\xffnonce", "key") == expected


def _msgpack_str(raw: bytes) -> bytes:
    """A msgpack ``str`` holding ``raw`` as it is, UTF-8 or not (as Fluent Bit sends salts)."""
    return (bytes((0xA0 | len(raw),)) if len(raw) < 32 else b"\xd9" + bytes((len(raw),))) + raw


def test_a_salt_that_is_not_utf8_is_digested_as_sent() -> None:
    # Fluent Bit's out_forward sends 16 random bytes as the PING salt, in a msgpack str.
    salt = bytes(range(0x80, 0x90))
    nonce, key = b"\x9c\x01server-nonce", "s3cret"
    digest = hashlib.sha512(salt + b"fluent-bit" + nonce + key.encode()).hexdigest()
    ping_raw = (b"\x96" + _msgpack_str(b"PING") + _msgpack_str(b"fluent-bit") + _msgpack_str(salt)
                + _msgpack_str(digest.encode()) + _msgpack_str(b"") + _msgpack_str(b""))
    ping = protocol.parse_ping(protocol.decode_message(ping_raw))
    assert ping.salt == salt
    assert ping.verify(nonce, key) and not ping.verify(nonce, "wrong")
    # the PONG's digest is over the same bytes, as the client computes it
    pong = protocol.decode_message(protocol.encode_pong(True, "", "srv", ping.salt, nonce, key))
    assert pong[4] == hashlib.sha512(salt + b"srv" + nonce + key.encode()).hexdigest()


def test_a_nonce_that_is_not_utf8_is_kept_as_sent() -> None:
    # Fluent Bit's in_forward sends its HELO nonce the same way.
    nonce = bytes(range(0xF0, 0x100))
    helo_raw = (b"\x92" + _msgpack_str(b"HELO") + b"\x83" + _msgpack_str(b"nonce")
                + _msgpack_str(nonce) + _msgpack_str(b"auth") + _msgpack_str(b"")
                + _msgpack_str(b"keepalive") + b"\xc3")
    assert protocol.parse_helo(protocol.decode_message(helo_raw)) == (nonce, b"", True)


@pytest.mark.parametrize("limit", [64, 1000, 5000, 10**9])
def test_payloads_stay_under_the_limit_and_keep_every_entry_in_order(limit) -> None:
    times = list(range(300))
    records = [None if i % 7 == 0 else {"log": "x" * (i % 50 * 13), "n": i} for i in times]
    whole, count = protocol.pack_entries(times, records)
    payloads = protocol.pack_payloads(times, records, limit)
    assert b"".join(payload for payload, _ in payloads) == whole
    assert sum(size for _, size in payloads) == count
    for payload, size in payloads:
        assert len(payload) <= limit or size == 1
        assert len(msgspec.msgpack.decode(protocol.array_prefix(size) + payload)) == size
    assert (len(payloads) == 1) == (limit >= len(whole))
    assert protocol.pack_payloads(times, [None] * len(times), limit) == []


@pytest.mark.parametrize("value, iso", [
    (-62135596800, "0001-01-01T00:00:00.000Z"),
    (253402300799, "9999-12-31T23:59:59.000Z"),
    (-62135596801, None),
    (253402300800, None),
    (-1e12, None),
    (9999999999999, None),
    (1_700_000_000.5, "2023-11-14T22:13:20.500Z"),
])
def test_event_times_outside_the_years_an_index_takes_are_no_times(value, iso) -> None:
    # an index refuses a document whose @timestamp is not within 0001-9999
    assert protocol.event_time_iso(value) == iso


# -- work budgets ----------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_once_it_inflates_past_its_budget() -> None:
    import zlib

    from ikefilter.adapters.msgpack_framing import OverBudget

    bomb = zlib.compress(b"\x90" * (8 << 20), 9, wbits=31)
    frame = enc.encode(["t", bomb, {"compressed": "gzip"}])
    with pytest.raises(OverBudget, match="more than 1000 objects"):
        decode_frame(frame, max_objects=1000)
    small = enc.encode(["t", zlib.compress(b"\x90" * 1000, wbits=31), {"compressed": "gzip"}])
    assert decode_frame(small, max_objects=1000).invalid == 1000  # within: decoded


def _fluent_bit_frame(records: list[dict], compressed: bool) -> bytes:
    entries = b"".join(enc.encode([[protocol.event_time(1_764_151_200, i), {}], record])
                       for i, record in enumerate(records))
    option = {"size": len(records), "chunk": "c"}
    if compressed:
        entries = gzip.compress(entries)
        option["compressed"] = "gzip"
    return enc.encode(["t", entries, option])


def spy_on_the_walk(monkeypatch) -> list:
    """A list that grows by one at every walk: gzip's (in frames) and the count's."""
    from ikefilter.adapters import msgpack_framing
    from ikefilter.adapters.forward import frames

    walked: list = []
    for module in (frames, msgpack_framing):
        monkeypatch.setattr(module, "walk", lambda *a, **k: walked.append(1) or walk(*a, **k))
    return walked


@pytest.mark.parametrize("compressed", [False, True])
def test_flat_entries_over_the_budget_in_bytes_are_decoded_without_a_walk(
        monkeypatch, compressed) -> None:
    records = [{"log": f"line {i} " + "x" * 300} for i in range(200)]
    records[7] = {"log": "", "host": "é", "k": "v" * 2}
    frame = _fluent_bit_frame(records, compressed)
    walked = spy_on_the_walk(monkeypatch)
    # 60 KB of entries, over a budget of 30,000 objects in bytes; at most 6 objects an entry
    # and one a 3 bytes of text: within it
    decoded = decode_frame(frame, max_objects=30_000)
    assert not walked
    assert decoded.records == records
    assert decoded.times == [protocol.event_time(1_764_151_200, i) for i in range(200)]
    assert (decoded.mode, decoded.chunk, decoded.invalid) == (
        "compressed" if compressed else "packed", "c", 0)


@pytest.mark.parametrize("compressed", [False, True])
def test_entries_that_are_not_flat_or_may_make_too_many_objects_are_walked(
        monkeypatch, compressed) -> None:
    from ikefilter.adapters.msgpack_framing import OverBudget

    walked = spy_on_the_walk(monkeypatch)
    nested = [{"log": "x" * 300, "kubernetes": {"pod": f"p{i}"}} for i in range(100)]
    decoded = decode_frame(_fluent_bit_frame(nested, compressed), max_objects=20_000)
    assert walked and decoded.records == nested
    walked.clear()
    # short texts: 4,000 keys and values in 14 KB, which may make more than 3,000 objects
    many = [{f"{k:02x}"[-2:] + chr(65 + k // 256): "ab" for k in range(2000)}]
    with pytest.raises(OverBudget, match="more than 3000 objects"):
        decode_frame(_fluent_bit_frame(many, compressed), max_objects=3000)
    assert walked


def test_the_events_budget_counts_entries() -> None:
    from ikefilter.adapters.msgpack_framing import OverBudget

    frame = enc.encode(["t", b"\x92\x00\x80" * 11, {"size": 11}])
    assert len(decode_frame(frame, max_events=11).records) == 11
    with pytest.raises(OverBudget, match="more than 10 events"):
        decode_frame(frame, max_events=10)


def test_the_splitter_spends_the_budget_as_bytes_arrive() -> None:
    from ikefilter.adapters.msgpack_framing import OverBudget

    splitter = FrameSplitter(max_objects=100)
    assert splitter.feed(b"\x92\xa1t\xdc\x00\xc8" + b"\x90" * 50) == []
    with pytest.raises(OverBudget):
        splitter.feed(b"\x90" * 60)
    ok = FrameSplitter(max_objects=100)
    frame = b"\x92\xa1t\xdc\x00\x61" + b"\x90" * 0x61  # 100 objects exactly
    assert ok.feed(frame[:40]) == [] and ok.feed(frame[40:]) == [frame]


def test_nesting_too_deep_for_the_decoder_is_a_protocol_error() -> None:
    frame = enc.encode(["t", b"\x91" * 100_000 + b"\x00", {"size": 1}])
    with pytest.raises(FrameError, match="nesting"):
        decode_frame(frame)


def test_repeated_warnings_are_rate_limited() -> None:
    import logging

    from ikefilter.adapters.forward.limits import RateLimit

    now = [0.0]
    limit = RateLimit(10.0, clock=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("x", logging.WARNING, "", 0, msg, ("peer",), None)

    passed = [limit.filter(record("closing %s")) for _ in range(5)]
    assert passed == [True, False, False, False, False]
    assert limit.filter(record("other %s"))  # another kind passes
    now[0] = 11.0
    again = record("closing %s")
    assert limit.filter(again) and again.getMessage() == "closing peer (4 more like this held back)"
