"""Tables of bulk_reload results: one per storage and size, from every ``bulk_reload-*.json``."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import median

STRATEGIES = {"kept": "kept", "dropped": "dropped, rebuilt", "compacted": "dropped, compacted, rebuilt"}
CASES = [(path, strategy) for path in ("ingest", "import") for strategy in STRATEGIES]
STORAGE = {"local": "local storage", "s3": "object storage (S3 server on loopback)"}


def result_path(out: Path, storage: str, rows: int) -> Path:
    return out / f"bulk_reload-{storage}-{rows}.json"


def summarize(runs: list[dict]) -> list[dict]:
    """Medians per case, in CASES order."""
    summary = []
    for path, strategy in CASES:
        mine = [r for r in runs if r["path"] == path and r["index"] == STRATEGIES[strategy]]
        if not mine:
            continue
        summary.append({
            "path": path, "index": mine[0]["index"],
            "phases_s": {p: median([r["phases_s"][p] for r in mine]) for p in mine[0]["phases_s"]},
            **{k: median([r[k] for r in mine if r.get(k) is not None])
               for k in ("query_ready_s", "worker_cpu_s", "not_serving_s", "peak_server_rss_mib")},
            "range_s": (min(r["query_ready_s"] for r in mine), max(r["query_ready_s"] for r in mine)),
            "samples": len(mine),
            "loads": [r["load_before"] for r in mine if r.get("load_before") is not None],
            "compactions": [describe_compaction(r["compaction"]) for r in mine if r.get("compaction")],
        })
    return summary


def describe_compaction(report: dict) -> str:
    """One line of a compact operator's result: what Milvus compacted, or why nothing."""
    if not report["compacted"]:
        return f"nothing compacted ({report.get('note') or report['state']})"
    return (f"{report['plans']} plan(s), segments {report['segments_before']} -> {report['segments_after']}, "
            f"rows {report['rows_before']} -> {report['rows_after']}")


def render(r: dict) -> str:
    summary = summarize(r["runs"])
    loads = [x for s in summary for x in s["loads"]]
    counts = sorted({s["samples"] for s in summary}) or [0]
    rounds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]} (per case)"
    out = [
        f"### {STORAGE[r['storage']]}, N = {r['rows']:,} × {r['dim']}",
        "",
        (f"HNSW (M 16, efConstruction 64), Milvus 2.3.5 standalone, 2 cores; {rounds} round(s), cases rotated, "
         f"medians (range of query-ready in brackets). 1-minute load average before each case "
         f"{min(loads, default=float('nan')):.2f}–{max(loads, default=float('nan')):.2f}. Import files "
         f"({r['files']} Parquet file(s), {r['writer']}) written once in {r['export_s']:.1f} s, "
         f"{r['export_cpu_s']:.1f} s CPU. Runs: {', '.join(r['sessions'])}."),
        "",
        "| Reload | index | phases (s) | query-ready (s) | worker CPU (s) | searches failing (s) | peak server RSS (MiB) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for s in summary:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in s["phases_s"].items())
        low, high = s["range_s"]
        rss = "n/a" if s["peak_server_rss_mib"] != s["peak_server_rss_mib"] else f"{s['peak_server_rss_mib']:.0f}"
        cpu = f"{s['worker_cpu_s']:.1f}" + (f" (+{r['export_cpu_s']:.1f} export)" if s["path"] == "import" else "")
        out.append(f"| {s['path']} | {s['index']} | {phases} | {s['query_ready_s']:.1f} ({low:.0f}–{high:.0f}) | {cpu} "
                   f"| {s['not_serving_s']:.1f} | {rss} |")
    compactions = [f"- {s['path']}, {s['index']}: {rounds_of(s['compactions'])}" for s in summary if s.get("compactions")]
    if compactions:
        out += ["", "What the compaction before the rebuild did, per round:", "", *compactions]
    layouts = sorted({tuple(x["start_segments"]) for x in r["runs"] if x.get("start_segments")})
    if layouts:
        recorded = sum(bool(x.get("start_segments")) for x in r["runs"])
        shown = "; ".join(" + ".join(f"{n:,}" for n in layout) for layout in layouts)
        out += ["", f"Rows per persisted segment at the start ({recorded} of {len(r['runs'])} cases recorded it): {shown}."]
    return "\n".join(out) + "\n"


def rounds_of(lines: list[str]) -> str:
    """Per-round lines, each distinct one once: "every round: ..." or "round 1: ...; round 2: ..."."""
    if len(set(lines)) == 1:
        return f"every round: {lines[0]}"
    return "; ".join(f"round {i}: {line}" for i, line in enumerate(lines, 1))


def render_all(out: Path) -> str:
    """Every stored result, local before object storage, small before large."""
    results = [json.loads(p.read_text()) for p in out.glob("bulk_reload-*.json")]
    results.sort(key=lambda r: (r["storage"] != "local", r["rows"]))
    return "\n".join(render(r) for r in results)


def update_readme(readme: Path, text: str) -> None:
    """Put the tables between README's bulk_reload markers."""
    start, end = "<!-- bulk_reload:start -->", "<!-- bulk_reload:end -->"
    body = readme.read_text()
    head, rest = body.split(start, 1)
    readme.write_text(f"{head}{start}\n\n{text}\n{end}{rest.split(end, 1)[1]}")
