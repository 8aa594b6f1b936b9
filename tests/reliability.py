"""Shared pieces of the reliability suites: the reindex DAG under test and end-state checks."""

from __future__ import annotations

from unittest import mock

from tests.conftest import milvus_client
from tests.dag_runner import run_dag, write_dag

# Keys of describe_index that report build progress, not what the index is.
_PROGRESS = {"total_rows", "indexed_rows", "pending_index_rows", "state", "index_state_fail_reason"}


def index_definitions(uri: str, name: str) -> dict[str, dict]:
    """{index_name: describe_index without progress keys}, straight from pymilvus."""
    with milvus_client(uri) as c:
        return {i: {k: v for k, v in c.describe_index(name, i).items() if k not in _PROGRESS} for i in c.list_indexes(name)}


def reindex_dag(conn_id: str, collection: str, *, attempts: int = 6, max_wait: float = 20, load: bool = True) -> str:
    """drop (release first) -> rebuild from the drop's output -> wait -> load: the example DAG's core."""
    retry = f"retry_attempts={attempts}, retry_max_wait={max_wait}"
    return write_dag(
        f"""
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    drop = MilvusDropIndexOperator(task_id="drop", milvus_conn_id={conn_id!r}, collection_name={collection!r}, drop_all=True, {retry})
    create = MilvusCreateIndexOperator(task_id="create", milvus_conn_id={conn_id!r}, index_specs=drop.output,
                                       load={load!r}, poll_interval=0.5, timeout=120, {retry})
    drop >> create
"""
    )


def states(tis) -> dict[str, str]:
    return {k: str(v.state) for k, v in tis.items()}


def run_recorded(dag_id: str, **kw):
    """Run the DAG; return (dag_run, tis, {task_id: text of the exception it failed with}).

    dag.test() drops each task's exception after logging it, and under pytest the task log
    does not reach the captured output, so the in-process runner is wrapped to keep it.
    """
    from airflow.sdk.execution_time import supervisor

    errors: dict[str, str] = {}
    original = supervisor.run_task_in_process

    def recording(ti, task, client=None):
        result = original(ti, task, client) if client is not None else original(ti, task)
        if result.error is not None:
            errors[ti.task_id] = f"{type(result.error).__name__}: {result.error}"
        return result

    with mock.patch.object(supervisor, "run_task_in_process", recording):
        dr, tis = run_dag(dag_id, **kw)
    return dr, tis, errors
