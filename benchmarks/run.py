#!/usr/bin/env python3
"""Throughput benchmark of ikefilter against a naive reference filter.

First, the headline: ``ikefilter run`` and ``naive.py`` as whole processes on one pinned core
(child CPU time, median of interleaved pairs) over the wild mix as raw lines, pre-split and
wrapped JSON records, and the clean corpus; then each value variant alone; and start-up.
Then, to explain those figures, in process: for each input path (raw syslog lines, JSON
records, Fluent Forward frames) and each site set-up (no plugins; hmac redaction plus two
severity rules) events/s and µs/event per stage and end to end, the same for ``naive.py``,
the ratio, peak RSS of a streaming run at two input sizes, and 1 -> 2 worker scaling.
Results go to ``bench-results/<timestamp>.json`` and ``latest.json`` (+ ``latest.svg``), the
tables to stdout, progress to stderr. ``--compare OLD.json`` prints the deltas against an
earlier run.

    python benchmarks/run.py --quick          # ~3 min
    python benchmarks/run.py                  # ~10-15 min on 2 cores
    python benchmarks/run.py --process-only   # the whole-process tables alone
    python benchmarks/run.py --report bench-results/latest.json --compare OLD.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
try:
    import ikefilter  # noqa: F401
    EXTRA_PATH = None
except ImportError:  # a source checkout that was not installed
    sys.path.insert(0, str(ROOT))
    EXTRA_PATH = str(ROOT)

import naive  # noqa: E402
from benchlib import agree, measure, process, report, rss, scaling, sites  # noqa: E402

from ikefilter import generate  # noqa: E402

QUICK = {"events": 3000, "reps": 5, "agree_sample": 500, "rss_events": (60_000, 15_000),
         "rss_paths": ("raw-bracketed",), "scale_events": 40_000, "scale_reps": 1,
         "process_events": 10_000, "variant_events": 3_000, "pairs": 3}
FULL = {"events": 15_000, "reps": 5, "agree_sample": 2000, "rss_events": (1_000_000, 200_000),
        "rss_paths": ("raw-bracketed", "forward"), "scale_events": 200_000, "scale_reps": 2,
        "process_events": 60_000, "variant_events": 10_000, "pairs": 3}

RSS_LIMIT_MIB = 64
RSS_GROWTH_MIB = 4


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        sys.stderr.write(f"[{time.monotonic() - self.t0:6.1f}s] {msg}\n")
        sys.stderr.flush()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short run (~3 min)")
    p.add_argument("--process-events", type=int,
                   help="records per corpus for the whole-process figures (default 60000)")
    p.add_argument("--variant-events", type=int,
                   help="lines per variant for the table per variant (default 10000; 0: skip)")
    p.add_argument("--pairs", type=int,
                   help="interleaved ikefilter/naive pairs per whole-process figure (>= 3)")
    p.add_argument("--corpora", nargs="+", choices=process.CORPUS_NAMES,
                   help="only these whole-process corpora")
    p.add_argument("--variants", nargs="+", choices=tuple(generate.VARIANTS),
                   help="only these variants in the table per variant")
    p.add_argument("--no-process", action="store_true", help="skip the whole-process runs")
    p.add_argument("--process-only", action="store_true",
                   help="only the whole-process runs (no in-process paths, RSS or scaling)")
    p.add_argument("--events", type=int, help="events per path for the timings")
    p.add_argument("--reps", type=int, help="timed repetitions (the best is kept)")
    p.add_argument("--paths", nargs="+", choices=measure.PATH_NAMES, help="only these paths")
    p.add_argument("--cpu", type=int, help="core to pin the single-core timings to "
                   "(default: the last one allowed)")
    p.add_argument("--rss-events", help="two input sizes for the peak RSS runs, e.g. "
                   "1000000,200000")
    p.add_argument("--no-rss", action="store_true", help="skip the peak RSS runs")
    p.add_argument("--no-scaling", action="store_true", help="skip the worker scaling runs")
    p.add_argument("--rss-paths", nargs="+", choices=measure.PATH_NAMES,
                   help="paths whose peak RSS is measured (default: raw-bracketed, forward)")
    p.add_argument("--agree-sample", type=int,
                   help="events per path checked for ikefilter/naive agreement")
    p.add_argument("--out", default=str(ROOT / "bench-results"), help="results directory")
    p.add_argument("--compare", metavar="OLD.json", help="print deltas against an earlier run")
    p.add_argument("--report", metavar="RESULTS.json",
                   help="print a saved run (and --compare) without running anything")
    p.add_argument("--rss-child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- the timing of one path -------------------------------------------------------------------


def bench_path(spec, cfg, catalog, workdir, note) -> dict:
    from ikefilter.catalog import data_dir

    entry: dict = {"title": spec.title, "shapes": list(spec.shapes)}
    if spec.kind == "forward":
        try:
            measure.forward_protocol()
        except ModuleNotFoundError as exc:
            return {**entry, "na": f"no {exc.name} yet"}
    note(f"{spec.name}: generating {cfg['events']:,} events")
    corpus = measure.make_corpus(spec, cfg["events"], catalog=catalog)
    size = len(corpus.data) if corpus.data else sum(map(len, corpus.frames))
    entry.update(events=corpus.events, bytes_per_event=size / corpus.events)
    n = corpus.events

    setups = {}
    for variant in sites.VARIANTS:
        s = sites.site(variant, workdir)
        try:
            pipeline = sites.make_pipeline(s, catalog)
        except sites.NotAvailable as exc:
            setups[variant] = {"na": str(exc)}
            note(f"{spec.name}/{variant}: n/a: {exc}")
            continue
        nf = naive.NaiveFilter(catalog_path=data_dir() / "ike.json", **s.naive_kwargs)
        naive_ok = None
        if spec.kind == "forward":
            try:
                import msgpack  # noqa: F401
            except ImportError:
                naive_ok = "the naive forward path needs the msgpack package"
        setups[variant] = {"pipeline": pipeline, "naive": nf, "naive_na": naive_ok}

    variants: dict = {}
    for variant, st in setups.items():
        if "na" in st:
            variants[variant] = {"na": st["na"]}
            continue
        note(f"{spec.name}/{variant}: checking agreement with naive")
        variants[variant] = {"agreement": agree.compare(
            corpus, st["pipeline"], st["naive"], variant, cfg["agree_sample"])}

    # End to end, ikefilter and naive interleaved so that noise hits both alike.
    runs = {}
    for variant, st in setups.items():
        if "na" in st:
            continue
        runs[(variant, "ikefilter")] = measure.ikefilter_e2e(corpus, st["pipeline"])
        if not st["naive_na"]:
            runs[(variant, "naive")] = measure.naive_e2e(corpus, st["naive"])
    for fn in runs.values():  # warm-up: caches, imports, lazy set-up
        fn()
    samples: dict = {key: [] for key in runs}
    for rep in range(cfg["reps"]):
        note(f"{spec.name}: end to end, rep {rep + 1}/{cfg['reps']}")
        for key, fn in runs.items():
            samples[key] += measure.best_of(fn, 1)[1]
    for (variant, impl), times in samples.items():
        cpu = [c for c, _ in times]
        wall = [w for _, w in times]
        fig = measure.figure(min(cpu), n)
        fig["cpu_s"] = cpu
        fig["wall_s"] = wall
        fig["wall_eps"] = n / min(wall)
        variants[variant][impl] = fig
    for variant, st in setups.items():
        if "na" in st:
            continue
        v = variants[variant]
        if st["naive_na"]:
            v["naive"] = {"na": st["naive_na"]}
        note(f"{spec.name}/{variant}: stages")
        try:
            stage_s = measure.stage_times(corpus, st["pipeline"], cfg["reps"], catalog)
        except (AttributeError, TypeError, ImportError) as exc:
            # the stages follow the fast path's internals, which may have moved on
            note(f"{spec.name}/{variant}: stages n/a: {type(exc).__name__}: {exc}")
            v["ikefilter"]["stages_na"] = f"{type(exc).__name__}: {exc}"
            stage_s = dict.fromkeys(measure.STAGES)
        stages = {k: (measure.figure(t, n) if t is not None else None)
                  for k, t in stage_s.items()}
        v["ikefilter"]["stages"] = stages
        timed = [t for t in stage_s.values() if t is not None]
        v["ikefilter"]["other_us"] = ((min(v["ikefilter"]["cpu_s"]) - sum(timed)) / n * 1e6
                                      if timed else None)
        if v.get("naive", {}).get("eps"):
            v["ratio"] = v["ikefilter"]["eps"] / v["naive"]["eps"]
    entry["variants"] = variants
    return entry


# -- peak RSS and scaling ---------------------------------------------------------------------


def bench_rss(cfg, catalog, workdir, note) -> dict:
    bases = {}
    jobs = []
    large, small = cfg["rss_events"]
    for spec in measure.PATHS:
        if spec.name not in cfg["rss_paths"] or spec.name not in cfg["paths"]:
            continue
        if spec.kind == "forward":
            try:
                measure.forward_protocol()
            except ModuleNotFoundError:
                continue
        base = os.path.join(workdir, f"base-{spec.name}.log")
        text = measure.make_corpus(measure.PathSpec(spec.name, "", "lines", spec.shapes), 5600,
                                   seed=7, catalog=catalog).lines
        with open(base, "w", encoding="utf-8") as f:
            f.write("\n".join(text) + "\n")
        bases[spec.name] = base
        variants = [sites.PLAIN]
        if spec.name == "raw-bracketed":
            variants.append(sites.PLUGINS)
        for variant in variants:
            for events in (large, small):
                jobs.append({"path": spec.name, "variant": variant, "events": events,
                             "kind": spec.kind, "base": base, "workdir": workdir})
    # the big ones first, two at a time: the machine has two cores
    jobs.sort(key=lambda j: -j["events"])
    done = rss.run_jobs(jobs, str(Path(__file__).resolve()), rss.child_env(EXTRA_PATH), 2, note)
    growth = []
    by_key = {(j["path"], j["variant"], j["events"]): j for j in done}
    for (path, variant, events), j in by_key.items():
        if events != large:
            continue
        s = by_key.get((path, variant, small))
        if s and "peak_mib" in s and "peak_mib" in j:
            growth.append({"path": path, "variant": variant, "small": small, "large": large,
                           "delta_mib": j["peak_mib"] - s["peak_mib"]})
    return {"jobs": sorted(done, key=lambda j: (j["path"], j["variant"], -j["events"])),
            "growth": growth}


def bench_scaling(cfg, catalog, workdir, note) -> dict:
    spec = measure.PATHS[0]
    base = measure.make_corpus(spec, min(cfg["scale_events"], 28 * 400), seed=11,
                               catalog=catalog)
    copies = -(-cfg["scale_events"] // base.events)
    lines = (base.data * copies).split(b"\n")[:cfg["scale_events"]]
    data = b"\n".join(lines) + b"\n"
    env = rss.child_env(EXTRA_PATH)
    out = {}
    try:
        out["run"] = scaling.run_scaling(data, len(lines), workdir, env, cfg["scale_reps"],
                                         note=note)
    except (OSError, RuntimeError) as exc:
        out["run"] = {"na": str(exc)}
    fwd_events = min(cfg["scale_events"], 100_000)
    out["forward"] = scaling.forward_scaling(
        measure.pack_frames([t.decode() for t in lines[:fwd_events]]), fwd_events, env,
        cfg["scale_reps"], note)
    return out


# -- targets ----------------------------------------------------------------------------------


def _ratio(results, path, variant="plain"):
    v = results["paths"].get(path, {}).get("variants", {}).get(variant, {})
    return v.get("ratio")


def _status(ok) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def _process_ratio(results, corpus):
    entry = (results.get("process") or {}).get("corpora", {}).get(corpus) or {}
    return entry.get("ratio")


def _ratio_target(name, limit, results, corpus, paths) -> dict:
    """Judged on the whole-process figure when it was measured, else on the in-process."""
    whole = _process_ratio(results, corpus)
    inproc = {p: _ratio(results, p) for p in paths}
    got = [r for r in inproc.values() if r is not None]
    parts = []
    if whole is not None:
        parts.append(f"whole process {corpus} {whole:.2f}x")
    if inproc and any(r is not None for r in inproc.values()):
        parts.append("in process " + ", ".join(f"{p} {_fmt(r, '{:.2f}x')}"
                                                 for p, r in inproc.items()))
    if whole is not None:
        ok = whole >= limit
    else:
        ok = min(got) >= limit if got else None
    return {"name": name, "status": _status(ok), "detail": "; ".join(parts) or "not measured"}


def targets(results: dict) -> list[dict]:
    out = [
        _ratio_target("raw syslog >= 4x naive", 4, results, "wild-raw",
                      ("raw-bracketed", "raw-mix")),
        _ratio_target("pre-split JSON >= 6x naive", 6, results, "wild-split", ("json-split",)),
    ]
    costs = {}
    why = None
    for p in ("raw-bracketed", "raw-mix"):
        vs = results["paths"].get(p, {}).get("variants", {})
        a, b = vs.get(sites.PLAIN, {}), vs.get(sites.PLUGINS, {})
        if "ikefilter" in a and "ikefilter" in b:
            costs[p] = 1 - b["ikefilter"]["eps"] / a["ikefilter"]["eps"]
        elif "na" in b:
            why = b["na"]
    out.append({"name": "redaction + 2 severity rules cost <= 25 % on raw lines",
                "status": _status(max(costs.values()) <= 0.25 if costs else None),
                "detail": ", ".join(f"{p} {c * 100:+.1f} %" for p, c in costs.items())
                or f"n/a: {why or 'not measured'}"})
    rs = results.get("rss") or {}
    measured = [j for j in rs.get("jobs", []) if "peak_mib" in j]
    if measured:
        largest = max(j["events"] for j in measured)
        peak = max(j["peak_mib"] for j in measured if j["events"] == largest)
        full = largest >= 1_000_000
        note = "" if full else " (too few events to judge: caches may still be filling)"
        out.append({"name": f"peak RSS < {RSS_LIMIT_MIB} MiB for 1M events",
                    "status": _status(peak < RSS_LIMIT_MIB) if full else "n/a",
                    "detail": f"max {peak:.1f} MiB at {largest:,} events{note}"})
    else:
        out.append({"name": f"peak RSS < {RSS_LIMIT_MIB} MiB for 1M events", "status": "n/a",
                    "detail": "not measured"})
    growth = rs.get("growth", [])
    if growth:
        worst = max(growth, key=lambda g: g["delta_mib"])
        full = worst["large"] >= 1_000_000
        out.append({"name": f"RSS not growing with input size (<= {RSS_GROWTH_MIB} MiB)",
                    "status": _status(worst["delta_mib"] <= RSS_GROWTH_MIB) if full else "n/a",
                    "detail": f"worst {worst['path']}/{worst['variant']} "
                              f"{worst['small']:,} -> {worst['large']:,}: "
                              f"{worst['delta_mib']:+.1f} MiB"
                              + ("" if full else " (judged from 1M events: run the default)")})
    else:
        out.append({"name": "RSS not growing with input size", "status": "n/a",
                    "detail": "not measured"})
    fair = [v.get("agreement", {}).get("required_ok")
            for p in results["paths"].values() for v in p.get("variants", {}).values()
            if v.get("agreement")]
    proc = results.get("process") or {}
    for entry in [*proc.get("corpora", {}).values(), *proc.get("variants", {}).values()]:
        a = entry.get("agreement")
        if a and "na" not in a:
            fair.append(a.get("required_ok"))
    out.append({"name": "fair comparison: naive agrees on event.code/action/source.ip",
                "status": _status(all(fair) if fair else None),
                "detail": f"{sum(bool(f) for f in fair)}/{len(fair)} samples agree "
                          "(in process: path/set-up; whole process: corpus/variant)"})
    return out


def _fmt(value, fmt):
    return fmt.format(value) if value is not None else "n/a"


# -- main -------------------------------------------------------------------------------------


def write_results(results: dict, out_dir: str) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = results["machine"]["date"].replace(":", "").replace("+0000", "Z")
    path = out / f"{stamp}.json"
    text = json.dumps(results, indent=1) + "\n"
    path.write_text(text, encoding="utf-8")
    (out / "latest.json").write_text(text, encoding="utf-8")
    (out / "latest.svg").write_text(report.svg_chart(results), encoding="utf-8")
    return path


def run_all(args, cfg: dict, allowed: list[int], workdir: str, note) -> dict:
    from ikefilter.catalog import data_dir, load

    catalog = load()
    results: dict = {"machine": report.machine_info(str(ROOT)),
                     "config": {k: v for k, v in cfg.items()}, "paths": {}}
    if not args.no_process:
        # the headline first: whole processes, each child pinned to the core
        results["process"] = process.bench(catalog, str(data_dir() / "ike.json"), cfg,
                                           workdir, rss.child_env(EXTRA_PATH), note)
    if allowed and cfg["cpu"] is not None:
        os.sched_setaffinity(0, {cfg["cpu"]})
    try:
        for spec in measure.PATHS:
            if spec.name not in cfg["paths"]:
                continue
            try:
                results["paths"][spec.name] = bench_path(spec, cfg, catalog, workdir, note)
            except Exception as exc:  # noqa: BLE001 - one path failing keeps the others
                traceback.print_exc()
                results["paths"][spec.name] = {"na": f"failed: {type(exc).__name__}: {exc}"}
    finally:
        if allowed:
            os.sched_setaffinity(0, set(allowed))
    if not args.no_rss and not args.process_only:
        results["rss"] = bench_rss(cfg, catalog, workdir, note)
    if not args.no_scaling and not args.process_only:
        results["scaling"] = bench_scaling(cfg, catalog, workdir, note)
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.rss_child:
        rss.child_main(json.loads(args.rss_child))
        return 0
    if args.report:
        results = json.loads(Path(args.report).read_text(encoding="utf-8"))
        results["targets"] = targets(results)
        print(report.render(results))
        if args.compare:
            print()
            print(report.compare(json.loads(Path(args.compare).read_text("utf-8")), results))
        return 0

    note = Progress()
    cfg = dict(QUICK if args.quick else FULL)
    cfg["quick"] = args.quick
    cfg["events"] = args.events or cfg["events"]
    cfg["reps"] = args.reps or cfg["reps"]
    cfg["agree_sample"] = args.agree_sample or cfg["agree_sample"]
    cfg["rss_paths"] = tuple(args.rss_paths or cfg["rss_paths"])
    cfg["paths"] = tuple(args.paths or measure.PATH_NAMES)
    cfg["process_events"] = args.process_events or cfg["process_events"]
    if args.variant_events is not None:
        cfg["variant_events"] = args.variant_events
    cfg["pairs"] = max(3, args.pairs or cfg["pairs"])
    cfg["process_corpora"] = tuple(args.corpora or process.CORPUS_NAMES)
    cfg["variant_names"] = tuple(args.variants) if args.variants else None
    if args.process_only:
        cfg["paths"] = ()
    if args.rss_events:
        cfg["rss_events"] = tuple(sorted((int(x) for x in args.rss_events.split(",")),
                                         reverse=True))[:2]
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cfg["cpu"] = args.cpu if args.cpu is not None else (allowed[-1] if allowed else None)
    workdir = sites.scratch_dir()
    try:
        results = run_all(args, cfg, allowed, workdir, note)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["targets"] = targets(results)
    if hasattr(os, "getloadavg"):
        results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["config"]["seconds"] = time.monotonic() - note.t0

    path = write_results(results, args.out)
    print(report.render(results))
    if args.compare:
        print()
        print(report.compare(json.loads(Path(args.compare).read_text("utf-8")), results))
    print(f"\nresults: {path} (and latest.json, latest.svg) in "
          f"{results['config']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
