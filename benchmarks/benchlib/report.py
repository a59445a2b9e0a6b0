"""Machine facts, the tables on stdout, comparison with an earlier run, and the SVG chart."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from html import escape

from .measure import STAGES

# -- machine --------------------------------------------------------------------------------


def machine_info(root: str) -> dict:
    import msgspec

    import ikefilter

    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    commit, dirty = _git(root)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "msgspec": msgspec.__version__,
        "ikefilter": getattr(ikefilter, "__version__", "?"),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
        "loadavg_at_start": load,
    }


def _git(root: str) -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "ikefilter"],
                                capture_output=True, text=True, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return None, None


# -- tables ---------------------------------------------------------------------------------


def _n(value, fmt="{:,.0f}", width=10) -> str:
    return (fmt.format(value) if isinstance(value, (int, float)) else "n/a").rjust(width)


def render(results: dict) -> str:
    m = results["machine"]
    cfg = results["config"]
    out = []
    commit = (m.get("git_commit") or "?")[:10] + (" +local changes" if m.get("git_dirty") else "")
    out.append(f"ikefilter benchmark  {m['date']}  commit {commit}")
    out.append(f"{m['cpu_model']}, {m['cores']} cores, {m['implementation']} {m['python']}, "
               f"msgspec {m['msgspec']}, load at start {_load(m)}")
    out.append("")
    if results.get("process"):
        out += render_process(results["process"], cfg.get("quick"))
    if not results.get("paths"):
        return "\n".join(out + render_targets(results))
    why = ", to explain the figures above" if results.get("process") else ""
    out.append(f"IN PROCESS{why}: one pinned core (cpu {cfg['cpu']}), "
               f"CPU time, {cfg['events']:,} events per path, best of {cfg['reps']}"
               f"{' (--quick)' if cfg['quick'] else ''}")
    out.append("")
    out.append("END TO END IN PROCESS (events/s, µs/event; ratio = ikefilter / naive)")
    out.append(f"{'path':<14}{'variant':<12}{'ikefilter/s':>12}{'µs':>7}"
               f"{'naive/s':>10}{'µs':>7}{'ratio':>8}   agree")
    for name, path in results["paths"].items():
        if "na" in path:
            out.append(f"{name:<14}n/a: {path['na']}")
            continue
        for variant, v in path["variants"].items():
            if "na" in v:
                out.append(f"{name:<14}{variant:<12}n/a: {v['na']}")
                continue
            ike, nv = v["ikefilter"], v.get("naive") or {}
            ratio = v.get("ratio")
            out.append(
                f"{name:<14}{variant:<12}{_n(ike['eps'], width=12)}{_n(ike['us'], '{:.1f}', 7)}"
                f"{_n(nv.get('eps'))}{_n(nv.get('us'), '{:.1f}', 7)}"
                f"{_n(ratio, '{:.2f}x', 8)}   {_agree(v.get('agreement'))}"
            )
    out.append("")
    out.append("STAGES (µs/event; other = end to end minus the stages: pipeline glue, I/O)")
    out.append(f"{'path':<14}{'variant':<12}" + "".join(f"{s:>10}" for s in STAGES)
               + f"{'other':>10}{'total':>10}")
    for name, path in results["paths"].items():
        for variant, v in path.get("variants", {}).items():
            if "na" in v:
                continue
            st = v["ikefilter"]["stages"]
            if v["ikefilter"].get("stages_na"):
                out.append(f"{name:<14}{variant:<12}n/a: {v['ikefilter']['stages_na']}")
                continue
            cells = "".join(_n(st[s]["us"] if st.get(s) else None, "{:.2f}") for s in STAGES)
            out.append(f"{name:<14}{variant:<12}{cells}"
                       f"{_n(v['ikefilter'].get('other_us'), '{:.2f}')}"
                       f"{_n(v['ikefilter']['us'], '{:.2f}')}")
    per_stage = "; ".join(
        f"{name} {s} {_n(v['ikefilter']['stages'][s]['eps'], width=0)}"
        for name, path in results["paths"].items()
        for variant, v in path.get("variants", {}).items() if variant == "plain" and "na" not in v
        for s in ("decode", "normalize", "encode") if v["ikefilter"]["stages"].get(s)
    )
    if per_stage:
        out.append("  as events/s: " + per_stage)
    out.append("")
    mismatches = [
        (name, variant, v["agreement"])
        for name, path in results["paths"].items()
        for variant, v in path.get("variants", {}).items()
        if "na" not in v and v.get("agreement") and v["agreement"].get("first_mismatch")
    ]
    if mismatches:
        out.append("AGREEMENT: fields where ikefilter and naive differ (first line shown)")
        for name, variant, a in mismatches:
            for f, d in a["first_mismatch"].items():
                out.append(f"  {name}/{variant} {f}: {a['fields_agree'][f]}/{a['sample']} agree; "
                           f"line {d['line']}: ikefilter={d['ikefilter']!r} naive={d['naive']!r}")
        out.append("")
    rss = results.get("rss")
    if rss:
        out.append("PEAK RSS (own process per run, streaming; after set-up = imports, catalog, "
                   "pipeline)")
        for job in rss.get("jobs", []):
            label = f"{job['path']}/{job['variant']}"
            if "na" in job:
                out.append(f"  {label:<26}{job['events']:>10,}  n/a: {job['na']}")
                continue
            out.append(f"  {label:<26}{job['events']:>10,} events  peak "
                       f"{job['peak_mib']:6.1f} MiB  after set-up "
                       f"{(job.get('baseline_kib') or 0) / 1024:6.1f} MiB  "
                       f"({job['events'] / job['seconds']:,.0f} events/s unpinned)")
        for g in rss.get("growth", []):
            out.append(f"  growth {g['path']}/{g['variant']}: {g['small']:,} -> {g['large']:,} "
                       f"events: {g['delta_mib']:+.1f} MiB")
        out.append("")
    sc = results.get("scaling")
    if sc:
        out.append("WORKER SCALING (wall clock, unpinned, ikefilter run per worker, "
                   "start-up included)")
        if "na" in sc.get("run", {}):
            out.append(f"  ikefilter run: n/a: {sc['run']['na']}")
        else:
            r = sc["run"]
            cells = ", ".join(f"{n} worker{'s' if n != '1' else ''} {w['eps']:,.0f} events/s"
                              for n, w in r["workers"].items())
            out.append(f"  ikefilter run, {r['events']:,} raw lines: {cells}; speed-up "
                       f"{_n(r.get('speedup'), '{:.2f}x', 0)} (start-up {r['startup_s']:.2f} s)")
        fw = sc.get("forward", {})
        if "na" in fw:
            out.append(f"  ikefilter forward: n/a: {fw['na']}")
        else:
            cells = ", ".join(
                f"{n} worker{'s' if n != '1' else ''} "
                + (f"{w['eps']:,.0f} events/s" if "eps" in w else f"n/a: {w['na']}")
                for n, w in fw["workers"].items())
            extra = f"; speed-up {fw['speedup']:.2f}x" if fw.get("speedup") else ""
            note = f" ({fw['note']})" if fw.get("note") else ""
            out.append(f"  ikefilter forward, {fw['events']:,} events in PackedForward frames "
                       f"of 1000, 4 connections, acked: {cells}{extra}{note}")
        out.append("")
    return "\n".join(out + render_targets(results))


def render_targets(results: dict) -> list[str]:
    out = ["TARGETS"]
    for t in results.get("targets", []):
        out.append(f"  {t['status']:<5} {t['name']}: {t['detail']}")
    return out


def render_process(proc: dict, quick: bool | None = None) -> list[str]:
    """The headline tables: whole processes, then each variant alone, then start-up."""
    out = []
    st = proc.get("startup") or {}
    out.append(f"WHOLE PROCESS (the headline): `ikefilter run` and naive.py as child processes, "
               f"corpus file on stdin, stdout to /dev/null, pinned to cpu {proc.get('cpu')}; "
               f"child CPU time (user+sys), median of {proc['pairs']} interleaved pairs; "
               f"start-up included{' (--quick: start-up weighs heavily)' if quick else ''}")
    out.append(f"{'corpus':<14}{'events':>8}{'B/ev':>6}{'ikefilter/s':>13}{'cpu s':>7}"
               f"{'wall s':>8}{'naive/s':>10}{'cpu s':>7}{'wall s':>8}{'ratio':>8}"
               f"  |{'ike µs':>8}{'naive µs':>10}{'ratio':>8}   agreement")
    for name, e in proc.get("corpora", {}).items():
        if "na" in e:
            out.append(f"{name:<14}n/a: {e['na']}")
            continue
        ike, nv = e["ikefilter"], e["naive"]
        out.append(f"{name:<14}{e['events']:>8,}{e['bytes_per_event']:>6.0f}"
                   f"{_n(ike['eps'], width=13)}{ike['cpu_s']:>7.2f}{ike['wall_s']:>8.2f}"
                   f"{_n(nv['eps'])}{nv['cpu_s']:>7.2f}{nv['wall_s']:>8.2f}"
                   f"{_n(e.get('ratio'), '{:.2f}x', 8)}  |"
                   f"{_n(ike.get('marginal_us'), '{:.1f}', 8)}"
                   f"{_n(nv.get('marginal_us'), '{:.1f}', 10)}"
                   f"{_n(e.get('marginal_ratio'), '{:.2f}x', 8)}"
                   f"   {_proc_agree(e.get('agreement'))}")
    out.append("right of |: CPU µs per line once up and warm = (all lines - the first tenth) / "
               "the lines between; start-up and first-use costs left out")
    out += _render_ocsf(proc.get("ocsf"))
    if "na" in st:
        out.append(f"start-up: n/a: {st['na']}")
    elif st:
        out.append(f"start-up (empty input, median of {len(st['ikefilter']['runs'])}): "
                   f"ikefilter run {st['ikefilter']['cpu_s']:.3f} s CPU "
                   f"({st['ikefilter']['wall_s']:.3f} s wall), naive "
                   f"{st['naive']['cpu_s']:.3f} s CPU ({st['naive']['wall_s']:.3f} s wall)")
    out.append("")
    variants = proc.get("variants") or {}
    if variants:
        clean = variants.get("(clean)", {}).get("ikefilter", {}).get("marginal_us")
        out.append(f"PER VARIANT: <PRI>[time] EFW: lines, every line carrying the one variant, "
                   f"{proc['variant_events']:,} lines each; whole process as above")
        out.append(f"{'variant':<16}{'ikefilter/s':>12}{'naive/s':>10}{'ratio':>8}"
                   f"  |{'ike µs':>8}{'naive µs':>10}{'ratio':>8}{'ike vs clean':>14}"
                   "   agreement")
        for name, e in variants.items():
            if "na" in e:
                out.append(f"{name:<16}n/a: {e['na']}")
                continue
            ike, nv = e["ikefilter"], e["naive"]
            warm = ike.get("marginal_us")
            vs = (f"{(warm / clean - 1) * 100:+.0f} %" if warm and clean and name != "(clean)"
                  else "")
            out.append(f"{name:<16}{_n(ike['eps'], width=12)}{_n(nv['eps'])}"
                       f"{_n(e.get('ratio'), '{:.2f}x', 8)}  |{_n(warm, '{:.1f}', 8)}"
                       f"{_n(nv.get('marginal_us'), '{:.1f}', 10)}"
                       f"{_n(e.get('marginal_ratio'), '{:.2f}x', 8)}{vs:>14}   "
                       f"{_proc_agree(e.get('agreement'))}")
        out.append("")
    notes = []
    for name, e in [*proc.get("corpora", {}).items(), *variants.items()]:
        a = e.get("agreement") or {}
        if "na" in a:
            notes.append(f"  {name}: agreement n/a: {a['na']}")
            continue
        if a.get("ikefilter_tags"):
            notes.append(f"  {name}: ikefilter tagged " + ", ".join(
                f"{k} {v:,}" for k, v in a["ikefilter_tags_by_line_kind"].items()))
        if a and not a.get("one_per_line", True):
            notes.append(f"  {name}: {a['outputs']} output lines for {a['sample']:,} input lines")
        if a.get("differ_by_line_kind"):
            notes.append(f"  {name}: documents that differ, by line: " + ", ".join(
                f"{k} {v:,}" for k, v in a["differ_by_line_kind"].items()))
            for f, d in a.get("first_mismatch", {}).items():
                notes.append(f"    {f}: {a['fields_agree'][f]:,}/{a['compared']:,} agree; "
                             f"line {d['line']} ({d['label']}): ikefilter={d['ikefilter']!r} "
                             f"naive={d['naive']!r}")
    if notes:
        out.append("WHOLE PROCESS OUTPUTS (from the agreement run; failure tags by kind of line)")
        out += notes
        out.append("")
    return out


def _render_ocsf(o: dict | None) -> list[str]:
    """The OCSF profile's row: ``run --schema ocsf`` against ``run`` (ECS)."""
    if not o:
        return []
    if "na" in o:
        return [f"ocsf profile: n/a: {o['na']}"]
    ecs, ocsf = o["ecs"], o["ocsf"]
    pairs = ", ".join(f"{c * 100:+.0f} %" for c in o["pair_costs"])
    cost = o["cost"] * 100 if o.get("cost") is not None else None
    return [f"{'+ ocsf':<14}{o['events']:>8,}{'':>6}{_n(ocsf['eps'], width=13)}"
            f"{ocsf['cpu_s']:>7.2f}{ocsf['wall_s']:>8.2f}  (`run --schema ocsf` on "
            f"{o['corpus']}; `run` {_n(ecs['eps'], width=0)}/s, {ecs['cpu_s']:.2f} s, "
            f"interleaved)  |{_n(ocsf.get('marginal_us'), '{:.1f}', 8)} vs "
            f"{_n(ecs.get('marginal_us'), '{:.1f}', 0)} µs",
            f"  OCSF profile cost: {_n(cost, '{:+.0f}', 0)} % "
            f"CPU whole process (pairs: {pairs}), "
            f"{_n(o.get('marginal_cost_us'), '{:+.1f}', 0)} µs per line warm; documents out: "
            f"ECS {o['lines_out']['ecs']:,}, OCSF {o['lines_out']['ocsf']:,} "
            f"for {o['events']:,} lines"]


def _proc_agree(a: dict | None) -> str:
    if not a:
        return "n/a"
    if "na" in a:
        return f"n/a: {a['na']}"
    per_line = "" if a.get("one_per_line") else "; NOT one document per line"
    req = "" if a.get("required_ok") else "; code/action/source.ip DIFFER"
    return f"{a['identical_documents']:,}/{a['compared']:,} docs identical{req}{per_line}"


def _load(m: dict) -> str:
    load = m.get("loadavg_at_start")
    text = "/".join(f"{x:.2f}" for x in load) if load else "?"
    end = m.get("loadavg_at_end")
    return text + (f", at end {'/'.join(f'{x:.2f}' for x in end)}" if end else "")


def _agree(a: dict | None) -> str:
    if not a:
        return "n/a"
    fields = a["fields_agree"]
    n = a["sample"]
    req = "code/action/source.ip " + ("same" if a["required_ok"] else "DIFFER")
    others = sum(1 for v in fields.values() if v == n)
    text = f"{req} on {n}; {others}/{len(fields)} fields"
    if a.get("identical_documents") is not None:
        text += f"; {a['identical_documents']}/{n} docs identical"
    return text


# -- comparison -----------------------------------------------------------------------------


def compare(old: dict, new: dict) -> str:
    om, nm = old.get("machine", {}), new.get("machine", {})
    out = [f"COMPARE {(om.get('git_commit') or '?')[:10]} ({om.get('date')}) -> "
           f"{(nm.get('git_commit') or '?')[:10]} ({nm.get('date')})"]
    if om.get("cpu_model") != nm.get("cpu_model"):
        out.append(f"  note: different CPU ({om.get('cpu_model')} vs {nm.get('cpu_model')})")
    out.append(f"{'path':<14}{'variant':<12}{'old/s':>10}{'new/s':>10}{'delta':>9}"
               f"{'old ratio':>11}{'new ratio':>11}   stage µs/event deltas")
    for name, path in new.get("paths", {}).items():
        for variant, v in path.get("variants", {}).items():
            ov = old.get("paths", {}).get(name, {}).get("variants", {}).get(variant)
            if "na" in v or not ov or "na" in ov:
                continue
            a, b = ov["ikefilter"]["eps"], v["ikefilter"]["eps"]
            stages = []
            for s in STAGES:
                so, sn = ov["ikefilter"]["stages"].get(s), v["ikefilter"]["stages"].get(s)
                if so and sn:
                    stages.append(f"{s} {sn['us'] - so['us']:+.2f}")
            out.append(f"{name:<14}{variant:<12}{a:>10,.0f}{b:>10,.0f}{(b / a - 1) * 100:>+8.1f}%"
                       f"{_n(ov.get('ratio'), '{:.2f}x', 11)}{_n(v.get('ratio'), '{:.2f}x', 11)}"
                       f"   {', '.join(stages)}")
    op, np_ = old.get("process") or {}, new.get("process") or {}
    for group in ("corpora", "variants"):
        for name, e in (np_.get(group) or {}).items():
            o = (op.get(group) or {}).get(name)
            if "na" in e or not o or "na" in o:
                continue
            a, b = o["ikefilter"]["eps"], e["ikefilter"]["eps"]
            label = "whole" if group == "corpora" else "variant"
            out.append(f"{label + ' ' + name:<26}{a:>10,.0f}{b:>10,.0f}"
                       f"{(b / a - 1) * 100:>+8.1f}%{_n(o.get('ratio'), '{:.2f}x', 11)}"
                       f"{_n(e.get('ratio'), '{:.2f}x', 11)}")
    orss = {(j["path"], j["variant"], j["events"]): j for j in old.get("rss", {}).get("jobs", [])}
    for j in new.get("rss", {}).get("jobs", []):
        o = orss.get((j["path"], j["variant"], j["events"]))
        if o and "peak_mib" in o and "peak_mib" in j:
            out.append(f"  rss {j['path']}/{j['variant']} {j['events']:,}: "
                       f"{o['peak_mib']:.1f} -> {j['peak_mib']:.1f} MiB")
    return "\n".join(out)


# -- chart ----------------------------------------------------------------------------------


def svg_chart(results: dict) -> str:
    """Horizontal bars: events/s per path and variant, ikefilter against naive."""
    rows = []
    for name, e in ((results.get("process") or {}).get("corpora") or {}).items():
        if "na" not in e:
            rows.append((f"whole process: {name}", e["ikefilter"]["eps"], e["naive"]["eps"],
                         e.get("ratio")))
    for name, path in results["paths"].items():
        for variant, v in path.get("variants", {}).items():
            if "na" in v:
                continue
            rows.append((f"in process: {name} / {variant}", v["ikefilter"]["eps"],
                         (v.get("naive") or {}).get("eps"), v.get("ratio")))
    label_w, bar_w, bar_h, gap = 300, 520, 14, 14
    top = 70
    height = top + len(rows) * (2 * bar_h + gap) + 40
    width = label_w + bar_w + 150
    peak = max([r[1] for r in rows] + [r[2] or 0 for r in rows] + [1])
    m = results["machine"]
    title = (f"ikefilter vs naive, events/s on one core ({(m.get('git_commit') or '?')[:10]}, "
             f"{m['date'][:10]})")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<text x="10" y="42" fill="#555">{escape(m["cpu_model"])}, Python {m["python"]}, '
        f'msgspec {m["msgspec"]}</text>',
        f'<rect x="{label_w}" y="50" width="12" height="10" fill="#2b6cb0"/>'
        f'<text x="{label_w + 16}" y="59">ikefilter</text>'
        f'<rect x="{label_w + 90}" y="50" width="12" height="10" fill="#a0aec0"/>'
        f'<text x="{label_w + 106}" y="59">naive (stdlib json + re)</text>',
        f'<text x="{width - 10}" y="59" text-anchor="end" fill="#555">ikefilter / naive</text>',
    ]
    y = top
    for label, ike, naive, ratio in rows:
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h + 4}" text-anchor="end">'
                     f'{escape(label)}</text>')
        for value, color, dy in ((ike, "#2b6cb0", 0), (naive, "#a0aec0", bar_h)):
            if value is None:
                parts.append(f'<text x="{label_w + 4}" y="{y + dy + 11}" fill="#999">n/a</text>')
                continue
            w = max(1, int(bar_w * value / peak))
            parts.append(f'<rect x="{label_w}" y="{y + dy}" width="{w}" height="{bar_h - 1}" '
                         f'fill="{color}"/>')
            parts.append(f'<text x="{label_w + w + 4}" y="{y + dy + 11}">{value:,.0f}</text>')
        if ratio:
            parts.append(f'<text x="{width - 10}" y="{y + bar_h + 4}" text-anchor="end" '
                         f'font-weight="bold">{ratio:.2f}x</text>')
        y += 2 * bar_h + gap
    parts.append(f'<line x1="{label_w}" y1="{top - 4}" x2="{label_w}" y2="{y}" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
