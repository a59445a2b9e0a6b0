#!/usr/bin/env python3
"""Peak RSS and speed of hmac redaction against the size bound of its pseudonym caches.

Each bound runs in its own process, streaming N raw lines whose addresses keep changing (as
``run.py``'s RSS runs do), with the redaction plugin's ``_CACHE_MAX`` set before start-up.

    python benchmarks/experiments/redact_cache.py [--events 300000] [--caps 0 32768 16384 4096]

A cap of 0 keeps the plugin's own bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(BENCH))
try:
    import ikefilter  # noqa: F401
    EXTRA = None
except ImportError:
    sys.path.insert(0, str(BENCH.parent))
    EXTRA = str(BENCH.parent)

from benchlib import measure, rss, sites  # noqa: E402

CHILD = """
import json, sys
sys.path.insert(0, {bench!r})
import ikefilter.plugins.redact as redact
cap = {cap}
default = redact._CACHE_MAX
if cap:
    redact._CACHE_MAX = cap
from benchlib import rss
rss.child_main({job!r})
print(json.dumps({{"cap": cap or default}}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--caps", type=int, nargs="+", default=[0, 32768, 16384, 4096])
    args = ap.parse_args(argv)
    workdir = sites.scratch_dir()
    base = os.path.join(workdir, "base.log")
    text = measure.make_corpus(measure.PathSpec("x", "", "lines", ("bracketed",)), 5600,
                               seed=7).lines
    with open(base, "w", encoding="utf-8") as f:
        f.write("\n".join(text) + "\n")
    job = {"variant": sites.PLUGINS, "workdir": workdir, "base": base, "kind": "lines",
           "events": args.events}
    print(f"{args.events:,} raw lines, hmac redaction of IPs and identities + 2 severity rules")
    print(f"{'cache bound':>12}{'peak MiB':>10}{'events/s':>10}")
    for cap in args.caps:
        code = CHILD.format(bench=str(BENCH), cap=cap, job=job)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=rss.child_env(EXTRA), check=True).stdout.splitlines()
        figures, meta = json.loads(out[-2]), json.loads(out[-1])
        print(f"{meta['cap']:>12,}{figures['vmhwm_kib'] / 1024:>10.1f}"
              f"{figures['events'] / figures['seconds']:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
