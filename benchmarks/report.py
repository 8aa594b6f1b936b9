"""Render a results dict (benchmarks/results/latest.json) as the Markdown tables of the README."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _f(value, digits=2, suffix=""):
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{suffix}"


def _pct(value):
    return "n/a" if value is None else f"{value:+.1f} %"


def parse_table(r: dict) -> list[str]:
    out = [
        f"Fresh interpreters, {r['repeats']} interleaved runs each; medians. Extra = against the baseline of the same venv.",
        "",
        "| What | wall (s) | wall IQR (s) | CPU (s) | peak RSS (MiB) | extra wall | extra CPU | extra peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in r["rows"]:
        base = row.get("baseline")
        out.append(
            f"| {row['name']} | {_f(row['wall_s'])} | {_f(row.get('wall_q1'))}–{_f(row.get('wall_q3'))} | {_f(row['cpu_s'])} "
            f"| {_f(row['peak_kib'] / 1024, 1)} | {_pct(row.get('extra_wall_pct')) if base else 'baseline'} "
            f"| {_pct(row.get('extra_cpu_pct')) if base else ''} | {_f(row.get('extra_peak_mib'), 2, ' MiB') if base else ''} |"
        )
    dagbag = [row for row in r["rows"] if "parse_s" in row]
    if dagbag:
        out += ["", "In-process DagBag parse of the one file (airflow already imported, as in the DAG processor's parse):", "",
                "| DAG file | parse (ms) | RSS growth (MiB) | extra parse | extra RSS |", "| --- | ---: | ---: | ---: | ---: |"]
        for row in dagbag:
            out.append(
                f"| {row['name'].split(': ', 1)[1]} | {_f(row['parse_s'] * 1000, 0)} | {_f(row['parse_rss_kib'] / 1024, 1)} "
                f"| {_f(row.get('extra_parse_ms'), 0, ' ms') if row.get('baseline') else 'baseline'} "
                f"| {_f(row.get('extra_parse_rss_mib'), 2, ' MiB') if row.get('baseline') else ''} |"
            )
    if r.get("import_breakdown"):
        out += ["", "Slowest modules the operators' import adds (`python -X importtime`, one run, self / cumulative µs): "
                + ", ".join(f"`{m}` {a} / {b}" for m, a, b in r["import_breakdown"]) + "."]
    if r.get("python_heap_kib") is not None:
        out += ["", f"Python heap allocated by importing the drop/create operators after `airflow.sdk` (tracemalloc): {r['python_heap_kib']:.0f} KiB."]
    out += ["", "Modules the provider's imports add beyond `airflow.sdk`: " + ", ".join(f"`{m}`" for m in r["modules"]) + "."]
    return out


def overhead_table(r: dict) -> list[str]:
    s = r["sides"]
    out = [
        f"{r['setup']['rows']} rows, dim {r['setup']['dim']}, HNSW; collection loaded before each run; both sides as two tasks "
        f"under `dag.test()`; {len(s['operators']['runs'])} interleaved rounds, medians. Poll interval {r['poll_interval_s']} s on both sides.",
        "",
        "| Side | task time (s) | DAG run wall (s) | fixed RPCs | poll RPCs (median) | Connect (counted apart) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, side in s.items():
        out.append(f"| {name} | {_f(side['task_s'])} | {_f(side['dag_wall_s'])} | {side['fixed_rpc_total']} | {side['poll_rpcs_median']:.0f} | {side.get('connects', 'n/a')} |")
    out += ["", f"Ratio operators / raw: task time **{r['task_ratio']:.3f}×**, DAG run wall {r['dag_wall_ratio']:.3f}× (target ≤ 1.10×).", ""]
    # A build's length follows the server's load: each round's build-status polls show it.
    out += ["Rounds, task time (s) / build-status polls: " + "; ".join(
        f"{name}: " + ", ".join(f"{run['task_s']:.1f} / {run['rpcs']['poll'].get('DescribeIndex', 0)}" for run in side["runs"])
        for name, side in s.items()) + ".", ""]
    out += ["Fixed RPCs by method: " + "; ".join(
        f"{name}: " + ", ".join(f"{m} {n}" for m, n in side["fixed_rpcs"].items()) for name, side in s.items()) + ".", ""]
    out += ["Extra fixed RPCs of the operators, by method: " + (", ".join(f"{m} {n:+d}" for m, n in r["extra_rpcs"].items()) or "none") + ".", ""]
    out += ["Where every fixed RPC of the operators comes from (caller chain inside `airflow_milvus`):", "",
            "| RPC @ caller | count |", "| --- | ---: |"]
    for site, n in s["operators"]["fixed_rpc_sites"].items():
        method, chain = site.split(" @ ", 1)
        # The retry/call plumbing is the same for every call: keep the provider functions that decide.
        steps = [x for x in chain.split(" > ") if not x.startswith(("retry.", "hooks.milvus.<lambda>", "hooks.milvus.call"))]
        out.append(f"| {method} @ `{' > '.join(steps)}` | {n} |")
    return out


def waiting_table(r: dict) -> list[str]:
    out = [
        f"{r['rows']} rows, dim {r['dim']}, HNSW build; poll interval {r['poll_interval_s']} s. 'Noticed' = first poll that saw the build "
        "done, minus the moment a 0.1 s watcher saw it; 'returned' = the task's end_date minus that moment.",
        "",
        "| Waiter | builds | build (s) | noticed after, median / max (s) | task returned after, median / max (s) | noticed within one poll |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, k in r["kinds"].items():
        out.append(
            f"| {name} | {len(k['samples'])} | {_f(k['median_build_s'], 1)} | {_f(k['median_notice_s'])} / {_f(k['max_notice_s'])} "
            f"| {_f(k['median_delay_s'])} / {_f(k['max_delay_s'])} | {'yes' if k['noticed_within_one_poll'] else 'NO'} |"
        )
    return out


def slots_table(r: dict) -> list[str]:
    return [
        "| Deferred waits | worker slots (parallelism) | deferred while the busy task held the slot | most tasks running at once | "
        "triggers in the triggerer | build (s) | waits' outcome | resumed after build done (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        f"| {r['waits']} | {r['parallelism']} | {r['max_deferred_while_busy_runs']} | {r['max_running']} "
        f"| {max((s['triggers'] for s in r['samples']), default=0)} | {_f(r['build_s'], 0)} "
        f"| {', '.join(sorted(set(r['wait_states'].values())))} | {', '.join(str(x) for x in r['resume_after_build_s'])} |",
    ]


def reindex_table(r: dict) -> list[str]:
    out = [
        f"N = {r['rows']} rows, dim {r['dim']}, HNSW (M 16, efConstruction 64); {r['repeats']} round(s), strategies rotated; medians. "
        "Query-ready = from the cycle's first task to the new data being served from a built index.",
        "",
        "| Strategy | phases (s) | query-ready (s) | whole cycle (s) | searches failing (s) | peak server RSS (MiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, s in r["summary"].items():
        phases = ", ".join(f"{p} {v:.1f}" for p, v in s["phases_s"].items())
        out.append(f"| {name} | {phases} | {_f(s['query_ready_s'], 1)} | {_f(s['cycle_s'], 1)} | {_f(s['not_serving_s'], 1)} | {_f(s['peak_server_rss_mib'], 0)} |")
    return out


SECTIONS = {
    "parse": ("1. Parse cost", parse_table),
    "overhead": ("2. Operator overhead", overhead_table),
    "waiting": ("3a. Noticing a finished build", waiting_table),
    "slots": ("3b. Worker slots held by deferred waits", slots_table),
    "reindex": ("4. Reindex cycle", reindex_table),
}


def render(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"Run {meta['started']} ({meta['duration_s'] / 60:.1f} min), `{meta['command']}`; {meta['cpus']} CPUs, load average "
        f"{meta['load_before']} before and {meta['load_after']} after; Airflow {meta.get('airflow')}, pymilvus {meta.get('pymilvus')}, "
        f"Milvus server {meta.get('milvus_server', 'n/a')}.",
    ]
    for key, (title, fn) in SECTIONS.items():
        if key in results:
            value = results[key]
            lines += ["", f"#### {title}", ""]
            if value.get("_run"):
                lines += [f"From an earlier run: {value['_run']}.", ""]
            lines += [f"Failed: `{value['error']}`"] if "error" in value else fn(value)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "latest.json")
    print(render(json.loads(path.read_text())))
