#!/usr/bin/env python3
"""Soak: millions of events through ``ikefilter run`` and ``ikefilter forward``.

Each command runs as a child process, exactly as deployed:

- ``run``: generated lines written to its stdin, its stdout read and counted;
- ``forward``: PackedForward frames, each with a ``chunk`` id, sent by a client in this
  script over one connection (a window of frames in flight), every ack counted; the
  documents go to ``--forward-output`` (default ``/dev/null``).

Input cycles a generated base corpus, with the second octet of every IPv4 address shifted
on each pass, so values keep changing as real traffic does and a cache that grows with
distinct values shows. The child's resident size (``VmRSS`` in /proc/PID/status) is sampled
every second. Exit status 1 when:

- RSS after warm-up (the first ``--warmup`` share of the events) grows above the highest
  warm-up sample by more than ``--tolerance-mib`` (a run too short for three samples is
  not judged on memory, only on its counts);
- any count does not add up: lines in vs lines out, acks vs frames, and the ``--stats``
  JSON (in = out + dropped + quarantined, in = events sent, out = documents written).

    python benchmarks/soak.py                     # 3,000,000 events each, some minutes
    python benchmarks/soak.py --events 1000000 --only run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
try:
    import ikefilter  # noqa: F401
    EXTRA_PATH = None
except ImportError:  # a source checkout that was not installed
    sys.path.insert(0, str(ROOT))
    EXTRA_PATH = str(ROOT)

import msgspec  # noqa: E402

from ikefilter import catalog, generate  # noqa: E402
from ikefilter.adapters.forward.protocol import encode_packed_forward, event_time  # noqa: E402
from ikefilter.adapters.msgpack_stream import object_ends  # noqa: E402

MIB = 1024 * 1024
_QUAD = re.compile(rb"(?<![\w.:])(\d{1,3}\.)(\d{1,3})(?=\.\d{1,3}\.\d{1,3}(?![\w.]))")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    if EXTRA_PATH:
        env["PYTHONPATH"] = EXTRA_PATH + os.pathsep + env.get("PYTHONPATH", "")
    return env


# -- input ----------------------------------------------------------------------------------


class Cycler:
    """``total`` lines, in blobs of ``per_blob``, cycled from ``base`` with shifted addresses."""

    def __init__(self, base: list[bytes], total: int, per_blob: int):
        self.slices = []
        for i in range(0, len(base), per_blob):
            part = base[i:i + per_blob]
            self.slices.append((_QUAD.split(b"\n".join(part) + b"\n"), len(part)))
        self.total = total

    def __iter__(self):
        left, cycle, index = self.total, 0, 0
        tables: dict[int, dict[bytes, bytes]] = {}
        while left > 0:
            parts, n = self.slices[index]
            if cycle % 256:
                table = tables.get(cycle % 256)
                if table is None:
                    table = tables[cycle % 256] = {
                        str(i).encode(): str((i + cycle) % 256).encode() for i in range(256)}
                parts = parts[:]
                parts[2::3] = [table.get(o, o) for o in parts[2::3]]
            blob = b"".join(parts)
            if n > left:
                blob = b"".join(line + b"\n" for line in blob.split(b"\n")[:left])
                n = left
            left -= n
            yield blob, n
            index += 1
            if index == len(self.slices):
                index, cycle = 0, cycle + 1


# -- RSS sampling ---------------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class Sampler(threading.Thread):
    """Every ``interval`` s: (seconds, VmRSS KiB, events done) of the child."""

    def __init__(self, pid: int, progress, interval: float = 1.0):
        super().__init__(daemon=True)
        self.pid, self.progress, self.interval = pid, progress, interval
        self.samples: list[tuple[float, int, int]] = []
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            kib = rss_kib(self.pid)
            if kib is None:
                return
            self.samples.append((time.monotonic() - self.t0, kib, self.progress()))

    def stop(self) -> None:
        self.stop_event.set()
        self.join()


def judge_rss(samples: list[tuple[float, int, int]], events: int, warmup: float,
              tolerance_mib: float) -> tuple[dict, list[str]]:
    """Figures and failures: growth after warm-up over the highest warm-up sample."""
    figures: dict = {"samples": len(samples)}
    if len(samples) < 3:
        # Too short to judge memory (a smoke run): said, but the counts still decide.
        figures["rss"] = f"not judged: {len(samples)} samples, run more events"
        return figures, []
    cut = warmup * events
    during = [s for s in samples if s[2] <= cut] or samples[:1]
    after = [s for s in samples if s[2] > cut and s not in during]
    base = max(s[1] for s in during)
    figures.update({
        "rss_start_mib": samples[0][1] / 1024,
        "rss_warm_mib": base / 1024,
        "rss_max_after_mib": max((s[1] for s in after), default=base) / 1024,
        "rss_end_mib": samples[-1][1] / 1024,
    })
    growth = (max((s[1] for s in after), default=base) - base) / 1024
    figures["rss_growth_mib"] = growth
    if len(after) >= 2:
        # Least-squares slope of RSS against events, in KiB per million events.
        xs = [s[2] for s in after]
        ys = [s[1] for s in after]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        if var:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
            figures["rss_slope_kib_per_m_events"] = slope * 1e6
    failures = []
    if growth > tolerance_mib:
        failures.append(f"RSS grew {growth:.1f} MiB after warm-up (tolerance "
                        f"{tolerance_mib} MiB)")
    return figures, failures


def check_stats(path: Path, sent: int, written: int | None) -> tuple[dict, list[str]]:
    try:
        stats = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        return {}, [f"--stats file {path}: {exc}"]
    failures = []
    if stats["in"] != stats["out"] + stats["dropped"] + stats["quarantined"]:
        failures.append(f"stats do not add up: {stats}")
    if stats["in"] != sent:
        failures.append(f"stats in={stats['in']} but {sent} events were sent")
    if written is not None and stats["out"] != written:
        failures.append(f"stats out={stats['out']} but {written} documents were written")
    return stats, failures


# -- ikefilter run --------------------------------------------------------------------------


def soak_run(cycler: Cycler, events: int, args, workdir: Path) -> tuple[dict, list[str]]:
    stats_file = workdir / "run-stats.json"
    err = open(workdir / "run.err", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ikefilter", "run", "--stats", str(stats_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=child_env(),
        bufsize=0)
    counts = {"in": 0, "out": 0, "bad_last": None}

    def feed() -> None:
        try:
            for blob, n in cycler:
                proc.stdin.write(blob)
                counts["in"] += n
        finally:
            proc.stdin.close()

    def drain() -> None:
        tail = b""
        read = proc.stdout.read
        while True:
            data = read(1 << 20)
            if not data:
                break
            counts["out"] += data.count(b"\n")
            tail = data
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        if last:
            try:
                json.loads(last)
            except ValueError as exc:
                counts["bad_last"] = str(exc)

    sampler = Sampler(proc.pid, lambda: counts["out"])
    t0 = time.perf_counter()
    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=drain, daemon=True)]
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rc = proc.wait()
    seconds = time.perf_counter() - t0
    sampler.stop()
    err.close()
    figures, failures = judge_rss(sampler.samples, events, args.warmup, args.tolerance_mib)
    figures.update({"events_in": counts["in"], "lines_out": counts["out"],
                    "seconds": seconds, "events_per_s": counts["in"] / seconds})
    if rc != 0:
        failures.append(f"ikefilter run exited {rc}: "
                        f"{(workdir / 'run.err').read_bytes()[-500:]!r}")
    if counts["in"] != events:
        failures.append(f"sent {counts['in']} lines, meant {events}")
    if counts["out"] != counts["in"]:
        failures.append(f"{counts['in']} lines in, {counts['out']} lines out")
    if counts["bad_last"]:
        failures.append(f"last output line is not JSON: {counts['bad_last']}")
    stats, more = check_stats(stats_file, counts["in"], counts["out"])
    figures["stats"] = stats
    return figures, failures + more


# -- ikefilter forward ----------------------------------------------------------------------


def soak_forward(cycler: Cycler, events: int, args, workdir: Path) -> tuple[dict, list[str]]:
    stats_file = workdir / "forward-stats.json"
    err_path = workdir / "forward.err"
    err = open(err_path, "wb")
    output = args.forward_output
    proc = subprocess.Popen(
        [sys.executable, "-m", "ikefilter", "forward", "--listen", "127.0.0.1:0",
         "--output", output, "--stats", str(stats_file)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=child_env())
    deadline = time.monotonic() + 60
    while True:
        m = re.search(rb"listening on [\d.]+:(\d+)", err_path.read_bytes())
        if m:
            port = int(m[1])
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            return {}, [f"forward did not start: {err_path.read_bytes()[-500:]!r}"]
        time.sleep(0.05)

    counts = {"sent": 0, "frames": 0, "acks": 0, "bad_acks": 0, "acked_events": 0}
    in_flight: dict[str, int] = {}
    lock = threading.Condition()
    sock = socket.create_connection(("127.0.0.1", port))
    encoder = msgspec.msgpack.Encoder()
    failures: list[str] = []

    def send() -> None:
        seq = 0
        for blob, n in cycler:
            lines = blob.decode("utf-8", "replace").split("\n")[:n]
            seconds = 1_764_151_200 + seq
            entries = [(event_time(seconds, i), {"log": line, "host": "fw-soak"})
                       for i, line in enumerate(lines)]
            # PackedForward: the entries concatenated, without the array header.
            payload = encoder.encode(entries)
            payload = payload[1 if n < 16 else 3 if n < 65536 else 5:]
            chunk = f"soak-{seq}"
            seq += 1
            with lock:
                while len(in_flight) >= args.window:
                    lock.wait()
                in_flight[chunk] = n
            sock.sendall(encode_packed_forward("clavister.ike", payload, chunk, n))
            counts["sent"] += n
            counts["frames"] += 1

    def receive() -> None:
        decoder = msgspec.msgpack.Decoder()
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
            ends = object_ends(buf)
            start = 0
            for end in ends:
                message = decoder.decode(buf[start:end])
                start = end
                chunk = message.get("ack") if isinstance(message, dict) else None
                with lock:
                    n = in_flight.pop(chunk, None)
                    if n is None:
                        counts["bad_acks"] += 1
                    else:
                        counts["acks"] += 1
                        counts["acked_events"] += n
                    lock.notify_all()
            buf = buf[start:]

    sampler = Sampler(proc.pid, lambda: counts["acked_events"])
    t0 = time.perf_counter()
    sampler.start()
    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    send()
    with lock:
        ok = lock.wait_for(lambda: not in_flight, timeout=120)
    seconds = time.perf_counter() - t0
    if not ok:
        failures.append(f"{len(in_flight)} frames never acked")
    sockets_closed = time.perf_counter()
    sock.shutdown(socket.SHUT_WR)
    receiver.join(30)
    sock.close()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    sampler.stop()
    err.close()
    figures, rss_failures = judge_rss(sampler.samples, events, args.warmup, args.tolerance_mib)
    failures += rss_failures
    figures.update({"events_sent": counts["sent"], "frames": counts["frames"],
                    "acks": counts["acks"], "seconds": seconds,
                    "events_per_s": counts["sent"] / seconds,
                    "shutdown_s": time.perf_counter() - sockets_closed})
    if rc != 0:
        failures.append(f"ikefilter forward exited {rc}: {err_path.read_bytes()[-500:]!r}")
    if counts["sent"] != events:
        failures.append(f"sent {counts['sent']} events, meant {events}")
    if counts["acks"] != counts["frames"] or counts["bad_acks"]:
        failures.append(f"{counts['frames']} frames, {counts['acks']} acks, "
                        f"{counts['bad_acks']} unknown acks")
    written = None
    if output != "/dev/null":
        with open(output, "rb") as f:
            written = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
        figures["lines_written"] = written
    stats, more = check_stats(stats_file, counts["sent"], written)
    figures["stats"] = stats
    if written is None and stats and stats.get("out") != counts["sent"]:
        # Every generated line is an IKE event and no rule drops: all of them go out.
        more.append(f"stats out={stats.get('out')} for {counts['sent']} events sent")
    return figures, failures + more


# -- main -----------------------------------------------------------------------------------


def report(name: str, figures: dict, failures: list[str]) -> None:
    print(f"\n== {name} ==")
    for key, value in figures.items():
        if key == "stats":
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, float):
            value = f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        print(f"  {key:<28} {value}")
    print(f"  {'result':<28} {'FAIL' if failures else 'ok'}")
    for failure in failures:
        print(f"  ! {failure}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=3_000_000,
                   help="events through each command (default 3,000,000)")
    p.add_argument("--base", type=int, default=20_000,
                   help="generated lines cycled (default 20,000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-frame", type=int, default=500,
                   help="events per forward frame, and lines per write to run (default 500)")
    p.add_argument("--window", type=int, default=8,
                   help="forward frames in flight before waiting for acks (default 8)")
    p.add_argument("--warmup", type=float, default=0.2,
                   help="share of the events before RSS is judged (default 0.2)")
    p.add_argument("--tolerance-mib", type=float, default=16.0,
                   help="RSS growth allowed after warm-up, MiB (default 16)")
    p.add_argument("--forward-output", default="/dev/null",
                   help="where forward writes its documents (default /dev/null; a file is "
                        "counted line by line)")
    p.add_argument("--only", choices=["run", "forward"], help="soak one command only")
    args = p.parse_args(argv)
    if args.events < 10 * args.per_frame:
        p.error("--events must be at least ten times --per-frame")

    base = [line.encode() for line in generate.lines(catalog.load(), args.base, args.seed,
                                                     generate.SHAPES[:5])]
    print(f"soak: {args.events:,} events per command, cycled from {len(base):,} generated "
          f"lines; RSS sampled every 1 s; tolerance {args.tolerance_mib} MiB after "
          f"{args.warmup:.0%} warm-up")
    failed = False
    with tempfile.TemporaryDirectory(prefix="ikefilter-soak-") as tmp:
        workdir = Path(tmp)
        for name, fn in (("run", soak_run), ("forward", soak_forward)):
            if args.only and args.only != name:
                continue
            figures, failures = fn(Cycler(base, args.events, args.per_frame), args.events,
                                   args, workdir)
            report(f"ikefilter {name}", figures, failures)
            failed = failed or bool(failures)
    print("\nsoak:", "FAILED" if failed else "passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
