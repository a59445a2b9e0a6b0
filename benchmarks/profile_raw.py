#!/usr/bin/env python3
"""Where the time goes on the raw-line path: cProfile over ``lines.run`` on one pinned core.

Prints, per function of the ikefilter modules (and the C calls they make), the calls per
event and the time per event, own and cumulative. cProfile adds a fixed cost to every Python
call, so small functions look dearer than they are: read it for the shape, and the
in-process stage figures of ``run.py`` for measured costs.

    python benchmarks/profile_raw.py [--events 30000] [--shape bracketed] [--plugins]
    python benchmarks/profile_raw.py --mix wild             # the wild mix's text lines
    python benchmarks/profile_raw.py --variant spi-0x       # one variant alone
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import ikefilter  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent))

from benchlib import measure, sites  # noqa: E402

from ikefilter import generate  # noqa: E402
from ikefilter.adapters import lines  # noqa: E402
from ikefilter.catalog import load  # noqa: E402

MODULES = ("wire.py", "fastlane.py", "builders.py", "values.py", "record.py", "records.py",
           "normalize.py", "pipeline.py", "lines.py", "batching.py", "ecs.py", "stages.py",
           "redact.py", "severity.py")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=30000)
    p.add_argument("--shape", action="append", choices=generate.ALL_SHAPES,
                   help="wire shape (repeatable; default: bracketed, or the wild mix's text "
                   "shapes with --mix wild)")
    p.add_argument("--mix", choices=generate.MIXES, default="clean")
    p.add_argument("--variant", action="append", choices=tuple(generate.VARIANTS),
                   help="every line carries this variant (repeatable)")
    p.add_argument("--plugins", action="store_true", help="with redaction and severity rules")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--cpu", type=int)
    args = p.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {args.cpu if args.cpu is not None else cpus[-1]})

    catalog = load()
    shapes = tuple(args.shape or (generate.WILD_TEXT_SHAPES if args.mix == "wild"
                                  else ("bracketed",)))
    text = list(generate.lines(catalog, args.events, 1, shapes, mix=args.mix,
                               variants=tuple(args.variant or ())))
    corpus = measure.Corpus(measure.PathSpec("profile", "", "lines", shapes), text,
                            ("\n".join(text) + "\n").encode())
    label = ",".join(shapes) + (f", mix {args.mix}" if args.mix != "clean" else "") + (
        f", variant {'+'.join(args.variant)}" if args.variant else "")
    variant = sites.PLUGINS if args.plugins else sites.PLAIN
    pipeline = sites.make_pipeline(sites.site(variant, sites.scratch_dir()), catalog)
    lines.run(pipeline, [io.BytesIO(corpus.data)], io.BytesIO())  # warm caches

    prof = cProfile.Profile()
    prof.enable()
    lines.run(pipeline, [io.BytesIO(corpus.data)], io.BytesIO())
    prof.disable()
    stats = pstats.Stats(prof)
    n = corpus.events
    total = stats.total_tt
    print(f"{label}, {variant}, {n:,} events: {total / n * 1e6:.1f} µs/event under the "
          f"profiler\n")
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        name = os.path.basename(file)
        if name in MODULES or file == "~":
            label = f"{name}:{line}({func})" if file != "~" else func
            rows.append((tt, nc, ct, label))
    rows.sort(reverse=True)
    # Own time by module, the C calls a module makes billed to it (through cProfile's
    # per-caller figures).
    by_module: dict[str, float] = {}
    for (file, _line, _func), (_cc, _nc, tt, _ct, callers) in stats.stats.items():
        if file != "~":
            key = os.path.basename(file) if os.path.basename(file) in MODULES else "other"
            by_module[key] = by_module.get(key, 0.0) + tt
            continue
        for (cfile, _cl, _cf), (_c1, _c2, ctt, _cct) in callers.items():
            key = os.path.basename(cfile) if os.path.basename(cfile) in MODULES else "other"
            by_module[key] = by_module.get(key, 0.0) + ctt
    print("by module (own time, C calls billed to the caller):")
    for key, tt in sorted(by_module.items(), key=lambda kv: -kv[1]):
        print(f"  {key:<14}{tt / n * 1e6:>7.2f} µs/event {tt / total * 100:>5.1f}%")
    print()
    print(f"{'calls/ev':>9}{'own µs/ev':>11}{'own %':>7}{'cum µs/ev':>11}  function")
    for tt, nc, ct, label in rows[:args.top]:
        print(f"{nc / n:>9.2f}{tt / n * 1e6:>11.2f}{tt / total * 100:>6.1f}%"
              f"{ct / n * 1e6:>11.2f}  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
