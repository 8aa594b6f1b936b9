"""Two DAG runs drop and rebuild the same collection at the same moment, without a pool.

Each run is a real `airflow dags test` process; a file barrier makes both drops start
together. Both must finish, the collection must end with exactly the index it had (loaded,
no rows lost), and each run's drop result must still carry the index definition, either as
dropped or as pending_rebuild from the other run's snapshot.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.conftest import conn_env_value
from tests.dag_runner import dags_test_command, write_dag
from tests.helpers import VECTOR_INDEX, load_state, make_collection, row_count
from tests.reliability import index_definitions

pytestmark = [pytest.mark.server, pytest.mark.slow]  # two `airflow dags test` processes

DAG = """
import pathlib, time
import pendulum
from airflow.sdk import DAG, task
from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    @task
    def barrier():
        here = pathlib.Path(BARRIER)
        (here / DAG_ID).touch()
        deadline = time.monotonic() + 240
        while len(list(here.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    drop = MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name=COLLECTION, drop_all=True)
    create = MilvusCreateIndexOperator(task_id="create", milvus_conn_id=CONN, index_specs=drop.output, load=True, poll_interval=0.5)
    barrier() >> drop >> create
"""


def drop_results(dag_id: str) -> list[dict]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_id, task_id="drop", key="return_value").all()
        return [XComModel.deserialize_value(r) for r in rows]


def test_two_runs_reindex_the_same_collection_at_once(milvus_server, collection_name, tmp_path):
    uri = milvus_server.uri
    make_collection(uri, collection_name, load=True)
    before, rows = index_definitions(uri, collection_name), row_count(uri, collection_name)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    conn = "milvus_concurrency"
    env = dict(os.environ, **{f"AIRFLOW_CONN_{conn.upper()}": conn_env_value(uri, timeout=10)})
    header = f"CONN = {conn!r}\nCOLLECTION = {collection_name!r}\nBARRIER = {str(barrier)!r}\n"
    dag_ids = [write_dag(header + DAG) for _ in range(2)]
    procs, logs = [], [tmp_path / f"{dag_id}.log" for dag_id in dag_ids]
    for dag_id, log in zip(dag_ids, logs):
        # Output to a file, not a pipe: nobody reads a pipe while the runs wait at the barrier,
        # and a run whose parse logs fill it blocks before reaching the barrier.
        with open(log, "w") as out:
            procs.append(subprocess.Popen(dags_test_command(dag_id), env=env, stdout=out, stderr=subprocess.STDOUT))
        # One SQLite metadata DB: let the first run get past parsing before the second starts.
        deadline = time.monotonic() + 240
        while not (barrier / dag_id).exists() and procs[-1].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    for proc in procs:
        proc.wait(timeout=480)
    outputs = [log.read_text() for log in logs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0 and "state=success" in out.replace("state=DagRunState.SUCCESS", "state=success"), out[-4000:]
    # Exactly the index the collection had, built, loaded; no rows lost.
    assert index_definitions(uri, collection_name) == before
    assert load_state(uri, collection_name) == "Loaded"
    assert row_count(uri, collection_name) == rows
    # Neither run lost the definition: each carries it as dropped or as pending_rebuild.
    wanted = (VECTOR_INDEX["field_name"], VECTOR_INDEX["index_type"], VECTOR_INDEX["metric_type"])
    for dag_id in dag_ids:
        (result,) = drop_results(dag_id)
        carried = {(s["field_name"], s["index_type"], s["metric_type"]) for s in result["dropped"] + result["pending_rebuild"]}
        assert wanted in carried, json.dumps(result)[:2000]
