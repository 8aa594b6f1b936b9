"""Processes that use Milvus Lite exit without "--- Logging error ---" tracebacks.

An in-process Milvus Lite server (pymilvus opening a ``.db`` path itself) logs "MilvusLite
server stopped" from an atexit hook. By then a test process's captured streams, or a task
process's redirected output, are closed, and each such line printed a "Logging error"
traceback instead (51 at the end of one full run). The hook serves every ``.db`` from its
shared server (``hooks/lite_server.py``), so no provider process hosts one; these tests run
the provider's entry points in real processes and read everything they printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, conn_env_value
from tests.dag_runner import dags_test_command, write_dag
from tests.helpers import make_collection

LOGGING_ERROR = "--- Logging error ---"
# Logs to a stream that is closed before the interpreter exits, as pytest's capture and a
# redirected task process do: anything logged from an atexit hook then fails to write.
HOOK_SCRIPT = """
import logging, sys, tempfile
from airflow_milvus.hooks.milvus import MilvusHook
stream = open(tempfile.mktemp(), "w")
logging.basicConfig(stream=stream, level=logging.DEBUG, force=True)  # after Airflow configured its own
hook = MilvusHook("clean_exit")
hook.call("create_collection", lambda c: c.create_collection(sys.argv[1], dimension=4))
assert sys.argv[1] in hook.list_collections()
ok, message = hook.test_connection()
assert ok, message
stream.close()
"""


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def assert_clean(*procs: subprocess.CompletedProcess) -> None:
    for proc in procs:
        output = proc.stdout + proc.stderr
        assert LOGGING_ERROR not in output, output[output.index(LOGGING_ERROR) :][:3000]


@pytest.mark.slow  # three fresh interpreters
def test_hook_and_cli_processes_on_lite_exit_without_logging_errors(lite_uri, collection_name):
    env = {**os.environ, "AIRFLOW_CONN_CLEAN_EXIT": conn_env_value(lite_uri), "PYTHONPATH": str(REPO)}
    hook = run([sys.executable, "-c", HOOK_SCRIPT, collection_name], env)
    listed = run([sys.executable, "-m", "airflow_milvus", "index", "list", "-c", collection_name, "--conn-id", "clean_exit"], env)
    stopped = run([sys.executable, "-m", "airflow_milvus", "lite", "stop", lite_uri], env)
    assert "Stopped the Milvus Lite server" in stopped.stdout  # the hook's process left it to the shared server
    assert_clean(hook, listed, stopped)
    server_log = f"{os.path.abspath(lite_uri)}.server.log"
    with open(server_log, errors="replace") as log:
        assert LOGGING_ERROR not in log.read()


@pytest.mark.slow
def test_airflow_dags_test_on_lite_exits_without_logging_errors(lite_uri, collection_name):
    """``airflow dags test`` runs the task in its own process, as the issue's run did."""
    make_collection(lite_uri, collection_name, rows=0)
    dag_id = write_dag(
        textwrap.dedent(
            f"""
            import pendulum
            from airflow.sdk import DAG
            from airflow_milvus.operators.ingest import MilvusIngestOperator
            ROWS = [{{"id": i, "vec": [0.5] * 8, "year": 2000, "title": "t"}} for i in range(3)]
            with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
                MilvusIngestOperator(task_id="ingest", milvus_conn_id="clean_exit", collection_name={collection_name!r}, data=ROWS)
            """
        )
    )
    env = {**os.environ, "AIRFLOW_CONN_CLEAN_EXIT": conn_env_value(lite_uri), "PYTHONPATH": str(REPO)}
    proc = run(dags_test_command(dag_id), env)
    assert "state=success" in proc.stdout + proc.stderr or "DagRunState.SUCCESS" in proc.stdout + proc.stderr, proc.stdout[-3000:]
    assert_clean(proc)
