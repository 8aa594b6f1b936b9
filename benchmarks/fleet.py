"""A fleet reindex: one serial glob task per step against one mapped task per collection.

``python -m benchmarks.fleet --collections 50 --rounds 2`` from the repository root (about 15
minutes on 2 cores). Results go to benchmarks/results/fleet.json and .md.

One real Milvus 2.3.5 server and one real Airflow deployment with CeleryExecutor and two
workers (``--slots`` task slots each) run both DAGs, alternately, ``--rounds`` times:

- serial: ``MilvusDropIndexOperator(collection_name="fleet_*")`` drops every index in one
  task, one ``@task`` reloads every collection in turn through the hook, and one
  ``MilvusCreateIndexOperator(index_specs=drop.output, load=True)`` rebuilds them all;
- mapped: ``MilvusListCollectionsOperator`` lists them, then a mapped task group runs the same
  operators per collection (drop, reload with ``MilvusIngestOperator``, rebuild and load), as
  example_dags/milvus_fleet_reindex.py does without its recall check.

Before each run (not timed), every collection is reset to N rows, HNSW, loaded. Wall time is
from the trigger to the run's end as the REST API reports it; the server's peak RSS (the
milvus-server process group) is sampled every 0.5 s during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import BENCH, REPO, log, median

DIM = 32
INDEX = {"index_type": "HNSW", "metric_type": "L2", "params": {"M": 16, "efConstruction": 64}}

SERIAL_DAG = '''
import pendulum
from airflow.sdk import DAG, Param, task
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator
from benchmark_rows import rows

with DAG("fleet_serial", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         params={"pattern": Param("fleet_*", type="string"), "rows": Param(500, type="integer")}):
    drop = MilvusDropIndexOperator(task_id="drop_indexes", collection_name="{{ params.pattern }}", drop_all=True)

    @task
    def reload(params=None):
        with MilvusHook() as hook:
            for name in hook.match_collections(params["pattern"]):
                batch = list(rows(name, params["rows"]))
                for start in range(0, len(batch), 500):  # the mapped reload's batch size
                    hook.write_rows(name, batch[start:start + 500], mode="upsert")
                hook.flush(name)

    rebuild = MilvusCreateIndexOperator(task_id="rebuild_indexes", index_specs=drop.output, load=True, poll_interval=1)
    drop >> reload() >> rebuild
'''

MAPPED_DAG = '''
import pendulum
from airflow.sdk import DAG, Param, task_group
from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator
from airflow_milvus.operators.ingest import MilvusIngestOperator
from airflow_milvus.operators.listing import MilvusListCollectionsOperator
from benchmark_rows import rows


def tenant_rows(params, task):
    return rows(task.collection_name, params["rows"])


with DAG("fleet_mapped", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         params={"pattern": Param("fleet_*", type="string"), "rows": Param(500, type="integer")}):
    names = MilvusListCollectionsOperator(task_id="list", collection_name="{{ params.pattern }}")

    @task_group
    def per_collection(collection):
        drop = MilvusDropIndexOperator(task_id="drop_indexes", collection_name=collection, drop_all=True)
        reload = MilvusIngestOperator(task_id="reload", collection_name=collection, data=tenant_rows, batch_size=500, mode="upsert")
        rebuild = MilvusCreateIndexOperator(task_id="rebuild_indexes", index_specs=drop.output, load=True, poll_interval=1)
        drop >> reload >> rebuild

    per_collection.expand(collection=names.output)
'''

ROWS_MODULE = f'''
import random, zlib

def rows(name, count):
    seed = zlib.crc32(name.encode())
    for i in range(int(count)):
        rng = random.Random(seed + i)
        yield {{"id": i, "embedding": [rng.random() for _ in range({DIM})]}}
'''


def reset(uri: str, names: list[str], rows: int) -> None:
    """Every collection: N rows, its HNSW index built, loaded (as before a scheduled reindex)."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri)
    try:
        for name in names:
            if client.has_collection(name):
                client.drop_collection(name)
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
            client.create_collection(name, schema=schema)
            rng = random.Random(name)
            client.insert(name, [{"id": i, "embedding": [rng.random() for _ in range(DIM)]} for i in range(rows)])
            client.flush(name)
            params = client.prepare_index_params()
            params.add_index("embedding", index_name="embedding", **INDEX)
            client.create_index(name, params)
            client.load_collection(name)
    finally:
        client.close()


def _group_rss(pgid: int) -> int:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            with open(f"/proc/{entry}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total


class PeakRss(threading.Thread):
    def __init__(self, pgid: int) -> None:
        super().__init__(daemon=True)
        self.pgid, self.peak, self._done = pgid, 0, threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.5):
            self.peak = max(self.peak, _group_rss(self.pgid))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def run_once(airflow, server, dag_id: str, names: list[str], rows: int, prefix: str) -> dict:
    reset(server.uri, names, rows)
    rss = PeakRss(server.pgid)
    rss.start()
    started = time.monotonic()
    run = airflow.run_dag(dag_id, {"pattern": f"{prefix}*", "rows": rows}, timeout=3600)
    seconds = time.monotonic() - started
    peak = rss.stop()
    assert run.state == "success", airflow.explain(run)
    tis = airflow.mapped_task_instances(dag_id, run.run_id)
    hosts = sorted({ti["hostname"] for ti in tis.values()})
    return {"dag": dag_id, "seconds": seconds, "per_minute": len(names) / seconds * 60, "peak_server_rss_mib": peak / 2**20,
            "task_instances": len(tis), "workers": hosts}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", type=int, default=50)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--slots", type=int, default=2, help="task slots per Celery worker")
    parser.add_argument("--max-load", type=float, default=1.5, help="refuse to start above this 1-minute load average")
    args = parser.parse_args()
    if os.getloadavg()[0] >= args.max_load:
        raise SystemExit(f"load average {os.getloadavg()[0]:.2f} >= {args.max_load}: numbers taken now would be noise. Stop what runs, then retry.")

    from tests.airflow_deployment import AirflowDeployment
    from tests.milvus_server import private_server

    load_before = os.getloadavg()[0]
    log(f"load average before: {load_before:.2f}")
    prefix = "fleet_"
    names = [f"{prefix}{n:03d}" for n in range(args.collections)]
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    libs = work / "lib"
    libs.mkdir()
    (libs / "benchmark_rows.py").write_text(ROWS_MODULE)
    env = {"AIRFLOW_CONN_MILVUS_DEFAULT": "", "PYTHONPATH": os.pathsep.join([str(REPO), str(libs)])}
    results = []
    with private_server(work / "milvus") as server:
        env["AIRFLOW_CONN_MILVUS_DEFAULT"] = json.dumps({"conn_type": "milvus", "extra": {"uri": server.uri}})
        with AirflowDeployment(work / "airflow", env=env, executor="CeleryExecutor", celery_workers=2,
                               worker_concurrency=args.slots, pools={}, dag_ids=(),
                               extra_dags={"fleet_serial.py": SERIAL_DAG, "fleet_mapped.py": MAPPED_DAG}) as airflow:  # fmt: skip
            for round_ in range(args.rounds):
                order = ("fleet_serial", "fleet_mapped") if round_ % 2 == 0 else ("fleet_mapped", "fleet_serial")
                for dag_id in order:
                    result = run_once(airflow, server, dag_id, names, args.rows, prefix)
                    result["round"] = round_ + 1
                    log(f"round {round_ + 1} {dag_id}: {result['seconds']:.0f}s, {result['per_minute']:.1f}/min, "
                        f"peak server RSS {result['peak_server_rss_mib']:.0f} MiB, on {result['workers']}")
                    results.append(result)
    report = {"collections": args.collections, "rows": args.rows, "dim": DIM, "rounds": args.rounds, "slots_per_worker": args.slots,
              "workers": 2, "load_average_before": load_before, "runs": results}  # fmt: skip
    out = BENCH / "results"
    (out / "fleet.json").write_text(json.dumps(report, indent=2))
    (out / "fleet.md").write_text(table(report))
    print(table(report))


def table(report: dict) -> str:
    lines = [
        f"N = {report['collections']} collections × {report['rows']} rows × dim {report['dim']}, HNSW; Milvus 2.3.5; "
        f"CeleryExecutor, {report['workers']} workers × {report['slots_per_worker']} slots; {report['rounds']} rounds, "
        f"alternating order; load average {report['load_average_before']:.2f} before the run.",
        "",
        "| DAG | task instances | wall time (median, s) | collections per minute | peak server RSS (MiB) | rounds (s) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for dag_id in ("fleet_serial", "fleet_mapped"):
        mine = [r for r in report["runs"] if r["dag"] == dag_id]
        lines.append(
            f"| {dag_id.removeprefix('fleet_')} | {mine[0]['task_instances']} | {median([r['seconds'] for r in mine]):.0f} | "
            f"{median([r['per_minute'] for r in mine]):.1f} | {median([r['peak_server_rss_mib'] for r in mine]):.0f} | "
            f"{', '.join(format(r['seconds'], '.0f') for r in mine)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
