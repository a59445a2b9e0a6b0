#!/usr/bin/env python3
"""What the tunnels plugin costs: throughput and memory over a generated day of sessions.

A corpus of ``ikefilter generate --sessions`` lines (road warriors and sites, about 100,000
distinct tunnels in 1.3M lines by default) is written to a file once. Then each variant
runs in its own child process, in process (no start-up or I/O: the file is read in 64 KiB
batches, every batch processed and encoded as ``run`` does, the output discarded):

- ``off``: no ``[plugins.tunnels]`` table, the baseline;
- ``on``: the plugin with its defaults (``max_tunnels = 100000``);
- ``bounded``: ``max_tunnels`` far below the open tunnels of the day, so tunnels are evicted.

Each child reports its CPU time, events per second, its resident size (``VmRSS``) every
100,000 lines with the tunnels it held then, and the tracker's counts. Figures, not
assertions: the machine this runs on may be shared.

    python benchmarks/tunnels.py                       # about 100k tunnels, some minutes
    python benchmarks/tunnels.py --peers 5000          # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.rss import status_kib

CONFIGS = {
    "off": "",
    "on": "[plugins.tunnels]\n",
    "bounded": "[plugins.tunnels]\nmax_tunnels = {bound}\n",
}


def measure(corpus: str, config: str, every: int) -> dict:
    """In the child: the corpus through one pipeline, as ``run`` takes it (its batch loop,
    the output encoded and written to /dev/null); the figures as a dict."""
    import msgspec

    from ikefilter import app
    from ikefilter.adapters.batching import filter_batches, iter_batches
    from ikefilter.config import loads

    pipeline = app.build_pipeline(loads(config), entry_points=False, write_derived=True)
    plugin = pipeline.site.pm.get_plugin("tunnels")
    samples, seen, next_sample = [], 0, every

    def sample(size: int) -> None:
        nonlocal seen, next_sample
        seen += size
        if seen >= next_sample:
            next_sample += every
            held = len(plugin.tracker.tunnels) if plugin.tracker is not None else 0
            samples.append({"lines": seen, "rss_mib": round(status_kib("VmRSS") / 1024, 1),
                            "open_tunnels": held})

    cpu0 = time.process_time()
    with open(corpus, "rb") as f, open(os.devnull, "wb") as sink:
        filter_batches(pipeline, pipeline.process_lines,
                       iter_batches(f, max_line=pipeline.max_line), sink, progress=sample)
    cpu = time.process_time() - cpu0
    tracker = plugin.tracker
    return {
        "lines": seen, "cpu_s": round(cpu, 2), "events_per_s": round(seen / cpu),
        "samples": samples, "peak_rss_mib": round(status_kib("VmHWM") / 1024, 1),
        "stats": msgspec.to_builtins(pipeline.stats),
        "counts": msgspec.to_builtins(tracker.counts) if tracker is not None else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", type=int, default=54000,
                    help="peers of the generated day (default 54000: about 100k tunnels)")
    ap.add_argument("--bound", type=int, default=5000, help="max_tunnels of 'bounded'")
    ap.add_argument("--every", type=int, default=100_000, help="lines between RSS samples")
    ap.add_argument("--only", choices=tuple(CONFIGS), action="append")
    ap.add_argument("--measure", nargs=2, metavar=("CORPUS", "CONFIG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        corpus, config = args.measure
        print(json.dumps(measure(corpus, Path(config).read_text(), args.every)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "day.log")
        t0 = time.monotonic()
        make = ("import sys\nfrom ikefilter import catalog\n"
                "from ikefilter.generate.sessions import day\n"
                f"lines, truth = day(catalog.load(), peers={args.peers}, seed=5,"
                " road_warriors=0.9)\n"
                "with open(sys.argv[1], 'w') as f:\n"
                "    for line in lines: f.write(line + '\\n')\n"
                "print(len(truth.tunnels), truth.lines)\n")
        tunnels, count = subprocess.run([sys.executable, "-c", make, corpus], check=True,
                                        capture_output=True, text=True).stdout.split()
        print(f"corpus: {int(count):,} lines, {int(tunnels):,} distinct tunnels "
              f"({time.monotonic() - t0:.0f} s to generate)", flush=True)
        results = {}
        for name in args.only or CONFIGS:
            path = os.path.join(tmp, f"{name}.toml")
            Path(path).write_text(CONFIGS[name].format(bound=args.bound))
            out = subprocess.run([sys.executable, __file__, "--every", str(args.every),
                                  "--measure", corpus, path], check=True, capture_output=True,
                                 text=True).stdout
            results[name] = r = json.loads(out)
            s = r["stats"]
            assert s["in"] + s["derived"] == s["out"] + s["dropped"] + s["quarantined"], s
            print(f"\n{name}: {r['lines']:,} lines in {r['cpu_s']} s CPU, "
                  f"{r['events_per_s']:,} events/s, peak RSS {r['peak_rss_mib']} MiB, "
                  f"derived {s['derived']:,}", flush=True)
            print("  lines      RSS MiB  open tunnels")
            for x in r["samples"]:
                print(f"  {x['lines']:>9,}  {x['rss_mib']:>7}  {x['open_tunnels']:>12,}")
            if r["counts"]:
                print("  " + " ".join(f"{k}={v:,}" for k, v in r["counts"].items()))
        if "off" in results and "on" in results:
            off, on = results["off"], results["on"]
            print(f"\ncost of the plugin: {on['cpu_s'] / off['cpu_s']:.2f}x CPU "
                  f"({1e6 * (on['cpu_s'] - off['cpu_s']) / on['lines']:.1f} µs a line), "
                  f"+{on['peak_rss_mib'] - off['peak_rss_mib']:.0f} MiB peak RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
