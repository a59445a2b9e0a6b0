#!/usr/bin/env python3
"""What the cyclic garbage collector costs end to end, per path, and what settings save.

Events are ``gc=False`` Structs, but decoding still allocates tracked objects (dicts of
params, JSON records, forward entries as lists of ``[time, record]``), and a frame of 1000
records keeps thousands of them alive at once, so generation-0 collections run often and
promote them to where full collections walk them again. Each setting is applied around the
same end-to-end run as ``run.py``'s, alternating setting by setting, best of N (CPU time).

    python benchmarks/experiments/collector.py [--events 15000] [--reps 7]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
try:
    import ikefilter  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent.parent))

from benchlib import measure, sites  # noqa: E402

from ikefilter.catalog import load  # noqa: E402

SETTINGS = {
    "default (700, 10, 10)": (False, None),
    "gc.freeze() after start-up": (True, None),
    "set_threshold(20000, 20, 20)": (False, (20_000, 20, 20)),
    "freeze + set_threshold(20000, 20, 20)": (True, (20_000, 20, 20)),
    "collector off (bound)": (False, "off"),
}


def apply(freeze: bool, threshold, old) -> None:
    gc.unfreeze()
    gc.set_threshold(*old)
    gc.enable()
    if freeze:
        gc.freeze()
    if threshold == "off":
        gc.disable()
    elif threshold:
        gc.set_threshold(*threshold)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=15000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--paths", nargs="+", default=["raw-bracketed", "json-split", "forward"],
                    choices=measure.PATH_NAMES)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    cat = load()
    old = gc.get_threshold()
    print(f"{args.events:,} events per path, best of {args.reps}, CPU time, one core\n")
    print(f"{'path':<15}{'setting':<40}{'µs/event':>9}{'vs default':>12}")
    for spec in measure.PATHS:
        if spec.name not in args.paths:
            continue
        corpus = measure.make_corpus(spec, args.events, catalog=cat)
        pipeline = sites.make_pipeline(sites.site(sites.PLAIN, sites.scratch_dir()), cat)
        run = measure.ikefilter_e2e(corpus, pipeline)
        run()
        best: dict[str, float] = {}
        for _ in range(args.reps):
            for name, (freeze, threshold) in SETTINGS.items():
                apply(freeze, threshold, old)
                t0 = time.process_time()
                run()
                us = (time.process_time() - t0) / corpus.events * 1e6
                best[name] = min(best.get(name, us), us)
        apply(False, None, old)
        base = best["default (700, 10, 10)"]
        for name, us in best.items():
            print(f"{spec.name:<15}{name:<40}{us:>9.2f}{base / us:>11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
