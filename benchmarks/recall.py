"""Cost of the recall check as N grows: ``python -m benchmarks.recall`` from the repository root.

For each N (default 100 000, 500 000 and 1 000 000 rows, dim 128) it builds a collection with an
IVF_FLAT index on its own Milvus 2.3.5 server, waits until the build has no pending rows (the
check refuses to measure before that), then runs, each in a fresh interpreter:

- ``floor``: the imports and connection a task needs, and a count(*) (the worker's baseline);
- ``check``: ``MilvusRecallCheckOperator`` (100 queries, top 10, nprobe 16), ground truth
  streamed page by page (``MilvusHook.iterate_vectors``);
- ``naive``: the same ground truth with every vector held at once (one numpy array filled
  from the same pages, one matrix product), for the same queries: what the streaming avoids.

Peak memory is each child's own high-water mark (VmHWM of /proc/self/status, reset at
exec; ``ru_maxrss`` would start from the parent's size at fork). Results go to
benchmarks/results/recall.json and recall.md. Not asserted anywhere: measured by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import BENCH, log, set_milvus_conn, setup_airflow_home

CONN_ID = "bench_recall"
FIELD = "embedding"
SEARCH = {"params": {"nprobe": 16}}
SAMPLE, TOP_K = 100, 10


def _peak_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------- children
def child(mode: str, collection: str, query_ids: list[int]) -> dict:
    """One measurement in this (fresh) interpreter; prints JSON."""
    started = time.perf_counter()
    import numpy  # noqa: F401  (in the floor too: every mode needs it)

    from airflow_milvus.hooks.milvus import MilvusHook
    from airflow_milvus.operators.quality import MilvusRecallCheckOperator

    out: dict = {"mode": mode}
    with MilvusHook(CONN_ID) as hook:
        out["rows"] = hook.count_rows(collection)
        if mode == "naive":
            out.update(_naive(hook, collection, query_ids))
    if mode in ("pass_hook", "pass_iterator"):
        out.update(_pass(mode, collection, query_ids))
    if mode == "check":
        result = MilvusRecallCheckOperator(
            task_id="recall", milvus_conn_id=CONN_ID, collection_name=collection, top_k=TOP_K,
            sample_size=SAMPLE, search_params=SEARCH, max_rows=10**9,
        ).execute({})  # fmt: skip
        keys = ("recall", "recall_stderr", "ndcg", "recall_ties", "latency_ms", "qps", "ground_truth_seconds", "seconds", "query_ids")
        out.update({k: result[k] for k in keys})
    out["wall_seconds"] = time.perf_counter() - started
    out["peak_mib"] = _peak_mib()
    return out


def _naive(hook, collection: str, query_ids: list[int]) -> dict:
    """Exact top-k with the whole collection in memory: fetch everything, then one product."""
    import numpy as np

    started = time.perf_counter()
    rows = hook.count_rows(collection)
    ids = np.empty(rows, dtype=np.int64)
    matrix = None
    filled = 0
    # Each page goes straight into one preallocated float32 array: the least memory without streaming.
    for page_ids, block in hook.iterate_vectors(collection, primary="id", field=FIELD):
        if matrix is None:
            matrix = np.empty((rows, block.shape[1]), dtype=np.float32)
        matrix[filled : filled + len(block)] = block
        ids[filled : filled + len(block)] = page_ids
        filled += len(block)
    position = {int(pk): i for i, pk in enumerate(ids)}
    queries = matrix[[position[q] for q in query_ids]]
    keys = (queries**2).sum(1)[:, None] + (matrix**2).sum(1)[None, :] - 2.0 * (queries @ matrix.T)
    np.argpartition(keys, TOP_K - 1, axis=1)[:, :TOP_K]
    return {"ground_truth_seconds": time.perf_counter() - started}


def _pass(mode: str, collection: str, query_ids: list[int]) -> dict:
    """One ground-truth pass with the same streaming top-k, two transports: the hook's pages
    (``iterate_vectors``: primary-key pages decoded column-wise into numpy) or pymilvus's public
    ``query_iterator`` (a dict per row; what the check streamed before), batch 2000 as it did."""
    import numpy as np
    from pymilvus import MilvusClient

    from airflow_milvus.hooks.milvus import MilvusHook

    with MilvusHook(CONN_ID) as hook:
        got = hook.call("get queries", lambda c: c.get(collection, ids=query_ids, output_fields=[FIELD]))
        queries = np.array([row[FIELD] for row in sorted(got, key=lambda r: query_ids.index(r["id"]))], dtype=np.float32)
        q_sq = (queries.astype(np.float64) ** 2).sum(1)[:, None]
        best = np.full((len(queries), TOP_K), np.inf)

        def merge(block: np.ndarray) -> None:
            nonlocal best
            keys = q_sq + (block.astype(np.float64) ** 2).sum(1)[None, :] - 2.0 * (queries.astype(np.float64) @ block.T.astype(np.float64))
            both = np.concatenate([best, keys], axis=1)
            best = np.sort(np.partition(both, TOP_K - 1, axis=1)[:, :TOP_K], axis=1)

        started = time.perf_counter()
        rows = 0
        if mode == "pass_hook":
            for _, block in hook.iterate_vectors(collection, primary="id", field=FIELD):
                merge(block)
                rows += len(block)
        else:
            client = MilvusClient(hook.uri)
            it = client.query_iterator(collection, batch_size=2000, output_fields=["id", FIELD])
            while batch := it.next():
                merge(np.array([row[FIELD] for row in batch], dtype=np.float32))
                rows += len(batch)
            it.close()
            client.close()
    return {"pass_seconds": time.perf_counter() - started, "pass_rows": rows, "kth_sum": float(best[:, -1].sum())}


# ---------------------------------------------------------------------- parent
def build(uri: str, name: str, rows: int, dim: int) -> float:
    """Collection with ``rows`` random vectors and a finished, loaded IVF_FLAT index."""
    import numpy as np
    from pymilvus import DataType, MilvusClient

    started = time.perf_counter()
    c = MilvusClient(uri)
    try:
        if c.has_collection(name):
            c.drop_collection(name)
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field(FIELD, DataType.FLOAT_VECTOR, dim=dim)
        c.create_collection(name, schema=schema)
        rng = np.random.default_rng(rows)
        for start in range(0, rows, 5000):
            block = rng.normal(size=(min(5000, rows - start), dim)).astype(np.float32)
            c.insert(name, [{"id": start + i, FIELD: v.tolist()} for i, v in enumerate(block)])
        c.flush(name)
        params = c.prepare_index_params()
        params.add_index(FIELD, index_name=FIELD, index_type="IVF_FLAT", metric_type="L2", params={"nlist": 1024})
        c.create_index(name, params)  # returns when the index is Finished, not when every row is indexed
        wait_until_indexed(name)
        c.load_collection(name)
    finally:
        c.close()
    from airflow_milvus.hooks.milvus import MilvusHook

    with MilvusHook(CONN_ID) as hook:
        for _ in hook.iterate_vectors(name, primary="id", field=FIELD):  # warm the server's caches: the first child would pay for them
            pass
    wait_until_indexed(name)  # a compaction after the load may have left new rows to index
    return time.perf_counter() - started


def wait_until_indexed(name: str, timeout: float = 7200.0) -> None:
    """Until the build has no pending rows: at 1 000 000 rows the index reported Finished with
    820 000 rows pending, and the check (rightly) refuses to measure a partly indexed collection."""
    from airflow_milvus.hooks.milvus import MilvusHook

    deadline = time.monotonic() + timeout
    with MilvusHook(CONN_ID) as hook:
        while True:
            status = hook.index_build_status(name, FIELD)
            if status["state"] == "Failed":
                raise RuntimeError(f"index build of {name} failed: {status['fail_reason']}")
            if status["state"] == "Finished" and not status["pending_index_rows"]:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"index build of {name} still pending after {timeout:.0f} s: {status}")
            log(f"{name}: index {status['state']}, {status['indexed_rows']}/{status['total_rows']} rows, {status['pending_index_rows']} pending")
            time.sleep(10)


def run_child(mode: str, name: str, query_ids: list[int]) -> dict:
    args = [sys.executable, "-m", "benchmarks.recall", "--child", mode, "--collection", name, "--query-ids", json.dumps(query_ids)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=BENCH.parent, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    lines = [
        "| N (dim) | ground truth, streamed | rows/s | whole check | peak RSS over floor: streamed | naive (all vectors in one float32 array) | naive ground truth | recall@10 (nprobe 16) | nDCG@10 | search p50 / p99, qps |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        check, naive, floor = r["check"], r["naive"], r["floor"]
        lines.append(
            f"| {r['rows']:,} ({r['dim']}) | {check['ground_truth_seconds']:.1f} s | {r['rows'] / check['ground_truth_seconds']:,.0f} "
            f"| {check['seconds']:.1f} s | {check['peak_mib'] - floor['peak_mib']:.0f} MiB "
            f"| {naive['peak_mib'] - floor['peak_mib']:.0f} MiB ({(naive['peak_mib'] - floor['peak_mib']) / max(1.0, check['peak_mib'] - floor['peak_mib']):.1f}×) "
            f"| {naive['ground_truth_seconds']:.1f} s ({naive['ground_truth_seconds'] / check['ground_truth_seconds']:.2f}×) "
            f"| {check['recall']:.3f} ± {check['recall_stderr']:.3f} | {check['ndcg']:.3f} "
            f"| {check['latency_ms']['p50']:.1f} / {check['latency_ms']['p99']:.1f} ms, {check['qps']:.0f} |"
        )  # fmt: skip
    floor = ", ".join(f"{r['floor']['peak_mib']:.0f}" for r in results)
    lines.append("")
    lines.append("| N | one pass, pymilvus query_iterator (before) | one pass, hook pages (now) | speed-up | peak RSS before / now |")
    lines.append("| ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        if "pass_hook" not in r:
            continue
        old = min(x["pass_seconds"] for x in r["pass_iterator"])
        new = min(x["pass_seconds"] for x in r["pass_hook"])
        sums = [x["kth_sum"] for x in r["pass_iterator"] + r["pass_hook"]]
        same = max(sums) - min(sums) <= 1e-6 * max(1.0, abs(max(sums)))
        lines.append(
            f"| {r['rows']:,} | {old:.1f} s ({r['rows'] / old:,.0f} rows/s) | {new:.1f} s ({r['rows'] / new:,.0f} rows/s) | {old / new:.1f}× "
            f"| {max(x['peak_mib'] for x in r['pass_iterator']):.0f} / {max(x['peak_mib'] for x in r['pass_hook']):.0f} MiB |"
            + ("" if same else " **the two found different neighbours** |")
        )  # fmt: skip
    lines.append("")
    lines.append("Best of 2 alternated rounds per transport, each in a fresh interpreter; the k-th exact distances of both agree unless marked.")
    lines.append("")
    lines.append(f"Floor (imports, connection, count(*)) peak RSS per N: {floor} MiB.")
    loads = ", ".join(f"{r['load']:.2f}" for r in results)
    lines.append(f"1-minute load average before each N's measurements: {loads}; one round per N for the check and the naive pass.")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recall", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 500_000, 1_000_000])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--child", choices=("floor", "check", "naive", "pass_hook", "pass_iterator"), help=argparse.SUPPRESS)
    p.add_argument("--collection", help=argparse.SUPPRESS)
    p.add_argument("--query-ids", default="[]", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.collection, json.loads(args.query_ids))))
        return 0

    home = Path(tempfile.mkdtemp(prefix="airflow-milvus-bench-recall-"))
    setup_airflow_home(home)
    from tests.milvus_server import MilvusServer

    server = MilvusServer(home / "milvus")
    log("starting a Milvus 2.3.5 standalone server")
    server.start()
    set_milvus_conn(CONN_ID, server.uri)
    results: list[dict] = []
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    try:
        for rows in args.rows:
            name = f"bench_recall_{rows}"
            log(f"N={rows}: inserting {rows} x {args.dim} and building IVF_FLAT")
            build_s = build(server.uri, name, rows, args.dim)
            quiet_until = time.monotonic() + 600
            while os.getloadavg()[0] >= 1.5 and time.monotonic() < quiet_until:  # the build's own load, decaying
                time.sleep(5)
            entry = {"rows": rows, "dim": args.dim, "build_seconds": build_s, "load": os.getloadavg()[0]}
            log(f"N={rows}: load average {entry['load']:.2f} before measuring")
            entry["floor"] = run_child("floor", name, [])
            log(f"N={rows}: check")
            entry["check"] = run_child("check", name, [])
            log(f"N={rows}: naive ground truth, {entry['check']['ground_truth_seconds']:.1f} s streamed")
            entry["naive"] = run_child("naive", name, entry["check"]["query_ids"])
            # The same pass over two transports, alternated twice: the speed-up of the new stream.
            for round_ in range(2):
                for mode in ("pass_iterator", "pass_hook"):
                    entry.setdefault(mode, []).append(run_child(mode, name, entry["check"]["query_ids"]))
            entry["check"].pop("query_ids")
            results.append(entry)
            _write(args.out, results, started)
            with_client_drop(server.uri, name)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(table(results))
    return 0


def with_client_drop(uri: str, name: str) -> None:
    from pymilvus import MilvusClient

    c = MilvusClient(uri)
    try:
        c.drop_collection(name)  # frees the server's memory before the next N
    finally:
        c.close()


def _write(out: Path, results: list[dict], started: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {"started": started, "cpus": os.cpu_count(), "search_params": SEARCH, "sample_size": SAMPLE, "top_k": TOP_K}
    (out / "recall.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    (out / "recall.md").write_text(f"Recall check cost, run {started} on {os.cpu_count()} CPUs\n\n{table(results)}\n")


if __name__ == "__main__":
    sys.exit(main())
