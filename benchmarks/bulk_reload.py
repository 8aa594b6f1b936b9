"""Reload by row ingest against reload by import job, each with the index kept, dropped first, or
dropped first with a compaction before the rebuild.

``python -m benchmarks.bulk_reload --rows 100000`` from the repository root (the four cases without
compaction took about 15 minutes at N = 100 000 on 2 cores; there are six). Results go to
benchmarks/results/bulk_reload.json and .md (``--out`` elsewhere).

Every case starts from the same state, made afresh and not timed: N rows, HNSW, loaded,
searched by a prober every 0.5 s (reindex.Prober, which also samples the server's RSS). The
reload then replaces the N rows with the same N rows, through the provider's operators run in
this process, one after another as a DAG's tasks would:

- ingest: ``MilvusIngestOperator`` (upsert, batches of 1 000, rows generated on the fly);
- import: delete the N rows by primary key, then ``MilvusBulkImportOperator`` on Parquet files
  written once beforehand with ``LocalBulkWriter`` (the export is timed and its CPU counted apart);
- index dropped: ``MilvusDropIndexOperator`` first (it releases the collection), and
  ``MilvusCreateIndexOperator(index_specs=drop.output, load=True)`` after the reload;
- index kept: after the reload, wait until the index has no pending rows;
- index dropped and compacted: as dropped, with ``MilvusCompactOperator`` between the reload and
  the rebuild, so that the rebuild indexes the live rows only if Milvus purged the replaced ones
  (what the compaction did is kept with each case: on Milvus 2.3 a collection without a vector
  index does not compact, see docs/operators.md#milvuscompactoperator).

Query-ready is when a strong-consistency count sees N rows and a search returns row 7 first,
from the first step's start. Worker CPU is the CPU time of the thread that runs the steps
(``time.thread_time``): the prober and watcher threads are not counted, gRPC's C threads
neither. Searches failing = time covered by failed or empty probes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import data
from benchmarks.common import BENCH, log, median, set_milvus_conn, setup_airflow_home

CONN_ID = "bench_milvus"
NAME = "bench_reload"
# Index strategies: kept, dropped first, dropped first with a compaction before the rebuild.
STRATEGIES = {"kept": "kept", "dropped": "dropped, rebuilt", "compacted": "dropped, compacted, rebuilt"}
CASES = [(path, strategy) for path in ("ingest", "import") for strategy in STRATEGIES]
SEARCH = {"params": {"ef": 1024}}


def export_files(uri: str, folder: Path, *, rows: int, dim: int) -> tuple[list[str], float, float]:
    """Parquet import files of the N rows; returns (files, wall s, CPU s)."""
    from pymilvus import CollectionSchema
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    with data.client(uri) as c:
        schema = CollectionSchema.construct_from_dict(c.describe_collection(NAME))
    folder.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.time(), time.thread_time()
    writer = LocalBulkWriter(schema=schema, local_path=str(folder), file_type=BulkFileType.PARQUET)
    for i in range(rows):
        writer.append_row({"id": i, "embedding": data.vector(i, dim), "title": f"book {i}"})
    writer.commit()
    files = [os.path.abspath(f) for batch in writer.batch_files for f in batch]
    return files, time.time() - wall, time.thread_time() - cpu


def _ready(hook, rows: int, dim: int) -> bool:
    def check(c):
        count = c.query(NAME, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
        if count != rows:
            return False
        hits = c.search(NAME, data=[data.vector(7, dim)], limit=1, anns_field="embedding", search_params=SEARCH)
        return bool(hits[0]) and int(hits[0][0]["id"]) == 7

    try:
        return bool(hook.call("readiness", check))
    except Exception:
        return False


def run_case(uri: str, path: str, strategy: str, *, rows: int, dim: int, files: list[str], server_pid: int | None) -> dict:
    from airflow_milvus.hooks.milvus import MilvusHook
    from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator
    from airflow_milvus.operators.collection import MilvusCompactOperator
    from airflow_milvus.operators.index import (
        MilvusCreateIndexOperator,
        MilvusDropIndexOperator,
    )
    from airflow_milvus.operators.ingest import MilvusIngestOperator
    from airflow_milvus.planning.rules import build_outcome
    from benchmarks.reindex import Prober

    prober = Prober(uri, NAME, dim, server_pid)
    prober.start()
    phases: dict[str, float] = {}
    hook = MilvusHook(CONN_ID, timeout=120)

    def step(label: str, fn):
        t = time.time()
        out = fn()
        phases[label] = time.time() - t
        return out

    drop = strategy != "kept"
    compacted = None
    start, cpu = time.time(), time.thread_time()
    try:
        snapshot = None
        if drop:
            snapshot = step("drop", lambda: MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN_ID, collection_name=NAME, drop_all=True).execute({}))
        if path == "ingest":
            rows_gen = lambda: ({"id": i, "embedding": data.vector(i, dim), "title": f"book {i}"} for i in range(rows))  # noqa: E731
            step("reload", lambda: MilvusIngestOperator(task_id="reload", milvus_conn_id=CONN_ID, collection_name=NAME,
                                                        data=rows_gen, batch_size=1000, mode="upsert").execute({}))
        else:
            def delete():
                for s in range(0, rows, 10_000):
                    ids = list(range(s, min(s + 10_000, rows)))
                    hook.call("delete", lambda c, ids=ids: c.delete(NAME, ids=ids, timeout=120))
            step("delete", delete)
            step("reload", lambda: MilvusBulkImportOperator(task_id="reload", milvus_conn_id=CONN_ID, collection_name=NAME,
                                                            files=files, poll_interval=0.5, timeout=3600).execute({}))
        if strategy == "compacted":
            compacted = step("compact", lambda: MilvusCompactOperator(task_id="compact", milvus_conn_id=CONN_ID, collection_name=NAME,
                                                                  poll_interval=0.5, timeout=3600).execute({}))
        if drop:
            step("rebuild + load", lambda: MilvusCreateIndexOperator(task_id="rebuild", milvus_conn_id=CONN_ID, index_specs=snapshot,
                                                                     load=True, poll_interval=0.5).execute({}))
        else:
            def catch_up():
                while build_outcome(hook.index_build_status(NAME, "embedding")) != "done":
                    time.sleep(0.5)
            step("index catch-up", catch_up)
        t = time.time()
        while not _ready(hook, rows, dim):
            if time.time() - t > 600:
                raise RuntimeError(f"{path}, index {STRATEGIES[strategy]}: not query-ready 600 s after the steps")
            time.sleep(0.25)
        phases["until served"] = time.time() - t
        ready = time.time() - start
        worker_cpu = time.thread_time() - cpu
    finally:
        prober.stop()
        hook.close()
    return {
        "path": path, "index": STRATEGIES[strategy], "phases_s": phases, "query_ready_s": ready, "compaction": compacted,
        "worker_cpu_s": worker_cpu, "not_serving_s": prober.not_serving_s(), "probes": len(prober.probes),
        "peak_server_rss_mib": prober.peak_rss / 2**20 if prober.peak_rss else None,
    }


def warm_up() -> None:
    """Pay one-off costs before the first case: module imports, the Variable API (snapshots, import memory)."""
    from airflow_milvus.imports import jobs as import_jobs
    from airflow_milvus.lifecycle import snapshots
    from airflow_milvus.operators import bulk_import, collection, index, ingest  # noqa: F401

    snapshots.SnapshotStore(CONN_ID).load(NAME)
    import_jobs.load(CONN_ID, NAME, None)


def measure(uri: str, home: Path, *, rows: int, dim: int, repeats: int, server_pid: int | None, ensure_up=lambda: None) -> dict:
    warm_up()
    data.make_collection(uri, NAME, rows=0, dim=dim, index=None, load=False)
    files, export_s, export_cpu_s = export_files(uri, home / "exports", rows=rows, dim=dim)
    log(f"bulk_reload: exported {rows} rows to {len(files)} Parquet file(s) in {export_s:.1f}s ({export_cpu_s:.1f}s CPU)")
    runs, interrupted = [], False
    try:
        for rep in range(repeats):
            order = CASES[rep % len(CASES):] + CASES[: rep % len(CASES)]
            for path, strategy in order:
                ensure_up()
                log(f"bulk_reload: round {rep + 1}/{repeats}: setting up {rows} rows, HNSW, loaded")
                data.make_collection(uri, NAME, rows=rows, dim=dim)
                log(f"bulk_reload: {path}, index {STRATEGIES[strategy]}")
                result = run_case(uri, path, strategy, rows=rows, dim=dim, files=files, server_pid=server_pid() if callable(server_pid) else server_pid)
                log(f"bulk_reload: query-ready {result['query_ready_s']:.1f}s, worker CPU {result['worker_cpu_s']:.1f}s, "
                    f"searches failing {result['not_serving_s']:.1f}s, phases {result['phases_s']}"
                    + (f", compaction {describe_compaction(result['compaction'])}" if result["compaction"] else ""))
                runs.append({**result, "round": rep + 1})
    except KeyboardInterrupt:  # keep the finished cases (SIGTERM too, see main)
        log(f"bulk_reload: interrupted after {len(runs)} case(s)")
        interrupted = True
    summary = []
    for path, strategy in CASES:
        mine = [r for r in runs if r["path"] == path and r["index"] == STRATEGIES[strategy]]
        if not mine:
            continue
        summary.append({
            "path": path, "index": mine[0]["index"],
            "phases_s": {p: median([r["phases_s"][p] for r in mine]) for p in mine[0]["phases_s"]},
            **{k: median([r[k] for r in mine if r[k] is not None]) for k in ("query_ready_s", "worker_cpu_s", "not_serving_s", "peak_server_rss_mib")},
            "samples": len(mine),
            "compactions": [describe_compaction(r["compaction"]) for r in mine if r.get("compaction")],
        })
    return {"rows": rows, "dim": dim, "repeats": repeats, "interrupted": interrupted, "files": len(files), "export_s": export_s,
            "export_cpu_s": export_cpu_s, "runs": runs, "summary": summary}


def render(r: dict) -> str:
    out = [
        f"N = {r['rows']} rows, dim {r['dim']}, HNSW (M 16, efConstruction 64), Milvus 2.3.5 standalone; "
        f"{max((s['samples'] for s in r['summary']), default=0)} round(s), cases rotated; medians. Export for the import path (LocalBulkWriter, {r['files']} Parquet file(s)), once: "
        f"{r['export_s']:.1f} s, {r['export_cpu_s']:.1f} s CPU.",
        "",
        "| Reload | index strategy | phases (s) | query-ready (s) | worker CPU (s) | worker CPU incl. export (s) | searches failing (s) | peak server RSS (MiB) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in r["summary"]:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in s["phases_s"].items())
        export = s["worker_cpu_s"] + (r["export_cpu_s"] if s["path"] == "import" else 0)
        rss = "n/a" if s["peak_server_rss_mib"] != s["peak_server_rss_mib"] else f"{s['peak_server_rss_mib']:.0f}"
        out.append(f"| {s['path']} | {s['index']} | {phases} | {s['query_ready_s']:.1f} | {s['worker_cpu_s']:.1f} | {export:.1f} "
                   f"| {s['not_serving_s']:.1f} | {rss} |")
    compactions = [f"- {s['path']}, {s['index']}: {'; '.join(s['compactions'])}" for s in r["summary"] if s.get("compactions")]
    if compactions:
        out += ["", "What the compaction before the rebuild did, per round:", "", *compactions]
    return "\n".join(out) + "\n"


def describe_compaction(report: dict) -> str:
    """One line of a compact operator's result: what Milvus compacted, or why nothing."""
    if not report["compacted"]:
        return f"nothing compacted ({report.get('note') or report['state']})"
    return (f"{report['plans']} plan(s), segments {report['segments_before']} -> {report['segments_after']}, "
            f"rows {report['rows_before']} -> {report['rows_after']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bulk_reload", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--repeats", type=int, default=1, help="rounds of the six cases")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    args = p.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="airflow-milvus-bulk-"))
    setup_airflow_home(home)  # before anything imports airflow
    import logging

    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # the prober's failing searches are expected
    from tests.milvus_server import MilvusServer

    server = MilvusServer(home / "milvus")
    server.start()
    set_milvus_conn(CONN_ID, server.uri)
    started = time.strftime("%Y-%m-%d %H:%M %Z")

    def ensure_up():  # a 2.3.5 standalone can exit when its etcd session lapses under load (see run.py)
        if server.proc is None or server.proc.poll() is not None:
            log("bulk_reload: the Milvus server has exited; restarting it on the same data")
            server.start()

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        result = measure(server.uri, home, rows=args.rows, dim=args.dim, repeats=args.repeats, server_pid=lambda: server.proc.pid,
                         ensure_up=ensure_up)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    result["meta"] = {"started": started, "command": "python -m benchmarks.bulk_reload " + " ".join(argv or sys.argv[1:]),
                      "cpus": os.cpu_count(), "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bulk_reload.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    text = render(result)
    (args.out / "bulk_reload.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
