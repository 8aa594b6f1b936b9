"""The two alternatives to example_dags/milvus_reindex.py's drop-first cycle, for the benchmark.

- ``bench_reindex_in_place``: reload with the index left in place (the collection stays
  loaded and serving), then wait until the new segments are indexed.
- ``bench_reindex_blue_green``: reload into a fresh collection, index and load it, then
  point the alias at it and drop the old one.

The reload is the example DAG's (same vectors, upsert in batches of 500, flush), so the
three differ only in what happens to the index. The vector size comes from BENCH_DIM.
"""

from __future__ import annotations

import os
import random

import pendulum
from airflow.sdk import Param, dag, task

from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.index import MilvusCreateIndexOperator
from airflow_milvus.sensors.index import MilvusIndexBuiltSensor

CONN_ID = "milvus_default"
DIM = int(os.environ.get("BENCH_DIM", "128"))
INDEX = {"field_name": "embedding", "index_type": "HNSW", "metric_type": "L2", "index_params": {"M": 16, "efConstruction": 64}}
# HNSW with ef <= 128 misses row 7 among 100 000 uniform random 128-dim rows (measured); search wider.
SEARCH_PARAMS = {"params": {"ef": 1024}}
PARAMS = {
    "collection": Param("demo_books", type="string", description="Collection (in-place) or alias (blue-green)"),
    "rows": Param(2000, type="integer", minimum=1),
}


def _vector(i: int) -> list[float]:
    rng = random.Random(i)
    return [rng.random() for _ in range(DIM)]


def _reload(name: str, rows: int, batch: int = 500) -> int:
    with MilvusHook(CONN_ID) as hook:
        for start in range(0, rows, batch):
            data = [{"id": i, "embedding": _vector(i), "title": f"book {i}"} for i in range(start, min(start + batch, rows))]
            hook.call(f"upsert({name})", lambda c, data=data: c.upsert(name, data))
        hook.flush(name)
    return rows


def _search(name: str) -> list[int]:
    with MilvusHook(CONN_ID) as hook:
        hits = hook.call("search", lambda c: c.search(name, data=[_vector(7)], limit=3, anns_field="embedding", search_params=SEARCH_PARAMS))
    ids = [int(h["id"]) for h in hits[0]]
    if not ids or ids[0] != 7:
        raise ValueError(f"Search on {name} returned {ids}, expected row 7 first")
    return ids


def green_name(blue: str, alias: str) -> str:
    """Collections alternate between <alias>_a and <alias>_b."""
    return f"{alias}_b" if blue == f"{alias}_a" else f"{alias}_a"


DAG_ARGS = dict(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, params=PARAMS, tags=["benchmark"])


@dag(dag_id="bench_reindex_in_place", **DAG_ARGS)
def bench_reindex_in_place():
    @task
    def reload(params=None) -> int:
        return _reload(params["collection"], int(params["rows"]))

    wait = MilvusIndexBuiltSensor(
        task_id="wait_for_index", milvus_conn_id=CONN_ID, collection_name="{{ params.collection }}",
        index_name="embedding", poke_interval=1, timeout=3600,
    )

    @task
    def search(params=None) -> list[int]:
        return _search(params["collection"])

    reload() >> wait >> search()


@dag(dag_id="bench_reindex_blue_green", **DAG_ARGS)
def bench_reindex_blue_green():
    @task
    def create_green(params=None) -> dict:
        from pymilvus import DataType

        alias = params["collection"]
        with MilvusHook(CONN_ID) as hook:
            blue = hook.call("describe_alias", lambda c: c.describe_alias(alias))["collection_name"]
            green = green_name(blue, alias)
            client = hook.get_conn()
            if hook.has_collection(green):  # left over from an interrupted run
                client.drop_collection(green)
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
            schema.add_field("title", DataType.VARCHAR, max_length=128)
            client.create_collection(green, schema=schema)
            if hook.get_load_state(green) == "Loaded":
                hook.release_collection(green)
        return {"blue": blue, "green": green}

    @task
    def reload(names: dict, params=None) -> int:
        return _reload(names["green"], int(params["rows"]))

    names = create_green()
    build = MilvusCreateIndexOperator(
        task_id="build_and_load", milvus_conn_id=CONN_ID,
        collection_name="{{ ti.xcom_pull(task_ids='create_green')['green'] }}", **INDEX,
        index_name="embedding", load=True, poll_interval=1,
    )

    @task
    def switch(names: dict, params=None) -> str:
        alias = params["collection"]
        with MilvusHook(CONN_ID) as hook:
            hook.call("alter_alias", lambda c: c.alter_alias(names["green"], alias))
            hook.call("drop_collection", lambda c: c.drop_collection(names["blue"]))
        return names["green"]

    @task
    def search(params=None) -> list[int]:
        return _search(params["collection"])

    reload(names) >> build >> switch(names) >> search()


bench_reindex_in_place()
bench_reindex_blue_green()
