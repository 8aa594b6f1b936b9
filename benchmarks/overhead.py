"""Operator overhead: MilvusDropIndexOperator + MilvusCreateIndexOperator against the
minimal raw pymilvus sequence doing the same work, both run as two Airflow tasks.

Raw sequence: describe the index, release if loaded, drop; create (pymilvus waits for the
build), load. Both DAGs go through ``dag.test()`` in this process, so Airflow's per-task
cost is the same on both sides and the gRPC interceptor sees every call.
"""

from __future__ import annotations

import time

from benchmarks import data, rpc_count
from benchmarks.common import log, median

CONN = "bench_milvus"
POLL = 0.5  # the operator's poll interval, set to pymilvus's own sleep while it waits for a build

OPERATOR_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator

with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    drop = MilvusDropIndexOperator(task_id="drop", milvus_conn_id={conn!r}, collection_name={name!r})
    MilvusCreateIndexOperator(
        task_id="create", milvus_conn_id={conn!r}, index_specs=drop.output,
        restore_load_state=True, load=True, poll_interval={poll!r},
    )
"""

RAW_DAG = """
import pendulum
from airflow.sdk import DAG, task

URI, NAME, INDEX = {uri!r}, {name!r}, "embedding"

with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    @task
    def drop():
        from pymilvus import MilvusClient

        c = MilvusClient(URI)
        desc = c.describe_index(NAME, INDEX)
        if c.get_load_state(NAME)["state"].name == "Loaded":
            c.release_collection(NAME)
        c.drop_index(NAME, INDEX)
        c.close()
        return {{k: desc[k] for k in ("field_name", "index_type", "metric_type", "M", "efConstruction")}}

    @task
    def create(desc):
        from pymilvus import MilvusClient

        c = MilvusClient(URI)
        params = c.prepare_index_params()
        params.add_index(desc["field_name"], index_type=desc["index_type"], metric_type=desc["metric_type"],
                         index_name=INDEX, params={{"M": int(desc["M"]), "efConstruction": int(desc["efConstruction"])}})
        c.create_index(NAME, params)  # waits for the build
        c.load_collection(NAME)
        c.close()

    create(drop())
"""


def _check(uri: str, name: str) -> None:
    """The work was done: the index is back as it was and the collection is Loaded."""
    with data.client(uri) as c:
        desc = c.describe_index(name, "embedding")
        state = c.get_load_state(name)["state"].name
    if not (desc and desc["index_type"] == "HNSW" and data.build_done(desc) and state == "Loaded"):
        raise RuntimeError(f"After the run {name} is {state} with index {desc}")


def measure(uri: str, *, rows: int, dim: int, repeats: int) -> dict:
    from pymilvus.client.connection_manager import ConnectionManager

    from tests.dag_runner import run_dag, write_dag

    rpc_count.install()
    name = "bench_overhead"
    log(f"overhead: building {name} ({rows} rows, dim {dim})")
    data.make_collection(uri, name, rows=rows, dim=dim)
    dags = {
        "operators": write_dag(OPERATOR_DAG.format(conn=CONN, name=name, poll=POLL), "bench_overhead_operators"),
        "raw pymilvus": write_dag(RAW_DAG.format(uri=uri, name=name), "bench_overhead_raw"),
    }
    samples: dict[str, list[dict]] = {k: [] for k in dags}
    order = list(dags)
    for rep in range(repeats + 1):  # round 0 warms imports and caches, unmeasured
        for kind in order if rep % 2 else reversed(order):
            # Each side opens its connection afresh, as a new task process would.
            ConnectionManager.get_instance().close_all()
            rpc_count.reset()
            start = time.perf_counter()
            dag_run, tis = run_dag(dags[kind])
            wall = time.perf_counter() - start
            rpcs = rpc_count.snapshot()
            if dag_run.state != "success":
                raise RuntimeError(f"{kind} DAG ended {dag_run.state}: { {t: ti.state for t, ti in tis.items()} }")
            _check(uri, name)
            task_s = sum((ti.end_date - ti.start_date).total_seconds() for ti in tis.values())
            if rep:
                samples[kind].append({"dag_wall_s": wall, "task_s": task_s, "rpcs": rpcs})
                log(f"overhead: {kind} round {rep}: tasks {task_s:.2f}s, DAG {wall:.2f}s")
    return _summarise(samples, rows=rows, dim=dim)


def _summarise(samples: dict[str, list[dict]], **setup) -> dict:
    out: dict = {"setup": setup, "poll_interval_s": POLL, "sides": {}}
    for kind, runs in samples.items():
        last = runs[-1]["rpcs"]
        # Connection setup is counted apart: in one process pymilvus shares a channel per
        # address between clients, while in production every task is a new process.
        fixed = {m: n for m, n in last["fixed"].items() if m != "Connect"}
        out["sides"][kind] = {
            "task_s": median([r["task_s"] for r in runs]),
            "dag_wall_s": median([r["dag_wall_s"] for r in runs]),
            "connects": last["fixed"].get("Connect", 0),
            "fixed_rpcs": fixed,
            "fixed_rpc_total": sum(fixed.values()),
            "fixed_rpc_sites": {k: n for k, n in last["sites"].items() if not k.startswith("Connect ")},
            "poll_rpcs_median": median([sum(r["rpcs"]["poll"].values()) for r in runs]),
            "runs": runs,
        }
    ops, raw = out["sides"]["operators"], out["sides"]["raw pymilvus"]
    out["task_ratio"] = ops["task_s"] / raw["task_s"]
    out["dag_wall_ratio"] = ops["dag_wall_s"] / raw["dag_wall_s"]
    methods = set(ops["fixed_rpcs"]) | set(raw["fixed_rpcs"])
    out["extra_rpcs"] = {
        m: ops["fixed_rpcs"].get(m, 0) - raw["fixed_rpcs"].get(m, 0)
        for m in sorted(methods)
        if ops["fixed_rpcs"].get(m, 0) != raw["fixed_rpcs"].get(m, 0)
    }
    return out
