#!/usr/bin/env python3
"""The forward hop under a real Fluent Bit: Fluent Bit -> Fluent Bit directly, against
Fluent Bit -> ``ikefilter forward --upstream`` -> Fluent Bit.

One Fluent Bit tails a file of generated lines and sends them with ``out_forward``
(``Require_ack_response``, ``Shared_Key``, ``Compress gzip``) either straight to its own
``in_forward`` (direct) or to ``ikefilter forward``, which passes the ECS documents on to
that ``in_forward`` (hop); ``out_file`` writes what arrives. A run is timed from Fluent Bit's
start until the output holds every line. Per run it reports events/s, the CPU seconds of
ikefilter (after its start-up) and of Fluent Bit, events per ikefilter CPU-second, the
longest time the output stood still between its first and last line, and the lines
delivered more than once. Direct and hop runs take turns, ``--rounds`` times; the best wall
time of each counts (on a shared machine, CPU seconds are the steadier figure). The
ikefilter measured is the one of the checkout this script is in (put first on
``PYTHONPATH``), so that two checkouts compare two commits.

    FLUENT_BIT=/path/to/fluent-bit python benchmarks/hop.py --events 500000 [--tls]
    python benchmarks/hop.py --events 200000 --only hop --profile hop.svg   # py-spy flame graph
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib.ports import free_port, wait_port  # noqa: E402

ROOT = HERE.parent
KEY_VAR = "FORWARD_SHARED_KEY"
TICK = os.sysconf("SC_CLK_TCK")

SERVICE = """\
[SERVICE]
    Flush        0.2
    Grace        2
    Log_Level    warn
"""

TAIL = """
[INPUT]
    Name            tail
    Path            {lines}
    Read_from_Head  true
    Tag             clavister

[OUTPUT]
    Name                  forward
    Match                 clavister
    Host                  127.0.0.1
    Port                  {send_port}
    Tag                   ecs.clavister
    Shared_Key            ${{FORWARD_SHARED_KEY}}
    Self_Hostname         fluent-bit
    Require_ack_response  true
    Compress              gzip
    Retry_Limit           no_limits
{send_tls}"""

RECEIVE = """
[INPUT]
    Name           forward
    Listen         127.0.0.1
    Port           {receive_port}
    Shared_Key     ${{FORWARD_SHARED_KEY}}
    Self_Hostname  fluent-bit
{receive_tls}
[OUTPUT]
    Name    file
    Match   ecs.*
    Path    {out_dir}
    File    out.jsonl
    Format  plain
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process, from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class LineCounter:
    """Lines in a file that grows, reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def __call__(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                while chunk := f.read(1 << 20):
                    self.offset += len(chunk)
                    self.lines += chunk.count(b"\n")
        except FileNotFoundError:
            pass
        return self.lines


def make_certs(directory: Path) -> dict[str, str]:
    """A self-signed certificate for 127.0.0.1 (both TLS hops use it, and trust it)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return {"cert": str(cert), "key": str(key)}


def run_once(fluent_bit: str, mode: str, lines: Path, events: int, work: Path, tls: dict | None,
             extra: list[str], profile: str | None, env: dict, keep: bool = False) -> dict:
    """One run; ``mode`` is ``direct`` or ``hop``."""
    out_dir = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=work))
    receive_port = free_port()
    send_port = receive_port if mode == "direct" else free_port()
    send_tls = receive_tls = ""
    if tls:
        receive_tls = (f"    tls          on\n    tls.crt_file {tls['cert']}\n"
                       f"    tls.key_file {tls['key']}\n")
        send_tls = (f"    tls          on\n    tls.verify   on\n"
                    f"    tls.ca_file  {tls['cert']}\n")
    conf = out_dir / "fluent-bit.conf"
    conf.write_text(SERVICE + TAIL.format(lines=lines, send_port=send_port, send_tls=send_tls)
                    + RECEIVE.format(receive_port=receive_port, receive_tls=receive_tls,
                                     out_dir=out_dir), "utf-8")
    hop = spy = fb = None
    log = open(out_dir / "log", "wb")  # noqa: SIM115 - closed below
    try:
        if mode == "hop":
            cmd = [sys.executable, "-m", "ikefilter", "forward",
                   "--listen", f"127.0.0.1:{send_port}",
                   "--upstream", f"127.0.0.1:{receive_port}",
                   "--shared-key-env", KEY_VAR, "--upstream-shared-key-env", KEY_VAR,
                   "--stats", str(out_dir / "stats.json"), *extra]
            if tls:
                cmd += ["--tls-cert", tls["cert"], "--tls-key", tls["key"],
                        "--upstream-ca", tls["cert"]]
            hop = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            # fluent-bit's in_forward is not up yet: the hop connects upstream lazily
            wait_port(send_port, hop) if not tls else _wait_log(out_dir / "log", hop)
            if profile:
                fmt = "flamegraph" if profile.endswith(".svg") else "raw"
                spy = subprocess.Popen(["py-spy", "record", "-o", profile, "-r", "200",
                                        "-f", fmt, "-p", str(hop.pid)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        hop_cpu0 = cpu_seconds(hop.pid) if hop else 0.0
        start = time.monotonic()
        fb = subprocess.Popen([fluent_bit, "-c", str(conf)], stdout=log,
                              stderr=subprocess.STDOUT, env=env)
        count = LineCounter(out_dir / "out.jsonl")
        first = last_change = None
        longest = 0.0
        seen = 0
        deadline = start + max(120.0, events / 2000)
        while True:
            n = count()
            now = time.monotonic()
            if n != seen:
                if first is None:
                    first = now
                else:
                    longest = max(longest, now - last_change)
                seen, last_change = n, now
            if n >= events:
                break
            if now > deadline or fb.poll() is not None or (hop and hop.poll() is not None):
                said = (out_dir / "log").read_text("utf-8", "replace")[-2000:]
                raise RuntimeError(f"{mode}: {n} of {events} lines after {now - start:.0f} s; "
                                   f"log: {said}")
            time.sleep(0.02)
        elapsed = time.monotonic() - start
        hop_cpu = cpu_seconds(hop.pid) - hop_cpu0 if hop else None
        fb_cpu = cpu_seconds(fb.pid)
        time.sleep(1.0)  # a chunk sent twice would land now
        total = count()
    finally:
        stop(fb)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
        stop(hop)
        if spy is not None:
            spy.wait(60)
        log.close()
    result = {"mode": mode, "tls": bool(tls), "events": events, "seconds": elapsed,
              "eps": events / elapsed, "fluent_bit_cpu_s": fb_cpu,
              "first_line_s": (first or start) - start, "longest_stall_s": longest,
              "duplicates": total - events}
    if hop_cpu is not None:
        result["ikefilter_cpu_s"] = hop_cpu
        result["ikefilter_us_per_event"] = hop_cpu / events * 1e6
        result["events_per_cpu_s"] = events / hop_cpu
        stats = out_dir / "stats.json"
        if stats.exists():
            result["stats"] = json.loads(stats.read_text("utf-8"))
    if keep:
        result["kept"] = str(out_dir)
    else:
        shutil.rmtree(out_dir, ignore_errors=True)
    return result


def _wait_log(path: Path, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """A TLS listener is ready once it says so (a probe connection would be a TLS error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ikefilter forward exited with {proc.returncode}")
        if b"listening on" in path.read_bytes():
            return
        time.sleep(0.05)
    raise RuntimeError("ikefilter forward did not start listening")


def describe(r: dict) -> str:
    text = (f"{r['mode']:6s}{' tls' if r['tls'] else '    '} {r['events']:,} events in "
            f"{r['seconds']:6.2f} s = {r['eps']:9,.0f} events/s; Fluent Bit CPU "
            f"{r['fluent_bit_cpu_s']:.2f} s; longest stall {r['longest_stall_s']:.2f} s; "
            f"duplicates {r['duplicates']}")
    if "ikefilter_cpu_s" in r:
        text += (f"; ikefilter CPU {r['ikefilter_cpu_s']:.2f} s = "
                 f"{r['ikefilter_us_per_event']:.1f} us/event = "
                 f"{r['events_per_cpu_s']:,.0f} events per CPU-second")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tls", action="store_true", help="also run both with TLS on each hop")
    parser.add_argument("--only", choices=("direct", "hop"), help="run one mode alone")
    parser.add_argument("--profile", metavar="SVG",
                        help="record the hop with py-spy: a flame graph (.svg) or collapsed "
                        "stacks (any other name); one round")
    parser.add_argument("--shape", default="bracketed", help="ikefilter generate --shape")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--keep", metavar="DIR", help="keep each run's config, logs and "
                        "output under DIR")
    parser.add_argument("hop_args", nargs="*", help="more options for ikefilter forward "
                        "(after --)")
    args = parser.parse_args(argv)
    fluent_bit = os.environ.get("FLUENT_BIT", "")
    if not (fluent_bit and os.access(fluent_bit, os.X_OK)):
        print("FLUENT_BIT must name a Fluent Bit binary", file=sys.stderr)
        return 2
    env = {**os.environ, KEY_VAR: "hop-benchmark-key"}
    if str(ROOT) not in env.get("PYTHONPATH", ""):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    version = subprocess.run([fluent_bit, "--version"], capture_output=True, text=True,
                             check=False).stdout.split("\n")[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="ikefilter-hop-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        lines = work / "lines.log"
        with open(lines, "wb") as f:
            subprocess.run([sys.executable, "-m", "ikefilter", "generate", "--count",
                            str(args.events), "--shape", args.shape], stdout=f, check=True,
                           env=env)
        tls_sets = [None, make_certs(work)] if args.tls else [None]
        modes = [args.only] if args.only else ["direct", "hop"]
        rounds = 1 if args.profile else args.rounds
        print(f"{version}; {args.events:,} {args.shape} lines; {os.cpu_count()} cores",
              file=sys.stderr)
        for _ in range(rounds):
            for tls in tls_sets:
                for mode in modes:
                    r = run_once(fluent_bit, mode, lines, args.events, work, tls,
                                 args.hop_args, args.profile if mode == "hop" else None, env,
                                 keep=bool(args.keep))
                    print(describe(r), file=sys.stderr, flush=True)
                    results.append(r)
    print(f"\nbest of {rounds} (wall time); CPU figures of that run:")
    best: dict = {}
    for r in results:
        key = (r["mode"], r["tls"])
        if key not in best or r["seconds"] < best[key]["seconds"]:
            best[key] = r
    for r in best.values():
        print(describe(r))
    for tls in (False, True):
        if ("direct", tls) in best and ("hop", tls) in best:
            share = best[("hop", tls)]["eps"] / best[("direct", tls)]["eps"]
            print(f"hop / direct{' (tls)' if tls else ''}: {share:.0%}")
    if ("hop", False) in best and ("hop", True) in best:
        cost = 1 - best[("hop", True)]["eps"] / best[("hop", False)]["eps"]
        print(f"TLS costs the hop {cost:.0%} of its rate")
    if args.json:
        Path(args.json).write_text(json.dumps({"fluent_bit": version, "runs": results},
                                              indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
