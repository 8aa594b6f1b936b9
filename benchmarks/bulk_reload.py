"""Reload by row ingest against reload by import job, each with the index kept, dropped first, or
dropped first with a compaction before the rebuild; on local storage or object storage.

``python -m benchmarks.bulk_reload --storage local --rows 100000 --rounds 2`` from the repository
root. Results accumulate in benchmarks/results/bulk_reload-<storage>-<rows>.json (every case, as
soon as it ends; ``--resume`` keeps what is there and runs each case until ``--rounds`` rounds of it are
stored, so a long matrix can run in parts) and
benchmarks/results/bulk_reload.md (every stored result, one table per storage and size).

Every case starts from the same state, made afresh and not timed: N rows, HNSW, loaded,
searched by a prober every 0.5 s (reindex.Prober, which also samples the Milvus server's RSS).
Then the benchmark waits until the 1-minute load average is under ``--max-load`` (1.5) and
records it. The reload replaces the N rows with the same N rows, through the provider's
operators run in this process, one after another as a DAG's tasks would:

- ingest: ``MilvusIngestOperator`` (upsert, batches of 1 000, rows generated on the fly);
- import: delete the N rows by primary key, then ``MilvusBulkImportOperator`` on Parquet files
  written once beforehand (``LocalBulkWriter``, or ``RemoteBulkWriter`` into Milvus's bucket; the
  export is timed and its CPU counted apart);
- index dropped: ``MilvusDropIndexOperator`` first (it releases the collection), and
  ``MilvusCreateIndexOperator(index_specs=drop.output, load=True)`` after the reload;
- index kept: after the reload, wait until the index has no pending rows;
- index dropped and compacted: as dropped, with ``MilvusCompactOperator`` before the rebuild.
  Milvus 2.3 compacts only segments whose vector index is built
  (docs/operators.md#milvuscompactoperator), so the import path compacts right after deleting
  the old rows, while their index stands, then drops it and imports; the ingest path, whose
  upsert deletes the old rows after the drop, compacts between the reload and the rebuild.
  What each compaction did is kept with the case.

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
from benchmarks.bulk_reload_report import (
    CASES,
    STRATEGIES,
    render_all,
    result_path,
    update_readme,
)
from benchmarks.bulk_reload_stack import Stack
from benchmarks.common import BENCH, log, setup_airflow_home

CONN_ID = "bench_milvus"
NAME = "bench_reload"
SEARCH = {"params": {"ef": 1024}}


def _probe(c, dim: int) -> tuple[int, int | None]:
    """The row count (strong consistency) and the id of row 7's nearest neighbour: 7 when it is served.

    The search is filtered to row 7: on one HNSW graph of 1M uniform random rows, ef 1024 missed
    it (its nearest hit was row 92 860), and a probe must tell served from not, not measure recall."""
    count = c.query(NAME, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    hits = c.search(NAME, data=[data.vector(7, dim)], filter="id == 7", limit=1, anns_field="embedding", search_params=SEARCH)
    return count, int(hits[0][0]["id"]) if hits[0] else None


def _ready(hook, rows: int, dim: int) -> bool:
    try:
        return hook.call("readiness", lambda c: _probe(c, dim)) == (rows, 7)
    except Exception:  # noqa: BLE001 - any failure means not ready yet
        return False


def run_case(stack: Stack, path: str, strategy: str, *, rows: int, dim: int, files: list[str]) -> dict:
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

    prober = Prober(stack.uri, NAME, dim, stack.server_pid())
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
    # Milvus 2.3 compacts only segments whose index is built. An import reload deletes the old
    # rows before it imports, so it can compact them away while their index still stands, then
    # drop it; an upsert deletes them as it goes, after the drop, so it compacts before the rebuild.
    compact_early = strategy == "compacted" and path == "import"

    def compact():
        return step("compact", lambda: MilvusCompactOperator(task_id="compact", milvus_conn_id=CONN_ID, collection_name=NAME,
                                                             poll_interval=0.5, timeout=3600).execute({}))

    def delete():
        for s in range(0, rows, 10_000):
            ids = list(range(s, min(s + 10_000, rows)))
            hook.call("delete", lambda c, ids=ids: c.delete(NAME, ids=ids, timeout=120))

    def drop_indexes():
        return step("drop", lambda: MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN_ID, collection_name=NAME, drop_all=True).execute({}))

    start, cpu = time.time(), time.thread_time()
    try:
        snapshot = None
        if drop and not compact_early:
            snapshot = drop_indexes()
        if path == "ingest":
            rows_gen = lambda: ({"id": i, "embedding": data.vector(i, dim), "title": f"book {i}"} for i in range(rows))
            step("reload", lambda: MilvusIngestOperator(task_id="reload", milvus_conn_id=CONN_ID, collection_name=NAME,
                                                        data=rows_gen, batch_size=1000, mode="upsert").execute({}))
        else:
            step("delete", delete)
            if compact_early:
                compacted = compact()
                snapshot = drop_indexes()
            step("reload", lambda: MilvusBulkImportOperator(task_id="reload", milvus_conn_id=CONN_ID, collection_name=NAME,
                                                            files=files, poll_interval=0.5, timeout=3600,
                                                            **stack.import_kwargs()).execute({}))
        if strategy == "compacted" and not compact_early:
            compacted = compact()
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


def check_start(uri: str, *, rows: int, dim: int) -> list[int]:
    """Every case starts from N rows, the HNSW index built over all of them, loaded, answering.

    Returns the rows of each persisted segment, largest first, recorded with the case."""
    with data.client(uri) as c:
        c.load_collection(NAME, timeout=1800)  # after a restore the server loads it again; waits
        desc = c.describe_index(NAME, "embedding")
        count, first = _probe(c, dim)
        segments = sorted((int(s.num_rows) for s in c.list_persistent_segments(NAME)), reverse=True)
    if not (data.build_done(desc) and int(desc.get("indexed_rows") or 0) == rows and (count, first) == (rows, 7)):
        raise RuntimeError(f"start state differs: index {desc}, {count} rows, first hit {first}")
    return segments


def wait_quiet(max_load: float, limit: float = 900) -> float:
    """Wait until the 1-minute load average is under ``max_load`` (setting a case up raises it)."""
    deadline = time.time() + limit
    while (load := os.getloadavg()[0]) >= max_load:
        if time.time() > deadline:
            raise RuntimeError(f"load average still {load:.2f} after {limit:.0f} s: something else is running; stop it and --resume")
        time.sleep(5)
    return load


def measure(stack: Stack, store: Path, *, rows: int, dim: int, rounds: int, max_load: float, only=None) -> dict:
    """Run each case until ``rounds`` rounds of it are stored; every finished case is written to ``store`` at once."""
    warm_up()
    import logging

    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # the prober's failing searches are expected; Airflow's setup resets it
    previous = json.loads(store.read_text()) if store.exists() else None
    data.make_collection(stack.uri, NAME, rows=0, dim=dim, index=None, load=False)
    files, export_s, export_cpu_s = stack.export(NAME, rows=rows, dim=dim)
    log(f"bulk_reload: exported {rows} rows to {len(files)} Parquet file(s) in {export_s:.1f}s ({export_cpu_s:.1f}s CPU)")
    writer = "LocalBulkWriter" if stack.storage == "local" else "RemoteBulkWriter into Milvus's bucket"
    result = previous or {"storage": stack.storage, "rows": rows, "dim": dim, "files": len(files), "writer": writer,
                          "export_s": export_s, "export_cpu_s": export_cpu_s, "runs": [], "sessions": []}
    result["sessions"].append(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    cases = [c for c in CASES if not only or f"{c[0]}:{c[1]}" in only]

    def stored(path, strategy):  # rounds count per case, so a case resumed alone is not labelled by the others
        return sum(r["path"] == path and r["index"] == STRATEGIES[strategy] for r in result["runs"])

    snapshot = False
    for rep in range(rounds):
        for path, strategy in cases[rep % len(cases):] + cases[: rep % len(cases)]:
            if stored(path, strategy) >= rounds:
                continue
            stack.ensure_up()
            if snapshot:
                log(f"bulk_reload: restoring {rows} rows, HNSW, loaded")
                stack.restore()
            else:
                log(f"bulk_reload: setting up {rows} rows, HNSW, loaded; kept for the other cases")
                data.make_collection(stack.uri, NAME, rows=rows, dim=dim)
                stack.snapshot()
                snapshot = True
            segments = check_start(stack.uri, rows=rows, dim=dim)
            load = wait_quiet(max_load)
            round_no = stored(path, strategy) + 1
            log(f"bulk_reload: round {round_no}: {stack.storage}, {path}, index {STRATEGIES[strategy]} (load average {load:.2f})")
            case = run_case(stack, path, strategy, rows=rows, dim=dim, files=files)
            log(f"bulk_reload: query-ready {case['query_ready_s']:.1f}s, worker CPU {case['worker_cpu_s']:.1f}s, "
                f"searches failing {case['not_serving_s']:.1f}s, phases {case['phases_s']}")
            result["runs"].append({**case, "round": round_no, "load_before": load, "start_segments": segments})
            store.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bulk_reload", description=__doc__.splitlines()[0])
    p.add_argument("--storage", choices=("local", "s3"), default="local")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2, help="run each case until this many rounds of it are stored")
    p.add_argument("--resume", action="store_true", help="keep the stored rounds and add to them instead of starting over")
    p.add_argument("--only", nargs="*", help="cases as path:strategy, e.g. import:dropped (default: all six)")
    p.add_argument("--max-load", type=float, default=1.5, help="wait before each case until the 1-minute load average is under this")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    args = p.parse_args(argv)
    if os.getloadavg()[0] >= args.max_load:
        raise SystemExit(f"load average {os.getloadavg()[0]:.2f} >= {args.max_load}: numbers taken now would be noise. Stop what runs, then retry.")
    args.out.mkdir(parents=True, exist_ok=True)
    store = result_path(args.out, args.storage, args.rows)
    if store.exists() and not args.resume:
        store.unlink()
    home = Path(tempfile.mkdtemp(prefix="airflow-milvus-bulk-"))
    setup_airflow_home(home)  # before anything imports airflow

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    stack = Stack(home, args.storage, CONN_ID)
    try:
        measure(stack, store, rows=args.rows, dim=args.dim, rounds=args.rounds, max_load=args.max_load, only=args.only)
    except KeyboardInterrupt:  # SIGTERM too: the finished cases are stored already
        log("bulk_reload: interrupted")
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)
    text = render_all(args.out)
    (args.out / "bulk_reload.md").write_text(text)
    if args.out == BENCH / "results":
        update_readme(BENCH / "README.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
