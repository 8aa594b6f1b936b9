"""One Airflow deployment on the shared Milvus server for the tests that need Airflow's
services but no setting of their own: the example DAG twice with deferral and the fault tests
(tests/test_deployment.py), the approval through the REST API (tests/test_runbook_dag.py) and
the asset-triggered downstream DAG (tests/test_assets.py).

A deployment costs ~30 s of CPU to start and keeps four processes polling while it lives:
one for them all, not one per module. ``conftest.server_deployment`` serves it per worker,
and tests/scheduling.py keeps its tests on one worker. Operators defer by default
(``[operators] default_deferrable``; stock runs on a server are the Celery test's). Every
task gets one retry, 2 s after a failure (the fault tests need it; the other tests assert
that no task needed it).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.airflow_deployment import AirflowDeployment
from tests.conftest import REPO, conn_env_value

# The create operator watches the build on the worker for one poll interval (1 s), then defers.
BUILD_WAIT_DAG_ID = "deployment_build_wait"
BUILD_WAIT_DAG = f'''
import pendulum
from airflow.sdk import DAG, Param
from airflow_milvus.operators.index import MilvusCreateIndexOperator

with DAG("{BUILD_WAIT_DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, params={{"collection": Param("unset", type="string")}}):
    MilvusCreateIndexOperator(
        task_id="build", collection_name="{{{{ params.collection }}}}", field_name="vec", index_type="HNSW",
        metric_type="L2", index_params={{"M": 48, "efConstruction": 400}}, deferrable=True, poll_interval=1,
        timeout=600,
    )
'''

# The example downstream DAG, scheduled on a collection of its own (DAG files are parsed once,
# at start: the collection is named here, not by the test).
DOWNSTREAM_COLLECTION = f"t_{uuid.uuid4().hex[:12]}"
DOWNSTREAM_DAG_ID = f"downstream_{DOWNSTREAM_COLLECTION}"


def downstream_dag_source() -> str:
    source = (REPO / "example_dags" / "milvus_downstream_on_reindex.py").read_text()
    assert 'COLLECTION = "demo_books"' in source and '"milvus_downstream_on_reindex"' in source
    return source.replace('"demo_books"', repr(DOWNSTREAM_COLLECTION)).replace(
        '"milvus_downstream_on_reindex"', repr(DOWNSTREAM_DAG_ID)
    )


def new_server_deployment(uri: str, home: Path) -> AirflowDeployment:
    """The deployment, not started yet (``with server_deployment(...) as airflow:``)."""
    env = {"AIRFLOW_CONN_MILVUS_DEFAULT": conn_env_value(uri), "MILVUS_DEMO_URI": uri,
           "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
           "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}
    return AirflowDeployment(
        home, env=env, dag_ids=("milvus_reindex", "milvus_index_runbook_approval"),
        extra_dags={f"{BUILD_WAIT_DAG_ID}.py": BUILD_WAIT_DAG, f"{DOWNSTREAM_DAG_ID}.py": downstream_dag_source()},
    )
