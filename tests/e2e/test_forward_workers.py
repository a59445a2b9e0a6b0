"""``ikefilter forward --workers N``: several processes on one port, nothing lost."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from .conftest import free_port, generated, port_open, wait_for
from .test_forward_e2e import REPO, fluent_bit_frame

CONNECTIONS = 16
FRAMES = 5
PER_FRAME = 50


def _env() -> dict[str, str]:
    return {**os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _client(port: int, lines: list[str]) -> int:
    """One connection: send frames one by one, each acked before the next."""
    acked = 0
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        for f in range(FRAMES):
            batch = lines[f * PER_FRAME:(f + 1) * PER_FRAME]
            chunk = secrets.token_hex(16)
            sock.sendall(fluent_bit_frame("ike", [{"log": line} for line in batch], 1, chunk))
            reply = b""
            while True:
                data = sock.recv(4096)
                assert data, "connection closed before the ack"
                reply += data
                try:
                    ack = msgspec.msgpack.decode(reply)
                    break
                except msgspec.DecodeError:
                    continue
            assert ack == {"ack": chunk}
            acked += len(batch)
    return acked


def test_two_workers_share_the_port_and_lose_nothing(tmp_path: Path) -> None:
    port = free_port()
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    env = _env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ikefilter", "forward", "--workers", "2",
         "--listen", f"127.0.0.1:{port}", "--output", str(out), "--stats", str(stats)],
        env=env, stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: port_open(port), 20, "the workers to listen", proc=proc)
        total = CONNECTIONS * FRAMES * PER_FRAME
        lines = generated(total)
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            acked = sum(pool.map(
                _client, [port] * CONNECTIONS,
                [lines[i::CONNECTIONS] for i in range(CONNECTIONS)],
            ))
        assert acked == total
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        stderr = proc.stderr.read().decode()
        proc.stderr.close()

    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(docs) == total
    assert sorted(d["event"]["original"] for d in docs) == sorted(lines)
    per_worker = [json.loads((tmp_path / f"stats.json.{n}").read_text()) for n in (1, 2)]
    assert sum(s["in"] for s in per_worker) == total
    assert sum(s["out"] for s in per_worker) == total
    # the kernel spread the connections: both workers did some of the work
    assert all(s["in"] > 0 for s in per_worker), (per_worker, stderr)


def test_workers_refuse_port_0_and_stdout(tmp_path: Path) -> None:
    env = _env()
    for args, why in (
        (["--listen", "127.0.0.1:0", "--output", str(tmp_path / "o")], "fixed port"),
        (["--listen", f"127.0.0.1:{free_port()}", "--output", "-"], "interleave"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "ikefilter", "forward", "--workers", "2", *args],
            env=env, capture_output=True, text=True, timeout=30,
        )
        assert result.returncode != 0
        assert why in result.stderr
