"""Fluent Forward server and upstream client over real loopback sockets.

Clients: the independent ``fluent-logger`` package (Message mode), and frames built here byte
for byte the way Fluent Bit's and Fluentd's ``out_forward`` send them. The next hop of the
chain tests is written here with the protocol module, so it can be crashed and restarted.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgspec
import pytest

from ikefilter.adapters.forward.protocol import (
    FrameSplitter,
    decode_frame,
    decode_message,
    encode_ack,
    encode_ping,
    event_time,
    event_time_ns,
    handshake_digest,
    pack_entries,
    parse_helo,
)
from ikefilter.adapters.forward.server import ForwardServer
from ikefilter.adapters.forward.upstream import UpstreamClient

enc = msgspec.msgpack.Encoder()
json_dec = msgspec.json.Decoder()
LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]


class UpperProcessor:
    """Uppercases ``log``; drops records that carry ``drop``. Counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def process_records(self, records: list[dict], times=None) -> list[object | None]:
        self.calls += 1
        return [
            None if r.get("drop") else {**r, "log": str(r.get("log", "")).upper()} for r in records
        ]


def run_async(coro, timeout: float = 60.0):
    """Run one scenario with a hard time limit; asyncio.run closes every task it leaves."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_until(predicate, timeout: float = 10.0, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json_dec.decode(line) for line in path.read_bytes().splitlines()]


class Peer:
    """A raw forward client: send bytes, read msgpack replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.splitter = FrameSplitter(replies=True)
        self.replies: list[bytes] = []

    @classmethod
    async def connect(cls, port: int) -> Peer:
        return cls(*await asyncio.open_connection(LOOPBACK, port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, timeout: float = 10.0) -> bytes:
        """The next raw reply (an ack, HELO or PONG)."""
        async with _timeout(timeout):
            while not self.replies:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("server closed the connection")
                self.replies += self.splitter.feed(data)
        return self.replies.pop(0)

    async def closed_by_server(self, timeout: float = 5.0) -> bool:
        async with _timeout(timeout):
            try:
                return await self.reader.read(65536) == b""
            except ConnectionError:
                return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def _timeout(seconds: float):
    if sys.version_info >= (3, 11):
        return asyncio.timeout(seconds)
    return _WaitFor(seconds)


class _WaitFor:  # Python 3.10: no asyncio.timeout
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def __aenter__(self):
        self.handle = asyncio.get_running_loop().call_later(
            self.seconds, asyncio.current_task().cancel
        )

    async def __aexit__(self, exc_type, exc, tb):
        self.handle.cancel()
        if exc_type is asyncio.CancelledError:
            raise asyncio.TimeoutError from exc


# --------------------------------------------------------------------------------------------
# frames the way real senders build them


def fluent_bit_frame(tag: str, records: list[dict], seconds: int, chunk: str) -> bytes:
    """Fluent Bit out_forward: PackedForward, bin entries, EventTime fixext8, 32-hex chunk,
    and the ``[[EventTime, {metadata}], record]`` entries of Fluent Bit 4+."""
    entries = b"".join(
        b"\x92\x92"
        + b"\xd7\x00"
        + (seconds + i).to_bytes(4, "big")
        + i.to_bytes(4, "big")
        + b"\x80"
        + enc.encode(r)
        for i, r in enumerate(records)
    )
    option = {"fluent_signal": 0, "size": len(records), "chunk": chunk}
    return (
        b"\x93"
        + enc.encode(tag)
        + b"\xc6"
        + len(entries).to_bytes(4, "big")
        + entries
        + enc.encode(option)
    )


def fluentd_frame(tag: str, records: list[dict], seconds: int, chunk: str, compress: bool) -> bytes:
    """Fluentd out_forward: the entries written behind a hand-made str32 header, EventTime as
    ext8, chunk id base64 with its trailing newline, optional gzip (one member per write)."""
    entries = b"".join(
        b"\x92"
        + b"\xc7\x08\x00"
        + (seconds + i).to_bytes(4, "big")
        + i.to_bytes(4, "big")
        + enc.encode(r)
        for i, r in enumerate(records)
    )
    option = {"size": len(records), "chunk": chunk}
    if compress:
        half = len(entries) // 2
        entries = gzip.compress(entries[:half]) + gzip.compress(entries[half:])
        option["compressed"] = "gzip"
    return (
        b"\x93"
        + enc.encode(tag)
        + b"\xdb"
        + len(entries).to_bytes(4, "big")
        + entries
        + enc.encode(option)
    )


def fluentd_chunk_id() -> str:
    return base64.encodebytes(secrets.token_bytes(16)).decode()  # Base64.encode64: ends in \n


# --------------------------------------------------------------------------------------------
# a next hop that can crash and come back


class NextHop:
    """A minimal forward receiver keeping what it got across restarts (like a durable sink)."""

    def __init__(self) -> None:
        self.received: list[tuple[int, str, object, list, list]] = []  # incarnation, tag, ...
        self.incarnation = 0
        self.port = 0
        self.swallow_acks = 0  # receive and store, but do not ack, this many chunks
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.incarnation += 1
        self._server = await asyncio.start_server(self._serve, LOOPBACK, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def crash(self) -> None:
        """Stop listening and reset every connection, without acking what is unread."""
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        await wait_until(lambda: not self._writers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        splitter = FrameSplitter()
        try:
            while data := await reader.read(65536):
                for raw in splitter.feed(data):
                    frame = decode_frame(raw)
                    self.received.append(
                        (self.incarnation, frame.tag, frame.chunk, frame.times, frame.records)
                    )
                    if self.swallow_acks:
                        self.swallow_acks -= 1
                    elif frame.chunk is not None:
                        writer.write(encode_ack(frame.chunk))
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def events(self) -> list[tuple[str, int, dict]]:
        return [
            (tag, event_time_ns(t), r)
            for _, tag, _, times, records in self.received
            for t, r in zip(times, records, strict=True)
        ]


# --------------------------------------------------------------------------------------------
# tests


def test_fluent_logger_message_mode(tmp_path: Path) -> None:
    from fluent import sender

    out = tmp_path / "out.jsonl"
    count = 200

    def emit_all(port: int) -> None:
        client = sender.FluentSender("fw", host=LOOPBACK, port=port, nanosecond_precision=True)
        try:
            for i in range(count):
                assert client.emit_with_time(
                    "ike", 1_700_000_000.25 + i, {"log": f"line {i}", "seq": i}
                ), client.last_error
        finally:
            client.close()

    async def scenario() -> None:
        processor = UpperProcessor()
        async with ForwardServer(processor, (LOOPBACK, 0), output=out) as server:
            await asyncio.to_thread(emit_all, server.address[1])
            await wait_until(lambda: server.stats.events == count)
            assert server.stats.frames == count and server.stats.acks == 0
        lines = read_lines(out)
        assert [line["seq"] for line in lines] == list(range(count))
        assert lines[5]["log"] == "LINE 5"
        assert processor.calls <= count  # frames of one read share one call

    run_async(scenario())


def test_fluent_bit_packed_forward_acked_exactly(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    async def scenario() -> None:
        processor = UpperProcessor()
        async with ForwardServer(processor, (LOOPBACK, 0), output=out) as server:
            peer = await Peer.connect(server.address[1])
            sent = 0
            for n in range(5):
                chunk = secrets.token_hex(16)
                records = [{"log": f"c{n} r{i}", "drop": i == 3} for i in range(50)]
                await peer.send(fluent_bit_frame("ike.fw", records, 1_700_000_000, chunk))
                assert await peer.reply() == enc.encode({"ack": chunk})
                sent += len(records)
                # acked means written: the lines are in the file now
                assert len(read_lines(out)) == sent - (n + 1)
            await peer.close()
            assert processor.calls == 5
            stats = server.stats
            assert (stats.events, stats.emitted, stats.dropped, stats.acks) == (250, 245, 5, 5)
        assert read_lines(out)[0] == {"log": "C0 R0", "drop": False}

    run_async(scenario())


@pytest.mark.parametrize("compress", [False, True], ids=["str32", "gzip"])
def test_fluentd_packed_forward_str32_and_gzip(tmp_path: Path, compress: bool) -> None:
    out = tmp_path / "out.jsonl"

    async def scenario() -> None:
        async with ForwardServer(UpperProcessor(), (LOOPBACK, 0), output=out) as server:
            peer = await Peer.connect(server.address[1])
            chunks = [fluentd_chunk_id() for _ in range(3)]
            # pipelined: three frames in one write, acks come back for each, exactly
            await peer.send(
                b"".join(
                    fluentd_frame(
                        "td.ike",
                        [{"log": f"{k}-{i}"} for i in range(40)],
                        1_700_000_000,
                        chunk,
                        compress,
                    )
                    for k, chunk in enumerate(chunks)
                )
            )
            acks = [decode_message(await peer.reply()) for _ in chunks]
            assert acks == [{"ack": c} for c in chunks]
            assert all(a["ack"].endswith("\n") for a in acks)
            await peer.close()
        assert len(read_lines(out)) == 120

    run_async(scenario())


def test_heartbeat_and_message_mode_ack(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    async def scenario() -> None:
        async with ForwardServer(UpperProcessor(), (LOOPBACK, 0), output=out) as server:
            peer = await Peer.connect(server.address[1])
            await peer.send(
                b"\xc0" + enc.encode(["t", event_time(1, 2), {"log": "a"}, {"chunk": "m1"}])
            )
            assert decode_message(await peer.reply()) == {"ack": "m1"}
            await peer.close()
            assert server.stats.heartbeats == 1
        assert read_lines(out) == [{"log": "A"}]

    run_async(scenario())


def test_chain_survives_next_hop_restart() -> None:
    """client -> server -> next hop; the next hop crashes mid-stream and comes back."""
    clients, chunks_each, per_chunk = 3, 12, 25
    base = 1_700_000_000

    async def client(port: int, cid: int, acked: list, resent: list) -> None:
        peer = await Peer.connect(port)
        for k in range(chunks_each):
            records = [
                {"log": f"c{cid} k{k} i{i}", "id": f"{cid}-{k}-{i}"} for i in range(per_chunk)
            ]
            frame = fluent_bit_frame("ike", records, base + k, chunk := secrets.token_hex(16))
            for _attempt in range(5):  # the sender's own retry: reconnect and resend
                try:
                    await peer.send(frame)
                    assert decode_message(await peer.reply(timeout=20)) == {"ack": chunk}
                    break
                except (asyncio.TimeoutError, ConnectionError, EOFError):
                    resent.append(f"{cid}-{k}")
                    await peer.close()
                    peer = await Peer.connect(port)
            else:
                raise AssertionError("chunk never acked")
            acked.append(f"{cid}-{k}")
            await asyncio.sleep(0.01)
        await peer.close()

    async def scenario() -> None:
        hop = NextHop()
        await hop.start()
        upstream = UpstreamClient(
            LOOPBACK, hop.port, ack_timeout=3.0, backoff_initial=0.05, backoff_max=0.4
        )
        acked: list[str] = []
        resent: list[str] = []
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), upstream=upstream, tag_rewrite=lambda tag: f"ecs.{tag}"
        ) as server:
            port = server.address[1]
            senders = [asyncio.create_task(client(port, c, acked, resent)) for c in range(clients)]
            await wait_until(lambda: len(acked) >= 8)
            # the next two chunks reach the hop but it dies before acking them
            received = len(hop.received)
            hop.swallow_acks = 2
            await wait_until(lambda: len(hop.received) >= received + 2)
            await hop.crash()
            down_at = len(acked)
            await asyncio.sleep(0.8)
            # nothing is acked to the clients while the next hop is down
            assert len(acked) <= down_at + clients
            await hop.start()
            await asyncio.gather(*senders)
        assert len(acked) == clients * chunks_each

        events = hop.events()
        ids = [r["id"] for _, _, r in events]
        expected = {
            f"{c}-{k}-{i}"
            for c in range(clients)
            for k in range(chunks_each)
            for i in range(per_chunk)
        }
        assert set(ids) == expected  # zero lost
        assert hop.incarnation == 2 and any(inc == 2 for inc, *_ in hop.received)
        assert upstream.resent >= 2 and len(ids) >= len(expected) + 2 * per_chunk
        # duplicates only from chunks resent after the crash (or by a client's own resend)
        seen: dict[object, int] = {}
        for incarnation, _, chunk, _, _ in hop.received:
            if chunk in seen:
                assert (seen[chunk], incarnation) == (1, 2)
            seen[chunk] = incarnation
        client_resent = set(resent)
        for event_id in {i for i in ids if ids.count(i) > 1}:
            chunk_ids = [
                chunk
                for _, _, chunk, _, records in hop.received
                if any(r["id"] == event_id for r in records)
            ]
            assert len(set(chunk_ids)) == 1 or event_id.rsplit("-", 1)[0] in client_resent
        # tag rewritten, original event times kept, records processed
        for tag, ns, record in events:
            _, k, i = (int(x) for x in record["id"].split("-"))
            assert tag == "ecs.ike"
            assert ns == (base + k + i) * 1_000_000_000 + i
            assert record["log"] == record["log"].upper()
        await hop.crash()

    run_async(scenario(), timeout=90)


def test_fluent_logger_through_to_the_next_hop_keeps_event_times() -> None:
    from fluent import sender

    count = 60

    def emit_all(port: int) -> None:
        client = sender.FluentSender("fw", host=LOOPBACK, port=port, nanosecond_precision=True)
        try:
            for i in range(count):
                label = "ike" if i % 2 else "ipsec"
                assert client.emit_with_time(label, 1_700_000_000 + i + 0.5, {"log": f"l{i}"})
        finally:
            client.close()

    async def scenario() -> None:
        hop = NextHop()
        await hop.start()
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), upstream=(LOOPBACK, hop.port)
        ) as server:
            await asyncio.to_thread(emit_all, server.address[1])
            await wait_until(lambda: len(hop.events()) == count)
        events = sorted(hop.events(), key=lambda e: e[1])
        assert [r["log"] for _, _, r in events] == [f"L{i}" for i in range(count)]
        assert [tag for tag, _, _ in events] == ["fw.ipsec", "fw.ike"] * (count // 2)
        assert [ns for _, ns, _ in events] == [
            (1_700_000_000 + i) * 1_000_000_000 + 500_000_000 for i in range(count)
        ]
        await hop.crash()

    run_async(scenario())


def test_processor_failure_closes_the_connection_without_ack(tmp_path: Path) -> None:
    class Failing:
        def process_records(self, records: list[dict], times=None) -> list[object | None]:
            if any(r.get("boom") for r in records):
                raise ValueError("boom")
            return records

    out = tmp_path / "out.jsonl"

    async def scenario() -> None:
        async with ForwardServer(Failing(), (LOOPBACK, 0), output=out) as server:
            bad = await Peer.connect(server.address[1])
            await bad.send(enc.encode(["t", 1, {"boom": True}, {"chunk": "b"}]))
            assert await bad.closed_by_server()
            good = await Peer.connect(server.address[1])
            await good.send(enc.encode(["t", 1, {"log": "ok"}, {"chunk": "g"}]))
            assert decode_message(await good.reply()) == {"ack": "g"}
            for peer in (bad, good):
                await peer.close()
            assert server.stats.processor_errors == 1
        assert read_lines(out) == [{"log": "ok"}]

    run_async(scenario())


def test_upstream_resends_when_no_ack_arrives() -> None:
    async def scenario() -> None:
        hop = NextHop()
        await hop.start()
        hop.swallow_acks = 1
        async with UpstreamClient(
            LOOPBACK, hop.port, ack_timeout=0.3, backoff_initial=0.05
        ) as upstream:
            started = time.monotonic()
            await upstream.send("t", *pack_entries([event_time(5, 6)], [{"a": 1}]))
            assert time.monotonic() - started >= 0.3
            assert upstream.resent == 1 and upstream.pending == 0
        assert [r for *_, r in hop.received] == [[{"a": 1}], [{"a": 1}]]
        assert hop.received[0][2] == hop.received[1][2]  # same chunk id: the hop can dedupe
        await hop.crash()

    run_async(scenario())


def test_upstream_waits_for_a_hop_that_is_not_there_yet() -> None:
    async def scenario() -> None:
        hop = NextHop()
        await hop.start()
        await hop.crash()  # the port is known but nobody listens
        async with UpstreamClient(
            LOOPBACK, hop.port, backoff_initial=0.05, backoff_max=0.2
        ) as upstream:
            future = upstream.submit("t", *pack_entries([1], [{"a": 1}]))
            await asyncio.sleep(0.5)
            assert not future.done()
            await hop.start()
            await asyncio.wait_for(future, 10)
        assert hop.events() == [("t", 1_000_000_000, {"a": 1})]
        await hop.crash()

    run_async(scenario())


def test_chain_into_a_second_forward_server_with_shared_key(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    async def scenario() -> None:
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), output=out, shared_key="k3y"
        ) as last:
            async with ForwardServer(
                UpperProcessor(),
                (LOOPBACK, 0),
                upstream=(LOOPBACK, last.address[1]),
                upstream_shared_key="k3y",
                tag_rewrite="x",
            ) as first:
                peer = await Peer.connect(first.address[1])
                chunk = secrets.token_hex(16)
                await peer.send(fluent_bit_frame("ike", [{"log": "a"}, {"log": "b"}], 1, chunk))
                assert decode_message(await peer.reply()) == {"ack": chunk}
                await peer.close()
            assert last.stats.acks == 1
        assert read_lines(out) == [{"log": "A"}, {"log": "B"}]

    run_async(scenario())


@pytest.mark.parametrize("key", ["right", "wrong"])
def test_shared_key_handshake(tmp_path: Path, key: str) -> None:
    out = tmp_path / "out.jsonl"

    async def scenario() -> None:
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), output=out, shared_key="right", hostname="filter-1"
        ) as server:
            peer = await Peer.connect(server.address[1])
            nonce, auth, keepalive = parse_helo(decode_message(await peer.reply()))
            assert len(nonce) == 16 and auth == b"" and keepalive is True
            salt = secrets.token_hex(16)
            await peer.send(encode_ping("client-1", salt, nonce, key))
            pong = decode_message(await peer.reply())
            assert pong[0] == "PONG" and pong[3] == "filter-1"
            if key == "right":
                assert pong[1] is True and pong[2] == ""
                assert pong[4] == handshake_digest(salt, "filter-1", nonce, "right")
                await peer.send(enc.encode(["t", 1, {"log": "x"}, {"chunk": "c"}]))
                assert decode_message(await peer.reply()) == {"ack": "c"}
                await peer.close()
            else:
                assert pong[1] is False and "shared_key" in pong[2]
                assert await peer.closed_by_server()
                await peer.close()
                assert server.stats.handshake_failures == 1
        assert read_lines(out) == ([{"log": "X"}] if key == "right" else [])

    run_async(scenario())


def test_bad_connections_are_closed_alone(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"

    async def scenario() -> None:
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), output=out, max_frame=4096, idle_timeout=0.5
        ) as server:
            port = server.address[1]
            good = await Peer.connect(port)
            garbage = await Peer.connect(port)
            oversized = await Peer.connect(port)
            idle = await Peer.connect(port)
            await garbage.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await oversized.send(b"\x93\xa3ike\xc6" + (10**6).to_bytes(4, "big") + b"\x00" * 10)
            assert await garbage.closed_by_server()
            assert await oversized.closed_by_server()
            await good.send(enc.encode(["t", 1, {"log": "still here"}, {"chunk": "g"}]))
            assert decode_message(await good.reply()) == {"ack": "g"}
            assert await idle.closed_by_server(timeout=5)  # idle_timeout
            for peer in (good, garbage, oversized, idle):
                await peer.close()
            assert server.stats.protocol_errors == 2
        assert read_lines(out) == [{"log": "STILL HERE"}]

    run_async(scenario())


SERVER_SCRIPT = textwrap.dedent("""
    import sys, time
    from ikefilter.adapters.forward.service import run

    class SlowIdentity:
        def process_records(self, records, times=None):
            time.sleep(float(sys.argv[2]))  # holds the frame in flight when SIGTERM comes
            return records

    run(SlowIdentity(), listen=("127.0.0.1", int(sys.argv[3])), output=sys.argv[1],
        drain_timeout=10)
""")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def test_sigterm_drains_in_flight_frame_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(out), "0.8", str(port)],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:

        async def scenario() -> None:
            deadline = time.monotonic() + 15
            while True:
                try:
                    peer = await Peer.connect(port)
                    break
                except OSError:
                    assert time.monotonic() < deadline and proc.poll() is None
                    await asyncio.sleep(0.05)
            chunk = secrets.token_hex(16)
            await peer.send(fluent_bit_frame("ike", [{"log": "a"}, {"log": "b"}], 1, chunk))
            await asyncio.sleep(0.3)  # the processor is now busy with the frame
            proc.send_signal(signal.SIGTERM)
            assert decode_message(await peer.reply()) == {"ack": chunk}
            assert await peer.closed_by_server(timeout=10)
            await peer.close()

        run_async(scenario())
        assert proc.wait(timeout=15) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        proc.stderr.close()
    assert read_lines(out) == [{"log": "a"}, {"log": "b"}]


def test_event_time_is_the_timestamp_of_a_line_without_one(tmp_path: Path) -> None:
    """fluent-logger → the real pipeline: a line with no time of its own is dated by the
    forward EventTime; a line with a device time keeps it."""
    from fluent import sender

    from ikefilter.pipeline import Pipeline

    out = tmp_path / "out.jsonl"
    undated = "prio=2 id=530 rev=1 localip=203.0.113.1 remoteip=81.2.3.4"
    dated = "[2026-11-26 10:00:00] EFW: IKE: prio=2 id=530 localip=203.0.113.1"

    def emit(port: int) -> None:
        client = sender.FluentSender("fw", host=LOOPBACK, port=port, nanosecond_precision=True)
        try:
            assert client.emit_with_time("ike", 1_700_000_000.25, {"log": undated})
            assert client.emit_with_time("ike", 1_700_000_000.25, {"log": dated})
        finally:
            client.close()

    async def scenario() -> None:
        async with ForwardServer(Pipeline(), (LOOPBACK, 0), output=out) as server:
            await asyncio.to_thread(emit, server.address[1])
            await wait_until(lambda: server.stats.events == 2)
        first, second = read_lines(out)
        assert first["@timestamp"] == "2023-11-14T22:13:20.250Z"
        assert first["event"]["code"] == "530"
        assert second["@timestamp"] == "2026-11-26T10:00:00.000Z"

    run_async(scenario())
