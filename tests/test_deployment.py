"""The example reindex DAG where users run it: Airflow's components as separate processes.

The tests use throwaway deployments (tests/airflow_deployment.py: api-server, scheduler,
dag-processor, triggerer; LocalExecutor as ``airflow standalone`` picks, or CeleryExecutor with
Redis and two workers): their own where a setting is theirs, else the session's shared server
deployment (tests/server_deployment.py). They trigger ``milvus_reindex`` through the REST API
and poll it to its end state. Every task runs in its own process, so what one task leaves behind (the load
state, a Lite file lock) is what the next one finds.

- twice in a row on the Lite default (no ``milvus_default`` connection), stock and then, the
  scheduler restarted with it, with ``[operators] default_deferrable = True``; deferrable on
  the real server; on Lite,
  afterwards only the shared ``milvus-lite server`` holds the ``.db``; ``airflow milvus index
  list`` works while the DAG runs and afterwards;
- CeleryExecutor on the server, stock: both workers take tasks;
- faults (shared deployment): the triggerer is SIGKILLed and restarted during a deferred build
  wait; a task process running the drop or the rebuild is SIGKILLed and Airflow's retry
  converges.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.airflow_deployment import AirflowDeployment
from tests.conftest import conn_env_value
from tests.helpers import live_rows, load_state, make_collection
from tests.reliability import index_definitions
from tests.server_deployment import BUILD_WAIT_DAG_ID

pytestmark = pytest.mark.slow

REINDEX = "milvus_reindex"
ROWS = 200  # the DAG's reload size: small, the point is processes, not volume
# The index the example DAG's seed task builds, as the drop's snapshot must record it.
SEEDED = {"field_name": "embedding", "index_name": "embedding", "index_type": "HNSW", "metric_type": "L2",
          "params": {"M": 16, "efConstruction": 64}}
# The same, as the server describes it (build parameters flattened, as text).
SEEDED_DEFINITION = {**{k: v for k, v in SEEDED.items() if k != "params"}, **{k: str(v) for k, v in SEEDED["params"].items()}}


def server_env(uri: str, **extra: str) -> dict[str, str]:
    return {"AIRFLOW_CONN_MILVUS_DEFAULT": conn_env_value(uri), **extra}


def assert_clean_run(airflow: AirflowDeployment, run, tries: int = 1) -> None:
    assert run.state == "success", airflow.explain(run)
    assert {t: ti["try_number"] for t, ti in run.tasks.items()} == dict.fromkeys(run.tasks, tries), airflow.explain(run)


def drop_snapshot(airflow: AirflowDeployment, run_id: str) -> list[dict]:
    """The index specs the run's drop recorded (its XCom), progress keys left out."""
    entry = airflow.api("GET", f"/api/v2/dags/{REINDEX}/dagRuns/{run_id}/taskInstances/drop_indexes/xcomEntries/return_value")
    value = entry["value"]
    dropped = (json.loads(value) if isinstance(value, str) else value)["dropped"]
    keys = set(SEEDED)
    return [{k: v for k, v in spec.items() if k in keys} for spec in dropped]


def cli_index_list(airflow: AirflowDeployment, collection: str) -> subprocess.Popen:
    """``airflow milvus index list -c COLLECTION -o json`` started in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "airflow", "milvus", "index", "list", "-c", collection, "--output", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=airflow.env,
    )


def cli_result(proc: subprocess.Popen) -> list[dict]:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, f"airflow milvus index list exited {proc.returncode}:\n{out}\n{err}"
    return json.loads(out)


# ------------------------------------------------------------------ the Lite file lock
def flock_holders(path: Path) -> set[int]:
    """Pids holding a lock on ``path``, from /proc/locks (``N: FLOCK ADVISORY WRITE pid maj:min:inode ...``)."""
    st = path.stat()
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = [f for f in line.split() if f != "->"]  # "->" marks a blocked waiter
        if len(fields) > 5 and fields[5] == ident:
            holders.add(int(fields[4]))
    return holders


def open_files_under(pids: list[int], directory: Path) -> dict[int, list[str]]:
    """``{pid: [paths]}`` of the given processes' open files inside ``directory``."""
    found: dict[int, list[str]] = {}
    prefix = str(directory) + os.sep
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue  # exited meanwhile
        paths = [p for p in links if p.startswith(prefix) or p == str(directory)]
        if paths:
            found[pid] = paths
    return found


def assert_only_the_shared_server_holds(airflow: AirflowDeployment, db: Path) -> None:
    from airflow_milvus.hooks.lite_server import server_info

    info = server_info(str(db))
    assert info, f"no shared milvus-lite server recorded beside {db}"
    assert flock_holders(db / "LOCK") == {info["pid"]}, f"{db}/LOCK held by others than the server {info}"
    others = {pid: paths for pid, paths in open_files_under(airflow.leftover_pids(), db).items() if pid != info["pid"]}
    assert others == {}, f"processes other than the shared server {info['pid']} keep {db} open: {others}"


# ------------------------------------------------------------------ twice in a row, standalone
def reindex_twice(airflow: AirflowDeployment, collection_name: str, what: str) -> None:
    """Two runs of the example, the CLI listing the indexes during the second and after it."""
    conf = {"collection": collection_name, "rows": ROWS}
    first = airflow.run_dag(REINDEX, conf)
    assert_clean_run(airflow, first)
    run_id = airflow.trigger(REINDEX, conf)
    during = cli_index_list(airflow, collection_name)  # the CLI beside a running DAG
    second = airflow.wait_for_run(REINDEX, run_id)
    assert_clean_run(airflow, second)
    # The second drop found the seeded index: its snapshot must hold the build params too.
    assert drop_snapshot(airflow, run_id) == [SEEDED]
    seen = cli_result(during)
    assert all(s["field_name"] == "embedding" and s["index_type"] == "HNSW" for s in seen), seen
    after = cli_result(cli_index_list(airflow, collection_name))
    assert [(s["field_name"], s["index_type"], s["metric_type"]) for s in after] == [("embedding", "HNSW", "L2")], after
    print(f"\n{what}: runs took {first.seconds:.0f}s and {second.seconds:.0f}s")


def test_example_reindex_twice_under_standalone_on_lite_stock_then_deferrable(tmp_path, collection_name):
    """Stock first; then operators defer by default, rolled out as an operator would: the
    scheduler, which forks the task processes, restarted with the setting."""
    db = tmp_path / "airflow" / "milvus_lite.db"
    with AirflowDeployment(tmp_path / "airflow", env={"AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "False"}) as airflow:
        reindex_twice(airflow, f"{collection_name}_stock", "lite deferrable=False")
        assert_only_the_shared_server_holds(airflow, db)
        airflow.reconfigure("scheduler", AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="True")
        reindex_twice(airflow, f"{collection_name}_deferred", "lite deferrable=True")
        assert_only_the_shared_server_holds(airflow, db)


# A stock server deployment is the Celery test's (two runs, tasks on two workers); the shared
# server deployment (tests/server_deployment.py) defers by default.
def test_example_reindex_twice_under_standalone_on_the_server_deferrable(server_deployment, collection_name):
    reindex_twice(server_deployment, collection_name, "server deferrable=True")


# ------------------------------------------------------------------ Celery
FLEET = "milvus_fleet_reindex"


def test_celery_two_workers_share_the_reindex_and_a_fleet(milvus_server, tmp_path, collection_name):
    """Two runs of the example reindex, then the fleet example over five tenants (one broken),
    on two Celery workers of three slots each: one deployment for both, as it costs ~30 s of CPU."""
    conf = {"collection": collection_name, "rows": ROWS}
    with AirflowDeployment(tmp_path / "airflow", env=server_env(milvus_server.uri), executor="CeleryExecutor",
                           celery_workers=2, worker_concurrency=3, dag_ids=(REINDEX, FLEET)) as airflow:
        runs = [airflow.run_dag(REINDEX, conf) for _ in range(2)]
        for run in runs:
            assert_clean_run(airflow, run)
        hosts = [ti["hostname"] for run in runs for ti in run.tasks.values()]
        assert set(hosts) == {"worker-1", "worker-2"}, hosts
        fleet_on_celery(airflow, milvus_server.uri, f"{collection_name}_f")


def fleet_on_celery(airflow: AirflowDeployment, uri: str, prefix: str) -> None:
    from tests.test_fleet import GROUP, SEEDED, index_specs, make_tenant

    broken = f"{prefix}_bad"
    make_tenant(uri, broken, dim=8)  # sorts last: map index 4
    run_id = airflow.trigger(FLEET, {"pattern": f"{prefix}_*", "demo_tenants": 4, "rows": 200})
    run = airflow.wait_for_run(FLEET, run_id, timeout=600)
    tis = airflow.mapped_task_instances(FLEET, run_id)
    states = {key: ti["state"] for key, ti in tis.items()}
    assert run.state == "failed" and states[("summarize", -1)] == "failed", airflow.explain(run)
    for step in ("drop_indexes", "reload", "rebuild_indexes", "check_recall"):
        good = {states[(f"{GROUP}.{step}", i)] for i in range(4)}
        assert good == {"success"}, (step, states)
    assert states[(f"{GROUP}.reload", 4)] == "failed", states  # the broken tenant, alone
    assert states[(f"{GROUP}.rebuild_indexes", 4)] == states[(f"{GROUP}.check_recall", 4)] == "upstream_failed"

    group = [ti for (task, _), ti in tis.items() if task.startswith(GROUP) and ti["state"] != "upstream_failed"]
    workers = {ti["hostname"] for ti in group}
    assert workers == {"worker-1", "worker-2"}, workers  # the tenants spread over both workers
    for step in ("drop_indexes", "reload", "rebuild_indexes", "check_recall"):
        most = max_overlap([ti for ti in group if ti["task_id"] == f"{GROUP}.{step}"])
        assert most <= 4, (step, most)  # TENANTS_AT_ONCE, on six worker slots
    env = {"AIRFLOW_CONN_FLEET_CHECK": conn_env_value(uri)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        for n in range(4):
            assert index_specs(uri, f"{prefix}_{n:03d}") == [SEEDED]

        # The fix, then a retry of the failed map index alone: it completes from its own drop's snapshot.
        make_tenant(uri, broken, index=False)
        airflow.clear(FLEET, run_id, [(f"{GROUP}.reload", 4)])
        run = airflow.wait_for_run(FLEET, run_id, timeout=300)
        after = airflow.mapped_task_instances(FLEET, run_id)
        assert run.state == "success", airflow.explain(run)
        assert index_specs(uri, broken) == [SEEDED]
    assert {ti["state"] for ti in after.values()} == {"success"}, after
    ran_again = {key for key, ti in after.items() if ti["start_date"] != tis[key]["start_date"]}
    assert ran_again == {(f"{GROUP}.{s}", 4) for s in ("reload", "rebuild_indexes", "check_recall")} | {("summarize", -1)}, ran_again


def max_overlap(tis: list[dict]) -> int:
    """The most of these task instances that ran at the same moment."""
    edges = sorted([(ti["start_date"], 1) for ti in tis] + [(ti["end_date"], -1) for ti in tis], key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


# ------------------------------------------------------------------ faults
# A build that takes ~10-15 s on two idle cores, long enough to be caught deferred.
SLOW_ROWS, SLOW_DIM = 10_000, 64


def test_triggerer_killed_during_deferred_build_wait(server_deployment, milvus_server, collection_name):
    uri, dag_id, task_id = milvus_server.uri, BUILD_WAIT_DAG_ID, "build"
    make_collection(uri, collection_name, rows=SLOW_ROWS, dim=SLOW_DIM, indexes=())
    run_id = server_deployment.trigger(dag_id, {"collection": collection_name})
    ti = server_deployment.wait_for_task(dag_id, run_id, task_id, {"deferred", "success", "failed", "up_for_retry"})
    assert ti["state"] == "deferred", f"{task_id} never deferred: {ti['state']} (a build this fast proves nothing)"
    # Kill only once the triggerer runs the wait (the trigger log names the triggerer's job id).
    deadline = time.monotonic() + 120
    while not (ti.get("triggerer_job") and "starting" in server_deployment.trigger_logs(dag_id, run_id, task_id).get(ti["triggerer_job"]["id"], "")):
        server_deployment._check_alive()  # a dead triggerer fails here, with its log
        assert time.monotonic() < deadline and ti["state"] == "deferred", f"trigger never ran: {ti}"
        time.sleep(0.2)
        ti = server_deployment.task_instances(dag_id, run_id)[task_id]
    first = ti["triggerer_job"]["id"]
    server_deployment.kill_component("triggerer")
    try:
        # What proves the wait was cut is that the task is still deferred after the kill (the killed
        # triggerer fired nothing). The build itself may end in the meantime on a loaded machine,
        # and that changes nothing: the next triggerer must still resume the wait.
        time.sleep(3)  # with no triggerer, nothing can resume the task
        assert server_deployment.task_instances(dag_id, run_id)[task_id]["state"] == "deferred"
    finally:
        # The deployment is shared: a failure here must not leave it without a triggerer (a
        # rerun, and every later deferring test, would then wait for a trigger that never runs).
        server_deployment.start_component("triggerer")
    run = server_deployment.wait_for_run(dag_id, run_id, timeout=240)
    assert run.state == "success", server_deployment.explain(run)
    assert run.tasks[task_id]["try_number"] == 1, "the wait was retried, not resumed"
    fired = [job for job, log in server_deployment.trigger_logs(dag_id, run_id, task_id).items() if "Trigger fired event" in log]
    assert fired and first not in fired, f"the killed triggerer {first} fired it, or nobody did: {fired}"


@pytest.mark.parametrize("victim", ["drop_indexes", "rebuild_indexes"])
def test_killed_task_process_is_retried_to_the_same_index(victim, server_deployment, milvus_server, collection_name):
    uri, conf = milvus_server.uri, {"collection": collection_name, "rows": ROWS}
    if victim == "drop_indexes":  # a drop that releases a loaded, filled collection: a first run leaves one
        assert_clean_run(server_deployment, server_deployment.run_dag(REINDEX, conf))
    # Else the killed run is the first: its seed task creates the collection and the index its drop drops.
    run_id = server_deployment.trigger(REINDEX, conf)
    ti = server_deployment.wait_for_task(REINDEX, run_id, victim, {"running", "success", "failed", "up_for_retry"}, poll=0.1)
    assert ti["state"] == "running" and ti["pid"], f"{victim} was {ti['state']} before it could be killed"
    server_deployment.kill_task_process(ti)
    run = server_deployment.wait_for_run(REINDEX, run_id)
    assert run.state == "success", server_deployment.explain(run)
    assert run.tasks[victim]["try_number"] == 2, server_deployment.explain(run)
    assert index_definitions(uri, collection_name) == {SEEDED["index_name"]: SEEDED_DEFINITION}
    assert live_rows(uri, collection_name) == ROWS
    assert load_state(uri, collection_name) == "Loaded"
