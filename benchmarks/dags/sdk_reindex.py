"""Parse-cost baseline: example_dags/milvus_reindex.py with airflow.sdk tasks only.

Same tasks, params and dependencies; the drop and rebuild steps are ``@task`` functions that
would call pymilvus inside the task, so parsing this file imports nothing from Milvus.
"""

from __future__ import annotations

import random

import pendulum
from airflow.sdk import Param, dag, task

DIM = 32


def _vector(i: int) -> list[float]:
    rng = random.Random(i)
    return [rng.random() for _ in range(DIM)]


@dag(
    dag_id="sdk_reindex",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["milvus", "example"],
    params={
        "collection": Param("demo_books", type="string", description="Collection to reindex"),
        "rows": Param(2000, type="integer", minimum=1, description="Rows to reload"),
    },
)
def sdk_reindex():
    @task
    def seed(params=None) -> str:
        from pymilvus import MilvusClient  # noqa: F401

        return params["collection"]

    @task(task_id="drop_indexes")
    def drop(params=None) -> dict:
        from pymilvus import MilvusClient  # noqa: F401

        return {"dropped": []}

    @task
    def reload(params=None) -> int:
        return int(params["rows"])

    @task(task_id="rebuild_indexes")
    def rebuild(specs: dict) -> dict:
        from pymilvus import MilvusClient  # noqa: F401

        return {"created": specs["dropped"]}

    @task
    def search(params=None) -> list[int]:
        return [7]

    dropped = drop()
    seed() >> dropped >> reload() >> rebuild(dropped) >> search()


sdk_reindex()
