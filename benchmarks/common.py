"""Shared plumbing: a throwaway Airflow home, the Milvus server, and small statistics.

``setup_airflow_home`` must run before anything imports airflow: Airflow reads its
configuration at import time (the same reason tests/conftest.py sets it up first).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


def setup_airflow_home(home: Path) -> Path:
    """Point Airflow at ``home`` (sqlite, own DAGs folder) and migrate its database."""
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return dags


def set_milvus_conn(conn_id: str, uri: str) -> None:
    """An Airflow connection as an env var: seen by in-process tasks and child processes."""
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({"conn_type": "milvus", "extra": {"uri": uri}})


def median(values):
    return statistics.median(values) if values else float("nan")


def quartiles(values):
    if len(values) < 4:
        return (min(values), max(values)) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
