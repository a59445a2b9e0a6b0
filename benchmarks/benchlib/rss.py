"""Peak memory: each path in its own process, streaming N events through the real loop.

The child does not hold the input: it cycles a small base corpus (a few thousand generated
events) and shifts the second octet of every IPv4 address on each cycle, so values keep
changing the way real traffic does, and any cache that grows with distinct values shows up
as growth between the small and the large run. It reports ``VmHWM`` (and ``ru_maxrss``,
which Linux carries over from the parent across fork and exec, so it is only a fallback
where /proc is missing), and the resident size after set-up (imports, catalog, pipeline,
base corpus) for reference.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

_QUAD = re.compile(rb"(?<![\w.:])(\d{1,3}\.)(\d{1,3})(?=\.\d{1,3}\.\d{1,3}(?![\w.]))")


def status_kib(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), or None where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class _CyclingStream:
    """A binary stream of ``total`` lines cycled from ``base`` with shifted addresses."""

    def __init__(self, base: list[bytes], total: int, per_read: int):
        self.slices = []
        for i in range(0, len(base), per_read):
            blob = b"\n".join(base[i:i + per_read]) + b"\n"
            self.slices.append((_QUAD.split(blob), len(base[i:i + per_read])))
        self.left = total
        self.cycle = 0
        self.index = 0

    def next_lines(self) -> tuple[bytes, int]:
        """The next slice of lines and their count; (b"", 0) at the end."""
        if self.left <= 0:
            return b"", 0
        parts, n = self.slices[self.index]
        k = self.cycle
        if k:
            table = {str(i).encode(): str((i + k) % 256).encode() for i in range(256)}
            parts = parts[:]
            parts[2::3] = [table.get(o, o) for o in parts[2::3]]
        blob = b"".join(parts)
        if n > self.left:
            cut = 0
            for _ in range(self.left):
                cut = blob.index(b"\n", cut) + 1
            blob, n = blob[:cut], self.left
        self.left -= n
        self.index += 1
        if self.index == len(self.slices):
            self.index = 0
            self.cycle += 1
        return blob, n

    def read(self, size: int = -1) -> bytes:
        return self.next_lines()[0]

    read1 = read


class _NullSink:
    def __init__(self):
        self.bytes = 0

    def write(self, data) -> int:
        self.bytes += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def child_main(spec: dict) -> None:
    """Run one job and print its figures as one JSON line (runs in the child process)."""
    import msgspec

    from ikefilter.adapters import lines

    from . import measure, sites

    s = sites.site(spec["variant"], spec["workdir"])
    pipeline = sites.make_pipeline(s)
    with open(spec["base"], "rb") as f:
        base = f.read().rstrip(b"\n").split(b"\n")
    forward = spec["kind"] == "forward"
    stream = _CyclingStream(base, spec["events"], 1000 if forward else 200)
    sink = _NullSink()
    baseline = status_kib("VmRSS")
    t0 = time.perf_counter()
    if forward:
        decode_frame = measure.forward_protocol().decode_frame
        encoder = msgspec.json.Encoder()
        while True:
            blob, n = stream.next_lines()
            if not n:
                break
            text = blob.decode().split("\n")[:n]
            for frame in measure.pack_frames(text, per_frame=n):
                results = pipeline.process_records(decode_frame(frame).records)
                sink.write(encoder.encode_lines([r for r in results if r is not None]))
    else:
        lines.run(pipeline, [stream], sink)
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "events": spec["events"],
        "seconds": seconds,
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "vmhwm_kib": status_kib("VmHWM"),
        "baseline_kib": baseline,
        "out_bytes": sink.bytes,
    }))


def run_jobs(jobs: list[dict], script: str, env: dict, parallel: int, note) -> list[dict]:
    """Run each job in a child (``parallel`` at a time); returns the jobs with results."""

    def one(job: dict) -> dict:
        cmd = [sys.executable, script, "--rss-child", json.dumps(job)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        result = dict(job)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            result["na"] = f"child failed: {last}"
        else:
            result.update(json.loads(proc.stdout.strip().splitlines()[-1]))
            # VmHWM is this process's own high-water mark; Linux carries ru_maxrss over
            # from the parent across fork and exec, so it is only a fallback.
            result["peak_mib"] = (result.get("vmhwm_kib") or result["ru_maxrss_kib"]) / 1024
        note(f"rss {job['path']}/{job['variant']} {job['events']:,} events: "
             + (result.get("na") or f"{result['peak_mib']:.1f} MiB"))
        return result

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return list(pool.map(one, jobs))


def child_env(extra_path: str | None) -> dict:
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    return env
