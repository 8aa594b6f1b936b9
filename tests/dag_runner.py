"""Run DAGs for real with ``dag.test()``.

Airflow 3.3 runs only DAGs it finds in a DAG bundle, so each test DAG is written as a file
into the session's DAGs folder (set in conftest before Airflow is imported) and loaded back.
"""

from __future__ import annotations

import os
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any


def dags_folder() -> Path:
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def write_dag(body: str, dag_id: str | None = None) -> str:
    """Write a DAG file whose code uses ``DAG_ID``; return the dag id."""
    dag_id = dag_id or f"test_{uuid.uuid4().hex[:10]}"
    source = f"DAG_ID = {dag_id!r}\n" + textwrap.dedent(body)
    (dags_folder() / f"{dag_id}.py").write_text(source)
    return dag_id


def dags_test_command(dag_id: str) -> list[str]:
    """``airflow dags test`` of a DAG ``write_dag`` wrote, in a process of its own. ``-f``: parse
    only its file, not every DAG that earlier tests wrote into the worker's folder."""
    return [sys.executable, "-m", "airflow", "dags", "test", dag_id, "-f", str(dags_folder() / f"{dag_id}.py")]


def load_dag(dag_id: str, path: Path | None = None):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag

    path = path or dags_folder() / f"{dag_id}.py"
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run_dag(dag_id: str, *, path: Path | None = None, conf: dict[str, Any] | None = None):
    """Run the DAG with dag.test(); return (dag_run, {task_id: TaskInstance})."""
    dag = load_dag(dag_id, path)
    dr = dag.test(run_conf=conf)
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    return dr, tis


def xcom(dag_run, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key)
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)
