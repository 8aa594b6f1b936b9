"""Milvus Lite across processes: one shared server per .db (airflow_milvus/hooks/lite_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.hooks import lite_server
from tests.conftest import REPO, conn_env_value
from tests.dag_runner import run_dag, write_dag, xcom
from tests.helpers import load_state, make_collection

pytestmark = pytest.mark.slow  # fresh interpreters, as Airflow's task processes are


def in_new_process(code: str, uri: str, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (as an Airflow task process would be) with ``hook`` on ``uri``."""
    prelude = """
import json, sys
from airflow_milvus.hooks.milvus import MilvusHook
hook = MilvusHook("lite_test")
"""
    env = {**os.environ, "AIRFLOW_CONN_LITE_TEST": conn_env_value(uri), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(prelude) + textwrap.dedent(code)], env=env,
                         capture_output=True, text=True, timeout=180)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_load_state_survives_the_process_that_loaded_it(lite_uri, collection_name):
    make_collection(lite_uri, collection_name, rows=50)  # released, with an index
    in_new_process(f"hook.load_collection({collection_name!r}); hook.close()", lite_uri)
    seen = in_new_process(f"print(hook.get_load_state({collection_name!r}))", lite_uri)
    assert seen.stdout.strip().splitlines()[-1] == "Loaded"
    assert load_state(lite_uri, collection_name) == "Loaded"  # and this process sees it too


def test_processes_starting_at_once_share_one_server(lite_uri):
    code = "print(json.dumps(hook.list_collections())); from airflow_milvus.hooks.lite_server import server_info; print(server_info(hook.uri)['pid'])"
    env = {**os.environ, "AIRFLOW_CONN_LITE_TEST": conn_env_value(lite_uri), "PYTHONPATH": str(REPO)}
    prelude = "import json\nfrom airflow_milvus.hooks.milvus import MilvusHook\nhook = MilvusHook('lite_test')\n"
    procs = [subprocess.Popen([sys.executable, "-c", prelude + code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    pids = {o[0].strip().splitlines()[-1] for o in outs}
    assert pids == {str(lite_server.server_info(lite_uri)["pid"])}  # one server, started once


def test_no_task_process_keeps_the_db_locked(lite_uri, collection_name):
    make_collection(lite_uri, collection_name, rows=10)
    in_new_process(f"hook.get_load_state({collection_name!r})", lite_uri)
    holders = _lock_holders(lite_uri)
    assert holders == {lite_server.server_info(lite_uri)["pid"]}, holders


def _lock_holders(db: str) -> set[int]:
    """PIDs holding the flock on the .db's LOCK file, read from /proc/locks."""
    inode = os.stat(os.path.join(db, "LOCK")).st_ino
    pids = set()
    with open("/proc/locks") as locks:
        for line in locks:
            parts = line.split()
            if "FLOCK" in parts and parts[-3].endswith(f":{inode}"):
                pids.add(int(parts[-4]))
    return pids


def test_a_dead_server_is_replaced_and_the_data_kept(lite_uri, collection_name):
    make_collection(lite_uri, collection_name, rows=30)
    old = lite_server.server_info(lite_uri)
    os.kill(old["pid"], signal.SIGKILL)
    out = in_new_process(f"print(hook.row_count({collection_name!r}))", lite_uri)
    assert out.stdout.strip().splitlines()[-1] == "30"
    new = lite_server.server_info(lite_uri)
    assert new["pid"] != old["pid"]


def test_a_db_opened_directly_elsewhere_is_a_clear_error(lite_uri, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pymilvus import MilvusClient; c = MilvusClient({lite_uri!r}); print('open', flush=True); import time; time.sleep(120)"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(MilvusInputError, match="locked by another process that opened it directly"):
            lite_server.ensure_server(lite_uri, timeout=30)
        assert lite_server.server_info(lite_uri) is None  # nothing half-started is recorded
    finally:
        holder.kill()
        holder.wait()


def test_stop_server(lite_uri):
    uri = lite_server.ensure_server(lite_uri)
    pid = lite_server.server_info(lite_uri)["pid"]
    assert uri.startswith("http://127.0.0.1:")
    assert lite_server.stop_server(lite_uri) is True
    assert lite_server.server_info(lite_uri) is None and not lite_server._pid_alive(pid)
    assert lite_server.stop_server(lite_uri) is False


def test_lite_snapshot_has_the_params_of_an_index_built_by_the_hook(lite_uri, monkeypatch, collection_name):
    """An index built through MilvusHook.create_index (not the create operator) is recorded beside
    the .db, so the drop snapshot on Lite, which reports no params, still holds them (in another
    process: the drop task's; and for the CLI too)."""
    make_collection(lite_uri, collection_name, rows=20, indexes=())
    monkeypatch.setenv("AIRFLOW_CONN_LITE_SNAP", conn_env_value(lite_uri))
    dag_id = write_dag(f'''
import pendulum
from airflow.sdk import DAG, task
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.index import MilvusDropIndexOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    @task
    def build():
        with MilvusHook("lite_snap") as hook:
            hook.create_index({{"collection_name": "{collection_name}", "field_name": "vec", "index_name": "vec",
                               "index_type": "HNSW", "metric_type": "L2", "params": {{"M": 12, "efConstruction": 48}}}})
    build() >> MilvusDropIndexOperator(task_id="drop", milvus_conn_id="lite_snap", collection_name="{collection_name}")
''')
    dr, tis = run_dag(dag_id)
    assert dr.state == "success", {k: str(v.state) for k, v in tis.items()}
    (dropped,) = xcom(dr, "drop")["dropped"]
    assert dropped["params"] == {"M": 12, "efConstruction": 48}
    assert json.dumps(dropped)  # JSON-safe
