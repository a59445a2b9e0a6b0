"""The forward port under attack and bad luck, as the real thing: frames as bytes on a
socket to an ``ikefilter forward`` process, a full disk (``/dev/full``), a descriptor limit.
Each asserts what is lost (nothing acked) and, for the bombs, the peak memory."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import msgspec
import pytest
from msgspec.msgpack import Ext

from ikefilter.adapters.forward.protocol import FrameSplitter, decode_message
from ikefilter.adapters.forward.server import ForwardServer

from .conftest import child_env, free_port, read_json_lines, wait_for
from .test_forward_e2e import UpperProcessor, run_async
from .test_forward_faults import _start_forward, _stop, packed

enc = msgspec.msgpack.Encoder()
MiB = 1 << 20
# docs/threat-model.md: a forward process stays under this while refusing every bomb
PEAK_RSS_BUDGET = 200 * MiB


def _bombs() -> dict[str, bytes]:
    gzip_arrays = zlib.compress(b"\x90" * (64 * MiB - 64), 9, wbits=31)  # ~64 KB on the wire
    gzip_events = zlib.compress(b"\x92\x00\x80" * (20 * MiB), 9, wbits=31)
    n = 16 * MiB - 100
    return {
        "gzip of empty arrays": enc.encode(["t", gzip_arrays, {"compressed": "gzip",
                                                               "chunk": "c1"}]),
        "gzip of empty records": enc.encode(["t", gzip_events, {"compressed": "gzip",
                                                                "chunk": "c2"}]),
        "16 MB of empty arrays": b"\x93\xa1t\xdd" + n.to_bytes(4, "big") + b"\x90" * n
        + enc.encode({"chunk": "c3"}),
    }


def _acks(sock: socket.socket, n: int) -> list[object]:
    """The next ``n`` replies; fewer when the server closes first."""
    splitter = FrameSplitter(replies=True)
    replies: list[object] = []
    while len(replies) < n:
        data = sock.recv(65536)
        if not data:
            break
        replies += [decode_message(frame) for frame in splitter.feed(data)]
    return replies


def _ack(sock: socket.socket) -> object:
    replies = _acks(sock, 1)
    return replies[0] if replies else None


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_object_bombs_are_refused_within_budget_while_others_are_served(tmp_path: Path) -> None:
    out, log, stats = tmp_path / "out.jsonl", tmp_path / "forward.log", tmp_path / "stats.json"
    port = free_port()
    proc = _start_forward(out, port, log, "--stats", str(stats))
    normal = 0
    try:
        for name, frame in _bombs().items():
            bomb = socket.create_connection(("127.0.0.1", port))
            bomb.settimeout(60)
            closed = threading.Event()
            answer: list[object] = []

            def attack(bomb=bomb, frame=frame, closed=closed, answer=answer) -> None:
                try:
                    bomb.sendall(frame)
                    answer.append(_ack(bomb))
                except OSError as exc:  # reset while sending: refused mid-frame
                    answer.append(exc)
                closed.set()

            thread = threading.Thread(target=attack)
            thread.start()
            with socket.create_connection(("127.0.0.1", port), timeout=60) as client:
                records = [{"log": f"EFW: IKE: prio=2 id=530 rev={i}"} for i in range(10)]
                client.sendall(packed("ike", records, f"n{normal}"))
                assert _ack(client) == {"ack": f"n{normal}"}
                normal += 1
                if name.startswith("gzip"):
                    # walked off the loop: the other client is acked while the bomb is busy
                    assert not closed.is_set(), name
            thread.join(60)
            assert answer and not isinstance(answer[0], dict), (name, answer)  # never acked
            bomb.close()
        peak = _peak_rss(proc.pid)
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
    text = log.read_text()
    assert "frame over budget" in text and "from ('127.0.0.1'," in text
    assert "over_budget=3" in text and "protocol_errors=3" in text
    counts = msgspec.json.decode(stats.read_bytes())
    assert counts["in"] == counts["out"] == 10 * normal == len(read_json_lines(out))
    print(f"\npeak RSS while refusing the bombs: {peak / MiB:.0f} MiB")
    assert peak < PEAK_RSS_BUDGET


def test_a_full_disk_acks_nothing_and_the_counts_say_so(tmp_path: Path) -> None:
    log, stats = tmp_path / "forward.log", tmp_path / "stats.json"
    port = free_port()
    proc = _start_forward(Path("/dev/full"), port, log, "--stats", str(stats))
    try:
        for chunk in ("a", "b"):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                client.sendall(packed("ike", [{"log": f"EFW: IKE: id=530 rev={i}"}
                                              for i in range(50)], chunk))
                assert _ack(client) is None  # closed, not acked: the sender keeps them
        proc.terminate()
        status = proc.wait(timeout=30)
    finally:
        _stop(proc)
    text = log.read_text()
    assert status == 1, text
    assert "output not written (No space left on device): 50 events not acked" in text
    assert "Traceback" not in text
    counts = msgspec.json.decode(stats.read_bytes())
    assert counts["out"] == 0 and counts["in"] == 100
    assert counts["dropped_by_rule"] == {"not_written": 100}


def test_a_torn_tail_left_by_a_kill_is_moved_aside_before_the_first_line(tmp_path: Path
                                                                          ) -> None:
    out, log = tmp_path / "out.jsonl", tmp_path / "forward.log"
    port = free_port()
    proc = _start_forward(out, port, log)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(packed("ike", [{"log": "EFW: IKE: id=530 rev=1"}], "k1"))
            assert _ack(client) == {"ack": "k1"}
        proc.kill()  # kill -9: then what a write cut short leaves, half a document
        proc.wait(timeout=10)
        whole = out.read_bytes()
        out.write_bytes(whole + whole[: len(whole) // 2])
        proc = _start_forward(out, port, log)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(packed("ike", [{"log": "EFW: IKE: id=530 rev=2"}], "k2"))
            assert _ack(client) == {"ack": "k2"}
    finally:
        _stop(proc)
    docs = read_json_lines(out)  # every line whole
    assert [d["event"]["original"] for d in docs] == ["EFW: IKE: id=530 rev=1",
                                                      "EFW: IKE: id=530 rev=2"]
    assert (tmp_path / "out.jsonl.torn").read_bytes() == whole[: len(whole) // 2] + b"\n"
    assert "moved aside to" in log.read_text()


def test_one_unencodable_record_is_written_alone_and_the_chunk_acked(tmp_path: Path) -> None:
    out, log, stats = tmp_path / "out.jsonl", tmp_path / "forward.log", tmp_path / "stats.json"
    port = free_port()
    proc = _start_forward(out, port, log, "--stats", str(stats))
    records = [{"log": f"other line {i}"} for i in range(99)]
    records.insert(50, {"log": "ext", "v": Ext(5, b"ab")})
    message_mode = (enc.encode(["ike", 1_700_000_000, {None: 1, "log": "nil key"},
                                {"chunk": "m1"}])
                    + enc.encode(["ike", 1_700_000_000, {"log": "fine"}, {"chunk": "m2"}]))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(packed("ike", records, "p1"))
            assert _ack(client) == {"ack": "p1"}
            client.sendall(message_mode)  # one read: both frames in one batch
            assert _acks(client, 2) == [{"ack": "m1"}, {"ack": "m2"}]
        proc.terminate()  # a clean stop writes the counts
        assert proc.wait(timeout=30) == 0
    finally:
        _stop(proc)
    docs = read_json_lines(out)
    assert len(docs) == 102
    bad = [d for d in docs if "ikefilter_unencodable" in (d.get("tags") or [])]
    assert len(bad) == 2 and all("cannot be written as JSON" in d["error"]["message"]
                                 for d in bad)
    assert [d["log"] for d in docs if "log" in d][-1] == "fine"
    # counted as what was written: two tagged failure events, not records passed through
    counts = json.loads(stats.read_text())
    assert (counts["in"], counts["out"], counts["passthrough"], counts["tagged"]) == (
        102, 102, 100, 2)
    assert counts["forward"]["unencodable"] == 2


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_out_of_descriptors_logs_a_line_not_a_flood(tmp_path: Path, tls: bool,
                                                    request: pytest.FixtureRequest) -> None:
    """At a descriptor limit of 64 with the cap set past it, accepting fails: one rate-limited
    line, no traceback; the cap left at its default stays under the limit. The TLS port
    accepts on its own (it looks at a client's first byte): the same."""
    out, log = tmp_path / "out.jsonl", tmp_path / "forward.log"
    port = free_port()
    options, connect = [], socket.create_connection
    if tls:
        certs = request.getfixturevalue("certs")
        options = ["--tls-cert", str(certs.cert), "--tls-key", str(certs.key)]

        def connect(address, timeout):
            raw = socket.create_connection(address, timeout=timeout)
            return certs.client_context().wrap_socket(raw, server_hostname="localhost")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ikefilter", "forward", "--listen", f"127.0.0.1:{port}",
             "--output", str(out), "--max-connections", "1000", *options],
            stdout=log_file, stderr=subprocess.STDOUT, env=child_env(), preexec_fn=limit)
    socks = []
    try:
        wait_for(lambda: "listening on" in log.read_text(), 20, "the server", proc=proc)
        for _ in range(120):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        wait_for(lambda: "cannot accept connections" in log.read_text(), 20, "EMFILE")
        for s in socks:
            s.close()
        socks.clear()
        # descriptors back: a client is served again
        def served() -> bool:
            with connect(("127.0.0.1", port), timeout=10) as client:
                client.sendall(packed("ike", [{"log": "x"}], "e1"))
                return _ack(client) == {"ack": "e1"}
        wait_for(served, 20, "a client to be served again", interval=0.5)
    finally:
        for s in socks:
            s.close()
        _stop(proc)
    text = log.read_text()
    assert text.count("cannot accept connections") <= 3
    assert "Traceback" not in text and "out of system resource" not in text


def test_at_the_connection_cap_the_longest_idle_goes_first_then_none_is_refused() -> None:
    async def scenario() -> None:
        async with ForwardServer(UpperProcessor(), ("127.0.0.1", 0), output=lambda b: None,
                                 max_connections=2) as server:
            host, port = server.address
            first = await asyncio.open_connection(host, port)
            await asyncio.sleep(0.05)
            second = await asyncio.open_connection(host, port)
            await asyncio.sleep(0.05)
            third = await asyncio.open_connection(host, port)  # the first, idle longest, goes
            assert await asyncio.wait_for(first[0].read(), 5) == b""
            # both live connections begin a frame: none is idle, a new one is refused
            for _, writer in (second, third):
                writer.write(b"\x93\xa3ike")
            await asyncio.sleep(0.1)
            fourth = await asyncio.open_connection(host, port)
            assert await asyncio.wait_for(fourth[0].read(), 5) == b""
            third[1].write(enc.encode([[1, {"log": "x"}]]) + enc.encode({"chunk": "z"}))
            assert b"z" in await asyncio.wait_for(third[0].read(100), 5)
            assert (server.stats.evicted, server.stats.refused) == (1, 1)
            for _, writer in (second, third, fourth):
                writer.close()

    run_async(scenario())


def test_a_client_that_never_reads_its_acks_is_closed() -> None:
    async def scenario() -> None:
        async with ForwardServer(UpperProcessor(), ("127.0.0.1", 0), output=lambda b: None,
                                 write_timeout=0.5) as server:
            host, port = server.address
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((host, port))
            sock.setblocking(False)
            # acks of long chunk ids, never read, until the server's buffers are full
            chunk = "c" * 60000
            frame = enc.encode(["ike", 1, {"log": "x"}, {"chunk": chunk}])
            loop = asyncio.get_running_loop()
            sent = 0
            while server.stats.timeouts == 0 and sent < 400:
                try:
                    await asyncio.wait_for(loop.sock_sendall(sock, frame), 2)
                except (OSError, asyncio.TimeoutError):
                    break
                sent += 1
            await asyncio.sleep(1.0)
            assert server.stats.timeouts == 1, sent
            sock.close()

    run_async(scenario())


@pytest.mark.parametrize("size", [2**40, -1, "x"])
def test_a_size_option_out_of_range_is_no_count(size) -> None:
    from ikefilter.adapters.forward.protocol import decode_frame

    frame = decode_frame(enc.encode(["t", b"\x92\x00\x81\xa1a\x01", {"size": size}]))
    assert frame.records == [{"a": 1}]
