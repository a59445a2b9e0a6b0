"""The forward path under faults: TLS, hostile or broken clients, a next hop that goes away,
and a server stopped or killed mid-stream. Real sockets on 127.0.0.1; every scenario is
bounded in count and time.

The clients here are written with the protocol module (fluent-logger speaks neither TLS nor
chunks), so they can be made slow, rude or crash-resilient at will.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from pathlib import Path

import msgspec
import pytest

from ikefilter.adapters.forward.protocol import (
    FrameSplitter,
    decode_message,
    encode_packed_forward,
    encode_ping,
    event_time,
    pack_entries,
    parse_helo,
)
from ikefilter.adapters.forward.server import ForwardServer
from ikefilter.adapters.forward.upstream import UpstreamClient

from .certificates import Certs, openssl
from .conftest import child_env, free_port, read_json_lines, wait_for
from .test_forward_e2e import (
    LOOPBACK,
    NextHop,
    Peer,
    UpperProcessor,
    fluent_bit_frame,
    read_lines,
    run_async,
)

enc = msgspec.msgpack.Encoder()


def packed(tag: str, records: list[dict], chunk: str, seconds: int = 1_700_000_000) -> bytes:
    """A PackedForward frame built with the protocol module, as the upstream client sends."""
    payload, count = pack_entries([event_time(seconds, i) for i in range(len(records))], records)
    return encode_packed_forward(tag, payload, chunk, count)


class TlsClient:
    """A blocking forward client on an ssl-wrapped socket (run it in a thread)."""

    def __init__(self, port: int, context: ssl.SSLContext, server_name: str = "localhost"):
        raw = socket.create_connection((LOOPBACK, port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname=server_name)
        self.splitter = FrameSplitter(replies=True)
        self.replies: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> object:
        while not self.replies:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.replies += self.splitter.feed(data)
        return decode_message(self.replies.pop(0))

    def handshake(self, key: str) -> list:
        nonce, _, _ = parse_helo(self.reply())
        self.send(encode_ping("tls-client", secrets.token_hex(16), nonce, key))
        return self.reply()

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------------------------
# TLS


def test_tls_with_shared_key_acked_and_plain_tcp_refused(tmp_path: Path, certs: Certs) -> None:
    out = tmp_path / "out.jsonl"

    def tls_session(port: int) -> str:
        client = TlsClient(port, certs.client_context())
        try:
            version = client.sock.version()
            pong = client.handshake("k3y")
            assert pong[:3] == ["PONG", True, ""]
            chunk = secrets.token_hex(16)
            client.send(packed("ike", [{"log": "over tls"}, {"log": "two"}], chunk))
            assert client.reply() == {"ack": chunk}
            return version
        finally:
            client.close()

    async def scenario() -> None:
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), output=out, shared_key="k3y", frame_timeout=1.0,
            tls_cert=certs.cert, tls_key=certs.key,
        ) as server:
            port = server.address[1]
            # plain TCP: a forward frame where the TLS ClientHello should be is refused
            plain = await Peer.connect(port)
            await plain.send(fluent_bit_frame("ike", [{"log": "plain"}], 1, secrets.token_hex(16)))
            assert await plain.closed_by_server()
            await plain.close()
            # plain TCP that says nothing: closed when the TLS handshake times out
            silent = await Peer.connect(port)
            started = time.monotonic()
            assert await silent.closed_by_server(timeout=10)
            assert time.monotonic() - started < 8
            await silent.close()
            version = await asyncio.to_thread(tls_session, port)
            assert version in ("TLSv1.2", "TLSv1.3")
            assert server.stats.connections == 1  # only the TLS client got past TLS
            assert server.stats.acks == 1
            assert (server.stats.plaintext, server.stats.tls_failures) == (1, 1)  # the silent one
        assert read_lines(out) == [{"log": "OVER TLS"}, {"log": "TWO"}]

    run_async(scenario())


def _tls_refused(port: int, versions: tuple[ssl.TLSVersion, ssl.TLSVersion],
                 ciphers: str = "DEFAULT:@SECLEVEL=0") -> tuple[int, BaseException]:
    """A client offering only ``versions`` (lowest, highest) and ``ciphers``: its local port,
    and what its handshake raised."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():  # TLS 1.0 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version, context.maximum_version = versions
    context.set_ciphers(ciphers)
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw:
        local = raw.getsockname()[1]
        try:
            context.wrap_socket(raw, server_hostname="localhost").close()
        except (ssl.SSLError, ConnectionError) as exc:
            return local, exc
    raise AssertionError(f"a client offering {versions} and {ciphers} was let in")


def _plaintext_frame(port: int) -> int:
    """A real Forward frame sent in the clear to the TLS port; the client's local port once
    the server has closed the connection, unanswered."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as plain:
        plain.sendall(packed("ike", [{"log": "in the clear"}], secrets.token_hex(16)))
        try:
            assert plain.recv(1024) == b""
        except ConnectionResetError:  # closed with the frame unread
            pass
        return plain.getsockname()[1]


def test_plaintext_and_refused_tls_on_the_tls_port_are_logged_and_counted(
        tmp_path: Path, certs: Certs) -> None:
    """``forward --tls-cert``: a Forward frame in the clear, a client offering only TLS 1.0,
    one with no cipher the server's EC key can use: each closed, logged with its address
    (one line of a kind per 10 s) and counted in --stats; a TLS client is acked meanwhile."""
    out, log, stats = tmp_path / "out.jsonl", tmp_path / "forward.log", tmp_path / "stats.json"
    port = free_port()
    proc = _start_forward(out, port, log, "--tls-cert", str(certs.cert), "--tls-key",
                          str(certs.key), "--stats", str(stats))
    try:
        plain = _plaintext_frame(port)
        wait_for(lambda: "plaintext connection" in log.read_text(), 10, "the plaintext line")
        assert (f"plaintext connection on the TLS port from 127.0.0.1:{plain}: closed"
                in log.read_text())
        _plaintext_frame(port)  # a second one within 10 s: counted, its line held back
        old, exc = _tls_refused(port, (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1))
        assert not isinstance(exc, ssl.SSLCertVerificationError)
        wait_for(lambda: "TLS handshake from" in log.read_text(), 10, "the TLS 1.0 line")
        assert (f"TLS handshake from 127.0.0.1:{old} failed: unsupported protocol (TLS 1.2 or "
                "later is required)" in log.read_text())
        # RSA key exchange only, against an EC certificate: no cipher in common
        _tls_refused(port, (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2), "AES128-SHA256")
        client = TlsClient(port, certs.client_context())
        chunk = secrets.token_hex(16)
        client.send(packed("ike", [{"log": "over tls"}], chunk))
        assert client.reply() == {"ack": chunk}
        client.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    assert [doc["log"] for doc in read_json_lines(out)] == ["over tls"]
    text = log.read_text()
    assert text.count("plaintext connection on the TLS port") == 1
    assert text.count("TLS handshake from") == 1
    assert "in the clear" not in text and "Traceback" not in text
    server = json.loads(stats.read_bytes())["forward"]
    assert (server["plaintext"], server["tls_failures"]) == (2, 2), server
    assert (server["connections"], server["acks"]) == (1, 1), server
    assert "plaintext=2, tls_failures=2" in text  # the line the server writes when it stops


def test_tls_client_refuses_an_unknown_certificate(certs: Certs, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), output=tmp_path / "o.jsonl",
            tls_cert=certs.cert, tls_key=certs.key,
        ) as server:
            port = server.address[1]

            def connect(ca: Path, name: str) -> None:
                TlsClient(port, certs.client_context(ca), name).close()

            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.to_thread(connect, certs.other_ca, "localhost")
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.to_thread(connect, certs.ca, "not-this-host.example")
            await asyncio.to_thread(connect, certs.ca, "localhost")

    run_async(scenario())


def test_upstream_over_tls_with_shared_key(tmp_path: Path, certs: Certs) -> None:
    """client -> filter -> (TLS, shared key) -> a second forward server; and a next hop
    whose certificate is not trusted is never sent anything."""
    out = tmp_path / "out.jsonl"

    async def scenario() -> None:
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), output=out, shared_key="hop-key",
            tls_cert=certs.cert, tls_key=certs.key,
        ) as last:
            async with ForwardServer(
                UpperProcessor(), (LOOPBACK, 0), upstream=(LOOPBACK, last.address[1]),
                upstream_shared_key="hop-key", upstream_tls=True, upstream_ca=certs.ca,
            ) as first:
                peer = await Peer.connect(first.address[1])
                chunk = secrets.token_hex(16)
                await peer.send(fluent_bit_frame("ike", [{"log": "a"}, {"log": "b"}], 1, chunk))
                assert decode_message(await peer.reply()) == {"ack": chunk}
                await peer.close()
            assert last.stats.acks == 1
            # the same hop, checked against the wrong CA: never acked, nothing arrives
            async with UpstreamClient(
                LOOPBACK, last.address[1], shared_key="hop-key", tls_ca=certs.other_ca,
                backoff_initial=0.05, backoff_max=0.2,
            ) as untrusting:
                future = untrusting.submit("t", *pack_entries([1], [{"log": "no"}]))
                await asyncio.sleep(1.0)
                assert not future.done()
                await untrusting.close(timeout=0)
            assert last.stats.connections == 1
        assert read_lines(out) == [{"log": "A"}, {"log": "B"}]

    run_async(scenario())


def test_forward_command_with_tls(tmp_path: Path, certs: Certs) -> None:
    out = tmp_path / "out.jsonl"
    port = free_port()
    log = tmp_path / "forward.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ikefilter", "forward", "--listen", f"127.0.0.1:{port}",
             "--output", str(out), "--tls-cert", str(certs.cert), "--tls-key", str(certs.key)],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=child_env(),
        )
    try:
        wait_for(lambda: "listening" in log.read_text(), 20, "the server", proc=proc)
        assert "(TLS)" in log.read_text()
        client = TlsClient(port, certs.client_context())
        chunk = secrets.token_hex(16)
        client.send(packed("ike", [{"log": "tls-cli-1"}], chunk))
        assert client.reply() == {"ack": chunk}
        client.close()
        with socket.create_connection((LOOPBACK, port), timeout=10) as plain:
            plain.sendall(packed("ike", [{"log": "plain-cli"}], secrets.token_hex(16)))
            try:
                assert plain.recv(1024) == b""
            except ConnectionResetError:
                pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    assert [doc["log"] for doc in read_json_lines(out)] == ["tls-cli-1"]
    # a certificate that cannot be loaded, a key with a passphrase (never prompted for): one
    # line naming the file, no traceback
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-keyout", "locked.key", "-out", "locked.pem", "-days", "1", "-subj", "/CN=x",
             "-passout", "pass:s3cret-passphrase", cwd=tmp_path)
    for args, named in [
        (["--tls-cert", str(tmp_path / "missing.pem")], "missing.pem"),
        (["--tls-cert", str(tmp_path / "out.jsonl")], "out.jsonl"),
        (["--tls-cert", str(tmp_path / "locked.pem"), "--tls-key", str(tmp_path / "locked.key")],
         "locked.key is encrypted"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "ikefilter", "forward", "--listen", "127.0.0.1:0",
             "--output", "-", *args],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=child_env(),
            timeout=60, check=False,
        )
        assert result.returncode != 0
        assert named in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------
# rogue and broken clients


def test_handshake_faults_are_refused_alone(tmp_path: Path) -> None:
    """No PING at all, a wrong key with data pipelined behind it, a client that never answers
    HELO: each is closed with nothing written, while an honest client is served."""
    out = tmp_path / "out.jsonl"

    async def scenario() -> None:
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), output=out, shared_key="right",
            frame_timeout=0.5, idle_timeout=30,
        ) as server:
            port = server.address[1]
            honest = await Peer.connect(port)
            nonce, _, _ = parse_helo(decode_message(await honest.reply()))
            await honest.send(encode_ping("honest", "salt", nonce, "right"))
            assert decode_message(await honest.reply())[1] is True
            # data before any PING
            skipper = await Peer.connect(port)
            await skipper.reply()
            await skipper.send(enc.encode(["t", 1, {"log": "skip"}, {"chunk": "s"}]))
            assert await skipper.closed_by_server()
            # a wrong key, with a frame sent right behind the PING, not waiting for PONG
            wrong = await Peer.connect(port)
            wrong_nonce, _, _ = parse_helo(decode_message(await wrong.reply()))
            await wrong.send(
                encode_ping("rogue", "salt", wrong_nonce, "guess")
                + enc.encode(["t", 1, {"log": "wrong"}, {"chunk": "w"}])
            )
            pong = decode_message(await wrong.reply())
            assert pong[1] is False and pong[4] == ""  # no digest for a refused client
            assert await wrong.closed_by_server()
            # a PING for another connection's nonce (a replayed handshake) is refused too
            replay = await Peer.connect(port)
            await replay.reply()
            await replay.send(encode_ping("replay", "salt", nonce, "right"))
            assert decode_message(await replay.reply())[1] is False
            assert await replay.closed_by_server()
            # never answers HELO: closed by the frame timeout, not the (long) idle timeout
            mute = await Peer.connect(port)
            await mute.reply()
            started = time.monotonic()
            assert await mute.closed_by_server(timeout=10)
            assert time.monotonic() - started < 5
            # the honest client, served all along
            await honest.send(enc.encode(["t", 1, {"log": "ok"}, {"chunk": "h"}]))
            assert decode_message(await honest.reply()) == {"ack": "h"}
            for peer in (honest, skipper, wrong, replay, mute):
                await peer.close()
            assert server.stats.handshake_failures == 3 and server.stats.timeouts == 1
            assert server.stats.events == 1 and server.stats.acks == 1
        assert read_lines(out) == [{"log": "OK"}]

    run_async(scenario())


def test_hostile_frames_close_only_their_connection(tmp_path: Path) -> None:
    """Beyond plain garbage and a declared oversize: a gzip bomb, deep nesting, an invalid
    msgpack byte inside a frame, and garbage after an acked frame (what was acked stays)."""
    out = tmp_path / "out.jsonl"
    bomb = gzip.compress(b"\x92\x01\x81\xa1a\xa1b" * 400_000)  # 2.8 MB out of a few KB
    nested = b"\x93\xa1t" + b"\x91" * 200 + b"\xc0"
    hostile = {
        "bomb": enc.encode(["t", bomb, {"compressed": "gzip", "chunk": "b"}]),
        "nested": nested,
        "bad byte": b"\x93\xa1t\xc1",
        "cut entries": b"\x93\xa1t\xc4\x03\x92\x01\x81\x80",  # [1, {...` then the option
        "not an array": b"\x81\xa1a\xa1b",
    }

    async def scenario() -> None:
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), output=out, max_frame=1 << 20,
            max_decompressed=1 << 20,
        ) as server:
            port = server.address[1]
            good = await Peer.connect(port)
            for name, data in hostile.items():
                peer = await Peer.connect(port)
                await peer.send(data)
                assert await peer.closed_by_server(), name
                await peer.close()
            mixed = await Peer.connect(port)
            await mixed.send(enc.encode(["t", 1, {"log": "before"}, {"chunk": "m"}]))
            assert decode_message(await mixed.reply()) == {"ack": "m"}
            await mixed.send(b"\xff\xfe garbage")
            assert await mixed.closed_by_server()
            await mixed.close()
            await good.send(enc.encode(["t", 1, {"log": "still here"}, {"chunk": "g"}]))
            assert decode_message(await good.reply()) == {"ack": "g"}
            await good.close()
            assert server.stats.protocol_errors == len(hostile) + 1
        assert read_lines(out) == [{"log": "BEFORE"}, {"log": "STILL HERE"}]

    run_async(scenario())


def test_slow_and_idle_clients_time_out(tmp_path: Path) -> None:
    """A byte-at-a-time client that would never finish its frame is closed by the frame
    timeout although it is never idle; one that finishes in time is served; an idle one is
    closed by the idle timeout, after its acked frame."""
    out = tmp_path / "out.jsonl"

    async def trickle(peer: Peer, data: bytes, pause: float) -> bool:
        """Send byte by byte; True when the server closed the connection meanwhile."""
        for i in range(len(data)):
            try:
                await peer.send(data[i : i + 1])
            except ConnectionError:
                return True
            if peer.reader.at_eof():
                return True
            await asyncio.sleep(pause)
        return False

    async def scenario() -> None:
        async with ForwardServer(
            UpperProcessor(), (LOOPBACK, 0), output=out, frame_timeout=1.0, idle_timeout=1.5,
        ) as server:
            port = server.address[1]
            # a frame of 100 KB announced, sent at 20 bytes a second: never completes
            slowloris = await Peer.connect(port)
            frame = enc.encode(["t", 1, {"log": "x" * 100_000}, {"chunk": "l"}])
            started = time.monotonic()
            reader = asyncio.create_task(slowloris.closed_by_server(timeout=10))
            closed = await trickle(slowloris, frame[:200], 0.05)
            assert await reader
            elapsed = time.monotonic() - started
            assert closed or elapsed < 10
            assert 0.9 <= elapsed < 5, elapsed
            await slowloris.close()
            # slow but in time: one byte every 10 ms, a ~30-byte frame
            patient = await Peer.connect(port)
            small = enc.encode(["t", 1, {"log": "slow"}, {"chunk": "p"}])
            assert not await trickle(patient, small, 0.01)
            assert decode_message(await patient.reply()) == {"ack": "p"}
            # then silent: the idle timeout closes it
            started = time.monotonic()
            assert await patient.closed_by_server(timeout=10)
            assert 1.0 <= time.monotonic() - started < 5
            await patient.close()
            assert server.stats.timeouts == 2
        assert read_lines(out) == [{"log": "SLOW"}]

    run_async(scenario())


def test_fifty_concurrent_clients_all_acked_and_counted(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    clients, chunks_each, per_chunk = 50, 8, 25

    async def client(port: int, cid: int) -> int:
        peer = await Peer.connect(port)
        for k in range(chunks_each):
            chunk = secrets.token_hex(16)
            records = [{"log": f"c{cid}-k{k}-i{i}"} for i in range(per_chunk)]
            await peer.send(fluent_bit_frame("ike", records, 1_700_000_000, chunk))
            assert decode_message(await peer.reply(timeout=30)) == {"ack": chunk}
        await peer.close()
        return chunks_each

    async def scenario() -> None:
        async with ForwardServer(UpperProcessor(), (LOOPBACK, 0), output=out) as server:
            started = time.monotonic()
            done = await asyncio.gather(*(client(server.address[1], c) for c in range(clients)))
            elapsed = time.monotonic() - started
            assert sum(done) == clients * chunks_each
            stats = server.stats
            assert stats.connections == clients
            assert stats.acks == stats.frames == clients * chunks_each
            assert stats.events == stats.emitted == clients * chunks_each * per_chunk
            assert stats.protocol_errors == stats.timeouts == 0
        logs = [line["log"] for line in read_lines(out)]
        assert len(logs) == len(set(logs)) == clients * chunks_each * per_chunk
        print(f"\n{clients} clients x {chunks_each} chunks x {per_chunk} events: {elapsed:.2f} s")

    run_async(scenario(), timeout=90)


def test_next_hop_down_no_ack_backpressure_then_no_loss() -> None:
    """While the next hop is down nothing is acked and the server stops reading, so the
    client's writes stall; when the hop returns, every event arrives and every chunk is acked."""
    frames_total, per_frame = 160, 100
    filler = "f" * 2400  # ~250 KB a frame: 40 MB in all, far beyond the socket buffers

    async def scenario() -> None:
        hop = NextHop()
        await hop.start()
        await hop.crash()  # its port is known, nobody listens
        upstream = UpstreamClient(
            LOOPBACK, hop.port, backoff_initial=0.05, backoff_max=0.2, ack_timeout=10
        )
        async with ForwardServer(UpperProcessor(), (LOOPBACK, 0), upstream=upstream) as server:
            peer = await Peer.connect(server.address[1])
            chunks = [secrets.token_hex(16) for _ in range(frames_total)]
            stalled_at = None
            for k, chunk in enumerate(chunks):
                records = [{"id": f"{k}-{i}", "pad": filler} for i in range(per_frame)]
                peer.writer.write(packed("ike", records, chunk))
                try:
                    await asyncio.wait_for(peer.writer.drain(), 1.0)
                except asyncio.TimeoutError:
                    stalled_at = k
                    break
            assert stalled_at is not None, "the client was never pushed back"
            written_mb = (stalled_at + 1) * per_frame * len(filler) / 1e6
            # it stopped reading: one frame went to the upstream client, and nothing more
            frames = server.stats.frames
            await asyncio.sleep(0.5)
            assert server.stats.frames == frames <= 2
            assert server.stats.acks == 0 and upstream.pending >= 1
            with pytest.raises(asyncio.TimeoutError):
                await peer.reply(timeout=0.5)  # no ack while the hop is down
            await hop.start()
            for k in range(stalled_at + 1, frames_total):
                records = [{"id": f"{k}-{i}", "pad": filler} for i in range(per_frame)]
                peer.writer.write(packed("ike", records, chunks[k]))
                await asyncio.wait_for(peer.writer.drain(), 30)
            acks = [decode_message(await peer.reply(timeout=30))["ack"] for _ in chunks]
            assert acks == chunks
            await peer.close()
        ids = {record["id"] for _, _, record in hop.events()}
        assert ids == {f"{k}-{i}" for k in range(frames_total) for i in range(per_frame)}
        await hop.crash()
        print(f"\nclient stalled after {stalled_at + 1} frames ({written_mb:.1f} MB)")

    run_async(scenario(), timeout=120)


# --------------------------------------------------------------------------------------------
# the ikefilter forward process stopped mid-stream: SIGTERM, and kill -9 with a restart


class ResendingClient:
    """Streams chunks with up to ``window`` unacked; after a broken connection it reconnects
    and resends every unacked chunk under its chunk id, as Fluent Bit and Fluentd do."""

    def __init__(self, port: int, chunks: int, per_chunk: int, window: int = 4) -> None:
        self.port = port
        self.window = window
        self.per_chunk = per_chunk
        self.frames = {
            f"chunk-{k:04d}": packed(
                "ike", [{"log": f"event-{k:04d}-{i:03d}"} for i in range(per_chunk)],
                f"chunk-{k:04d}",
            )
            for k in range(chunks)
        }
        self.acked: list[str] = []
        self.resent: set[str] = set()
        self.disconnects = 0

    def events_of(self, chunk: str) -> set[str]:
        k = int(chunk.split("-")[1])
        return {f"event-{k:04d}-{i:03d}" for i in range(self.per_chunk)}

    async def _connect(self, deadline: float) -> Peer:
        while True:
            try:
                return await Peer.connect(self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def run(self, on_ack=None, reconnect: bool = True, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        todo = collections.deque(self.frames)
        inflight: dict[str, bytes] = {}
        peer = await self._connect(deadline)
        while todo or inflight:
            try:
                while todo and len(inflight) < self.window:
                    chunk = todo.popleft()
                    inflight[chunk] = self.frames[chunk]
                    peer.writer.write(inflight[chunk])
                await peer.writer.drain()
                ack = decode_message(await peer.reply(timeout=20))["ack"]
                if inflight.pop(ack, None) is not None:
                    self.acked.append(ack)
                    if on_ack is not None:
                        on_ack(self)
            except (OSError, EOFError, asyncio.TimeoutError):
                self.disconnects += 1
                peer.writer.transport.abort()
                if not reconnect:
                    return
                # unacked chunks go again, first, in their order
                self.resent.update(inflight)
                todo.extendleft(reversed(list(inflight)))
                inflight.clear()
                peer = await self._connect(deadline)
        await peer.close()


def _start_forward(out: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """Start ``ikefilter forward``; its log is appended to ``log``; wait until it listens."""
    before = log.read_text().count("listening on") if log.exists() else 0
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ikefilter", "forward", "--listen", f"127.0.0.1:{port}",
             "--output", str(out), "--source-key", "log", *extra],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=child_env(),
        )
    wait_for(lambda: log.read_text().count("listening on") > before, 20, "the forward server",
             proc=proc)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def output_events(out: Path) -> list[str]:
    return [doc["log"] for doc in read_json_lines(out)]


def test_sigterm_mid_stream_writes_every_acked_event(tmp_path: Path) -> None:
    out, log, stats = tmp_path / "out.jsonl", tmp_path / "forward.log", tmp_path / "stats.json"
    port = free_port()
    proc = _start_forward(out, port, log, "--stats", str(stats))
    try:
        client = ResendingClient(port, chunks=400, per_chunk=50, window=8)

        def term_after_20(c: ResendingClient) -> None:
            if len(c.acked) == 20:
                proc.send_signal(signal.SIGTERM)

        run_async(client.run(on_ack=term_after_20, reconnect=False))
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        _stop(proc)
    assert 20 <= len(client.acked) < 400 and client.disconnects == 1
    written = output_events(out)
    acked_events = set().union(*(client.events_of(c) for c in client.acked))
    assert acked_events <= set(written)
    assert len(written) == len(set(written))  # one process, no resend: no duplicate
    assert msgspec.json.decode(stats.read_bytes())["out"] == len(written)


def test_kill_9_and_restart_loses_only_unacked_events_which_are_resent(tmp_path: Path) -> None:
    out, log = tmp_path / "out.jsonl", tmp_path / "forward.log"
    port = free_port()
    procs = [_start_forward(out, port, log)]
    acked_at_kill: list[str] = []
    try:
        client = ResendingClient(port, chunks=120, per_chunk=20, window=6)

        def kill_after_30(c: ResendingClient) -> None:
            if len(c.acked) == 30 and len(procs) == 1:
                os.kill(procs[0].pid, signal.SIGKILL)
                procs[0].wait(timeout=10)
                acked_at_kill.extend(c.acked)
                # what was acked is written, before any restart
                written = set(output_events(out))
                assert set().union(*(c.events_of(k) for k in c.acked)) <= written
                procs.append(_start_forward(out, port, log))

        run_async(client.run(on_ack=kill_after_30), timeout=90)
    finally:
        for proc in procs:
            _stop(proc)
    assert len(procs) == 2 and client.disconnects >= 1 and len(acked_at_kill) == 30
    assert sorted(client.acked) == sorted(client.frames)  # every chunk acked once
    written = output_events(out)
    every = set().union(*(client.events_of(c) for c in client.frames))
    assert set(written) == every  # every event at least once
    duplicates = len(written) - len(every)
    # duplicates only from chunks resent after the kill (written, but their ack was lost)
    assert duplicates <= sum(len(client.events_of(c)) for c in client.resent)
    print(f"\nkill -9 after 30 acked chunks: {len(client.resent)} chunks resent, "
          f"{duplicates} duplicate events")


def test_events_the_next_hop_never_acked_are_said_not_silent(tmp_path: Path) -> None:
    """fluent-logger sends without waiting for acks: what the next hop never acknowledged
    by shutdown is not delivered, and ikefilter says so (log, stats, exit status)."""
    from fluent import sender

    from .conftest import Daemon

    port, dead = free_port(), free_port()  # nothing listens on the next hop's port
    stats = tmp_path / "stats.json"
    daemon = Daemon([sys.executable, "-m", "ikefilter", "forward", "--listen",
                     f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{dead}",
                     "--drain-timeout", "1", "--stats", str(stats)],
                    tmp_path / "forward.log", env=child_env(), cwd=tmp_path)
    try:
        daemon.wait_listening(port, "ikefilter forward")
        client = sender.FluentSender("fw", host="127.0.0.1", port=port)
        for i in range(5):
            assert client.emit("ike", {"log": f"EFW: IKE: prio=2 id=530 rev={i}"})
        client.close()
        wait_for(lambda: "unreachable" in daemon.log() or "refused" in daemon.log(), 10,
                 "the next hop to be tried", proc=daemon.proc)
        status = daemon.stop()
    finally:
        daemon.stop()
    log = daemon.log()
    assert status == 1, log
    assert "5 events passed to the next hop were not acknowledged" in log
    assert msgspec.json.decode(stats.read_bytes())["in"] == 5
