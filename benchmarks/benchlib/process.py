"""The headline figures: ``ikefilter run`` and the naive filter as whole processes.

Each filter runs as a child process, its input a corpus file on stdin and its output
/dev/null, pinned to one core (``sched_setaffinity`` in the child before it starts Python).
The figure is the child's own CPU time (user + system, from ``os.wait4``), the median of
``pairs`` interleaved runs (ikefilter, naive, ikefilter, naive, ...), so noise on a shared
machine hits both alike; wall time is kept beside it. Start-up (imports, catalog, set-up)
is part of a whole process and is included; it is also measured alone on empty input.

Corpora (generated into the scratch directory, removed once measured): the wild mix as raw
syslog lines (its text shapes), as pre-split JSON records and as JSON records wrapping a line
(``log`` / ``message``); the clean generated corpus; and, for the table per variant, raw
``<PRI>[time] EFW:`` lines that each carry one variant alone, beside the clean lines.

Each pair also runs both filters on the corpus's first tenth: the difference is the cost of
a line once the process is up and warm, which start-up does not blur.

Before the timed runs each filter runs once with its output kept, which warms the caches and
gives the agreement check: one output document per input line, and the documents compared
field by field (times both filters took from the clock count as equal).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ikefilter import generate

from . import agree

HERE = Path(__file__).resolve().parent.parent
NAIVE = HERE / "naive.py"


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    title: str
    mix: str                        # "wild" or "clean"
    shapes: tuple[str, ...] | None  # None: the mix's own
    variants: tuple[str, ...] = ()


CORPORA = (
    CorpusSpec("wild-raw", "wild mix, raw syslog lines (every text shape)", "wild",
               generate.WILD_TEXT_SHAPES),
    CorpusSpec("wild-split", "wild mix, pre-split JSON records", "wild", ("split",)),
    CorpusSpec("wild-wrapped", 'wild mix, JSON records wrapping a line ("log", "message")',
               "wild", ("json-log", "json-message")),
    CorpusSpec("clean", "the clean generated corpus (every shape)", "clean", None),
)
CORPUS_NAMES = tuple(c.name for c in CORPORA)
CLEAN_VARIANT = "(clean)"


def variant_specs(names=None) -> list[CorpusSpec]:
    """The table per variant: clean bracketed lines, then each variant alone."""
    chosen = [v for v in generate.VARIANTS if names is None or v in names]
    return [CorpusSpec(CLEAN_VARIANT, "clean <PRI>[time] lines", "clean", ("bracketed",))] + [
        CorpusSpec(v, generate.VARIANTS[v][0], "clean", ("bracketed",), (v,)) for v in chosen
    ]


@dataclass
class Corpus:
    spec: CorpusSpec
    path: str
    events: int
    bytes: int
    labels: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # kind, variants


def write_corpus(spec: CorpusSpec, catalog, count: int, workdir: str, seed: int = 1) -> Corpus:
    path = os.path.join(workdir, f"proc-{spec.name.strip('()')}.log")
    labels: list[tuple[str, tuple[str, ...]]] = []
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        if spec.mix == "wild" or spec.variants:
            produced = generate.samples(catalog, count, seed, spec.shapes, spec.mix,
                                        spec.variants)
            batch = []
            for s in produced:
                batch.append(s.line)
                labels.append((s.kind, s.variants))
                if len(batch) == 2000:
                    size += f.write("\n".join(batch) + "\n")
                    batch.clear()
            if batch:
                size += f.write("\n".join(batch) + "\n")
        else:
            text = list(generate.lines(catalog, count, seed, spec.shapes))
            labels = [("ike", ())] * len(text)
            size += f.write("\n".join(text) + "\n")
    return Corpus(spec, path, len(labels), size, labels)


# -- running a child ----------------------------------------------------------------------


def commands(catalog_path: str) -> dict[str, list[str]]:
    return {
        "ikefilter": [sys.executable, "-m", "ikefilter", "run"],
        "naive": [sys.executable, str(NAIVE), "--catalog", catalog_path],
    }


def run_child(cmd: list[str], stdin_path: str, env: dict, cpu: int | None,
              stdout_path: str = os.devnull) -> dict:
    """Run one child to its end: its CPU time (user + system) and wall time, in seconds."""

    def pin():  # runs in the child between fork and exec
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    with open(stdin_path, "rb") as fin, open(stdout_path, "wb") as fout, \
            tempfile.TemporaryFile() as ferr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, env=env,
                                preexec_fn=pin if cpu is not None else None)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        ferr.seek(0)
        err = ferr.read().decode("utf-8", "replace")
    result = {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": wall,
              "user_s": usage.ru_utime, "sys_s": usage.ru_stime}
    if proc.returncode != 0:
        last = (err.strip().splitlines() or ["no output"])[-1]
        result["error"] = f"exit {proc.returncode}: {last}"
    return result


def _median_figures(runs: list[dict], events: int) -> dict:
    cpu = statistics.median(r["cpu_s"] for r in runs)
    wall = statistics.median(r["wall_s"] for r in runs)
    return {"cpu_s": cpu, "wall_s": wall, "eps": events / cpu if cpu else None,
            "wall_eps": events / wall if wall else None,
            "runs": [{k: round(v, 5) for k, v in r.items() if k != "error"} for r in runs]}


def write_head(corpus: Corpus, lines: int) -> str:
    """The corpus's first ``lines`` lines, as a file beside it."""
    path = corpus.path + ".head"
    with open(corpus.path, "rb") as src, open(path, "wb") as dst:
        for _ in range(lines):
            line = src.readline()
            if not line:
                break
            dst.write(line)
    return path


def measure_pairs(corpus: Corpus, cmds: dict, env: dict, cpu: int | None,
                  pairs: int) -> dict:
    """Median CPU and wall time of ``pairs`` interleaved runs of each filter.

    Each pair also runs both filters on the corpus's first tenth, so that the cost of a line
    once the process is up and warm (imports, catalog, anything built on first use) can be
    told apart: ``marginal_us`` = (CPU of all lines - CPU of the first tenth) / the lines
    between.
    """
    head_n = corpus.events // 10
    head = write_head(corpus, head_n) if head_n else None
    runs: dict[str, list[dict]] = {name: [] for name in cmds}
    head_runs: dict[str, list[dict]] = {name: [] for name in cmds}
    try:
        for _ in range(pairs):
            for name, cmd in cmds.items():
                r = run_child(cmd, corpus.path, env, cpu)
                if "error" in r:
                    return {"na": f"{name}: {r['error']}"}
                runs[name].append(r)
            for name, cmd in cmds.items() if head else ():
                r = run_child(cmd, head, env, cpu)
                if "error" in r:
                    return {"na": f"{name} (first tenth): {r['error']}"}
                head_runs[name].append(r)
    finally:
        if head:
            os.unlink(head)
    out: dict = {name: _median_figures(rs, corpus.events) for name, rs in runs.items()}
    ike, naive = out["ikefilter"], out["naive"]
    out["ratio"] = naive["cpu_s"] / ike["cpu_s"] if ike["cpu_s"] else None
    out["pair_ratios"] = [n["cpu_s"] / i["cpu_s"] for i, n in
                          zip(runs["ikefilter"], runs["naive"], strict=True) if i["cpu_s"]]
    if head:
        for name in cmds:
            first = statistics.median(r["cpu_s"] for r in head_runs[name])
            rest = out[name]["cpu_s"] - first
            out[name]["head_cpu_s"] = first
            out[name]["marginal_us"] = rest / (corpus.events - head_n) * 1e6 \
                if rest > 0 else None
        a, b = ike.get("marginal_us"), naive.get("marginal_us")
        out["marginal_ratio"] = b / a if a and b else None
    return out


def measure_schema(corpus: Corpus, env: dict, cpu: int | None, pairs: int,
                   workdir: str) -> dict:
    """The cost of the OCSF profile: ``ikefilter run`` and ``ikefilter run --schema ocsf``
    on the same corpus, interleaved as above (whole process, and per line once warm); one
    run of each first counts its output lines (one document per input line)."""
    ecs = commands("")["ikefilter"]
    cmds = {"ecs": ecs, "ocsf": [*ecs, "--schema", "ocsf"]}
    lines = {}
    for name, cmd in cmds.items():
        kept = os.path.join(workdir, f"schema-{name}.out")
        r = run_child(cmd, corpus.path, env, cpu, kept)
        lines[name] = _count_lines(kept)
        os.unlink(kept)
        if "error" in r:
            return {"na": f"{name}: {r['error']}"}
    head_n = corpus.events // 10
    head = write_head(corpus, head_n)
    runs: dict[str, list[dict]] = {name: [] for name in cmds}
    head_runs: dict[str, list[dict]] = {name: [] for name in cmds}
    try:
        for _ in range(pairs):
            for name, cmd in cmds.items():
                runs[name].append(run_child(cmd, corpus.path, env, cpu))
                head_runs[name].append(run_child(cmd, head, env, cpu))
    finally:
        os.unlink(head)
    out: dict = {"events": corpus.events, "lines_out": lines}
    for name in cmds:
        fig = out[name] = _median_figures(runs[name], corpus.events)
        rest = fig["cpu_s"] - statistics.median(r["cpu_s"] for r in head_runs[name])
        fig["marginal_us"] = rest / (corpus.events - head_n) * 1e6 if rest > 0 else None
    e, o = out["ecs"], out["ocsf"]
    out["cost"] = o["cpu_s"] / e["cpu_s"] - 1 if e["cpu_s"] else None
    out["pair_costs"] = [b["cpu_s"] / a["cpu_s"] - 1 for a, b in
                         zip(runs["ecs"], runs["ocsf"], strict=True) if a["cpu_s"]]
    if e["marginal_us"] and o["marginal_us"]:
        out["marginal_cost_us"] = o["marginal_us"] - e["marginal_us"]
    return out


def measure_startup(cmds: dict, env: dict, cpu: int | None, reps: int) -> dict:
    """Each filter on empty input (``< /dev/null``): median of ``reps`` runs, interleaved."""
    runs: dict[str, list[dict]] = {name: [] for name in cmds}
    for _ in range(max(1, reps)):
        for name, cmd in cmds.items():
            r = run_child(cmd, os.devnull, env, cpu)
            if "error" in r:
                return {"na": f"{name}: {r['error']}"}
            runs[name].append(r)
    return {name: _median_figures(rs, 0) | {"eps": None, "wall_eps": None}
            for name, rs in runs.items()}


# -- agreement of the whole-process outputs -----------------------------------------------


def _clock_time(value, since: str) -> bool:
    return isinstance(value, str) and value >= since


def check_agreement(corpus: Corpus, cmds: dict, env: dict, cpu: int | None,
                    workdir: str) -> dict:
    """Run each filter once with its output kept; compare the documents line by line."""
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")[:19]
    outs = {}
    result: dict = {"sample": corpus.events}
    for name, cmd in cmds.items():
        out = os.path.join(workdir, f"out-{name}.jsonl")
        r = run_child(cmd, corpus.path, env, cpu, out)
        if "error" in r:
            for path in outs.values():
                os.unlink(path)
            os.unlink(out)
            return {"na": f"{name}: {r['error']}"}
        outs[name] = out
    try:
        fields = agree.PLAIN_FIELDS
        agreeing = dict.fromkeys(fields, 0)
        first: dict[str, dict] = {}
        same = 0
        differ_by: Counter = Counter()
        tags: Counter = Counter()
        tagged_by: Counter = Counter()
        n = 0
        with open(outs["ikefilter"], "rb") as fa, open(outs["naive"], "rb") as fb:
            rows = zip(fa, fb, corpus.labels, strict=False)  # counts are checked below
            for i, (line_a, line_b, (kind, variants)) in enumerate(rows):
                n += 1
                a, b = json.loads(line_a), json.loads(line_b)
                own = [t for t in (a.get("tags") or []) if t.startswith("ikefilter_")] \
                    if isinstance(a, dict) else []
                for t in own:
                    tags[t] += 1
                    tagged_by[(t, _label(kind, variants))] += 1
                if (isinstance(a, dict) and isinstance(b, dict)
                        and _clock_time(a.get("@timestamp"), since)
                        and _clock_time(b.get("@timestamp"), since)):
                    b["@timestamp"] = a["@timestamp"]  # both took the time from the clock
                if (isinstance(a, dict) and isinstance(b, dict)
                        and _clock_time(agree.get(a, "event.ingested"), since)
                        and _clock_time(agree.get(b, "event.ingested"), since)):
                    b["event"]["ingested"] = a["event"]["ingested"]  # each process's clock
                if a == b:
                    same += 1
                else:
                    differ_by[_label(kind, variants)] += 1
                for f in fields:
                    va, vb = agree.get(a, f), agree.get(b, f)
                    if va == vb:
                        agreeing[f] += 1
                    elif f not in first:
                        first[f] = {"line": i, "ikefilter": agree._show(va),
                                    "naive": agree._show(vb), "label": _label(kind, variants)}
        counts = {name: _count_lines(path) for name, path in outs.items()}
        result.update({
            "compared": n,
            "outputs": counts,
            "one_per_line": counts["ikefilter"] == corpus.events,
            "identical_documents": same,
            "required_ok": all(agreeing[f] == n for f in agree.REQUIRED) and n > 0,
            "fields_agree": agreeing,
            "first_mismatch": first,
            "differ_by_line_kind": dict(differ_by.most_common(12)),
            "ikefilter_tags": dict(tags),
            "ikefilter_tags_by_line_kind": {f"{t} on {lbl}": c
                                            for (t, lbl), c in tagged_by.most_common(12)},
        })
    finally:
        for path in outs.values():
            os.unlink(path)
    return result


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _label(kind: str, variants: tuple[str, ...]) -> str:
    if kind != "ike":
        return kind
    return "+".join(variants) if variants else "clean IKE line"


# -- the whole run ------------------------------------------------------------------------


def bench(catalog, catalog_path: str, cfg: dict, workdir: str, env: dict, note) -> dict:
    cmds = commands(catalog_path)
    cpu = cfg.get("cpu")
    pairs = cfg["pairs"]
    out: dict = {"pairs": pairs, "cpu": cpu, "events": cfg["process_events"],
                 "variant_events": cfg["variant_events"], "corpora": {}, "variants": {}}
    note("whole process: start-up on empty input")
    out["startup"] = measure_startup(cmds, env, cpu, max(pairs, 5))
    for spec in CORPORA:
        if spec.name not in cfg["process_corpora"]:
            continue
        note(f"whole process: {spec.name}: generating {cfg['process_events']:,} records")
        corpus = write_corpus(spec, catalog, cfg["process_events"], workdir)
        entry: dict = {"title": spec.title, "events": corpus.events,
                       "bytes_per_event": corpus.bytes / corpus.events}
        try:
            note(f"whole process: {spec.name}: agreement run")
            entry["agreement"] = check_agreement(corpus, cmds, env, cpu, workdir)
            note(f"whole process: {spec.name}: {pairs} interleaved pairs")
            entry.update(measure_pairs(corpus, cmds, env, cpu, pairs))
        finally:
            os.unlink(corpus.path)
        if "na" not in entry:
            note(f"whole process: {spec.name}: ikefilter {entry['ikefilter']['eps']:,.0f}/s, "
                 f"naive {entry['naive']['eps']:,.0f}/s, {entry['ratio']:.2f}x")
        out["corpora"][spec.name] = entry
    if cfg.get("ocsf", True) and "wild-raw" in cfg["process_corpora"]:
        spec = CORPORA[0]
        note(f"whole process: the OCSF profile on {spec.name}: {pairs} interleaved pairs")
        corpus = write_corpus(spec, catalog, cfg["process_events"], workdir)
        try:
            out["ocsf"] = {"corpus": spec.name,
                           **measure_schema(corpus, env, cpu, pairs, workdir)}
        finally:
            os.unlink(corpus.path)
    if cfg["variant_events"]:
        for spec in variant_specs(cfg.get("variant_names")):
            corpus = write_corpus(spec, catalog, cfg["variant_events"], workdir, seed=2)
            entry = {"title": spec.title, "events": corpus.events,
                     "bytes_per_event": corpus.bytes / corpus.events}
            try:
                if cfg.get("variant_agreement", True):
                    entry["agreement"] = check_agreement(corpus, cmds, env, cpu, workdir)
                else:  # still one run of each before the timed ones
                    for cmd in cmds.values():
                        run_child(cmd, corpus.path, env, cpu)
                entry.update(measure_pairs(corpus, cmds, env, cpu, pairs))
            finally:
                os.unlink(corpus.path)
            if "na" not in entry:
                note(f"per variant: {spec.name}: {entry['ratio']:.2f}x")
            out["variants"][spec.name] = entry
    return out
