"""1 -> 2 worker scaling, wall clock, unpinned.

``ikefilter run``: each worker is a separate ``python -m ikefilter run PART`` over its share
of the input, writing to /dev/null; start-up is included, as a site running one filter per
core would see it. ``ikefilter forward``: a real server on a loopback port, fed PackedForward
frames over 4 connections and timed until the last ack (bounded in count and time).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import msgspec

from .ports import free_port, wait_port


def _run_workers(parts: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    procs = []
    for part in parts:
        with open(os.devnull, "wb") as sink:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "ikefilter", "run", part],
                stdout=sink, stderr=subprocess.DEVNULL, env=env,
            ))
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - t0
    if any(codes):
        raise RuntimeError(f"ikefilter run exited with {codes}")
    return elapsed


def run_scaling(data: bytes, events: int, workdir: str, env: dict, reps: int, workers=(1, 2),
                note=lambda msg: None) -> dict:
    """events/s for each worker count, best of ``reps``; the input split by lines."""
    lines = data.rstrip(b"\n").split(b"\n")
    result: dict = {"events": events, "workers": {}}
    startup = []
    for _ in range(max(1, reps)):
        startup.append(_run_workers([os.devnull], env))
    result["startup_s"] = min(startup)
    for n in workers:
        parts = []
        per = -(-len(lines) // n)
        for i in range(n):
            path = os.path.join(workdir, f"scale-{n}-{i}.log")
            with open(path, "wb") as f:
                f.write(b"\n".join(lines[i * per:(i + 1) * per]) + b"\n")
            parts.append(path)
        best = min(_run_workers(parts, env) for _ in range(max(1, reps)))
        result["workers"][str(n)] = {"seconds": best, "eps": events / best}
        note(f"scaling: {n} worker(s) {events / best:,.0f} events/s")
        for path in parts:
            os.unlink(path)
    one = result["workers"].get("1")
    two = result["workers"].get("2")
    if one and two:
        result["speedup"] = two["eps"] / one["eps"]
    return result


_ACK_LEN = len(msgspec.msgpack.encode({"ack": "0" * 16}))


def _send(port: int, frames: list[bytes], timeout: float) -> int:
    """Send frames (each with a 16-char chunk) on one connection; wait for every ack."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"".join(frames))
        want = _ACK_LEN * len(frames)
        got = 0
        while got < want:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError(f"connection closed after {got // _ACK_LEN} acks")
            got += len(data)
    return len(frames)


def _chunked(frames: list[bytes]) -> list[bytes]:
    """The measure.pack_frames frames again, each asking for an ack."""
    dec = msgspec.msgpack.Decoder()
    enc = msgspec.msgpack.Encoder()
    out = []
    for i, frame in enumerate(frames):
        tag, payload, option = dec.decode(frame)
        out.append(enc.encode((tag, payload, {**option, "chunk": f"{i:016x}"})))
    return out


def _forward_once(frames: list[bytes], events: int, env: dict, workers: int | None,
                  connections: int, timeout: float) -> float:
    port = free_port()
    cmd = [sys.executable, "-m", "ikefilter", "forward", "--listen", f"127.0.0.1:{port}",
           "--output", os.devnull]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_port(port, proc)
        shares = [frames[i::connections] for i in range(connections)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=connections) as pool:
            sent = sum(pool.map(lambda fs: _send(port, fs, timeout), shares))
        elapsed = time.perf_counter() - t0
        if sent != len(frames):
            raise RuntimeError(f"{sent} of {len(frames)} frames acked")
        return events / elapsed
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def forward_scaling(frames: list[bytes], events: int, env: dict, reps: int = 1,
                    note=lambda msg: None, timeout: float = 120.0) -> dict:
    """``ikefilter forward`` on loopback: PackedForward frames of 1000 records with acks over
    4 connections, events/s until the last ack. With ``--workers`` 1 and 2 when the option
    exists, else the single process as it is."""
    try:
        import ikefilter.adapters.forward.command  # noqa: F401
    except ModuleNotFoundError as exc:
        return {"na": f"no {exc.name} yet"}
    help_text = subprocess.run(
        [sys.executable, "-m", "ikefilter", "forward", "--help"],
        capture_output=True, text=True, check=False, env=env,
    ).stdout
    frames = _chunked(frames)
    result: dict = {"events": events, "workers": {}}
    counts = (1, 2) if "--workers" in help_text else (None,)
    if counts == (None,):
        result["note"] = "no --workers option yet: one process, as it runs today"
    for n in counts:
        try:
            eps = max(_forward_once(frames, events, env, n, 4, timeout)
                      for _ in range(max(1, reps)))
        except (OSError, RuntimeError) as exc:
            result["workers"][str(n or 1)] = {"na": str(exc)}
            note(f"forward: {n or 1} worker(s) n/a: {exc}")
            continue
        result["workers"][str(n or 1)] = {"eps": eps}
        note(f"forward: {n or 1} worker(s) {eps:,.0f} events/s")
    one, two = result["workers"].get("1", {}), result["workers"].get("2", {})
    if "eps" in one and "eps" in two:
        result["speedup"] = two["eps"] / one["eps"]
    return result
