"""Scheduled reindex of a Milvus collection: drop the index, bulk reload, rebuild, load, search.

After the rebuild, ``check_recall`` measures the rebuilt index's recall@10 against exact search
(a trend to watch in its XCom and log). It only measures by default; set the ``min_recall``
param to make it fail the run below that value.

Runs as-is on embedded Milvus Lite (no ``milvus_default`` connection needed) and on a
server (set ``AIRFLOW_CONN_MILVUS_DEFAULT``). Safe to re-run: every step is idempotent.

Two runs reindexing the same collection at once would race (each drops what the other
builds). ``max_active_runs=1`` stops that within this DAG. Across DAGs that share the
collection, put their tasks in one pool of a single slot: create it
(``airflow pools set milvus_reindex 1 "one reindex at a time"``) and add
``default_args={"pool": "milvus_reindex"}``. The DAG uses none, so it runs in a fresh Airflow
(a task whose pool does not exist is never started).
"""

from __future__ import annotations

import random

import pendulum
from airflow.sdk import Param, dag, task

from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.index import (
    MilvusCreateIndexOperator,
    MilvusDropIndexOperator,
)
from airflow_milvus.operators.ingest import MilvusIngestOperator
from airflow_milvus.operators.quality import MilvusRecallCheckOperator
from airflow_milvus.operators.search import MilvusSearchOperator

CONN_ID = "milvus_default"
DIM = 32
DEFAULT_INDEX = {"field_name": "embedding", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 16, "efConstruction": 64}}


def _vector(i: int) -> list[float]:
    rng = random.Random(i)  # the same row always gets the same vector
    return [rng.random() for _ in range(DIM)]


@dag(
    dag_id="milvus_reindex",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["milvus", "example"],
    params={
        "collection": Param("demo_books", type="string", description="Collection to reindex"),
        "rows": Param(2000, type="integer", minimum=1, description="Rows to reload"),
        "min_recall": Param(None, type=["null", "number"], minimum=0, maximum=1, description="Fail below this recall@10; empty: measure only"),
    },
)
def milvus_reindex():
    @task
    def seed(params=None) -> str:
        """Create the demo collection with an index if it does not exist yet."""
        from pymilvus import DataType

        name = params["collection"]
        with MilvusHook(CONN_ID) as hook:
            if hook.has_collection(name):
                return name
            client = hook.get_conn()
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
            schema.add_field("title", DataType.VARCHAR, max_length=128)
            client.create_collection(name, schema=schema)
            hook.create_index({"collection_name": name, "index_name": "embedding", **DEFAULT_INDEX})
        return name

    drop = MilvusDropIndexOperator(
        task_id="drop_indexes",
        milvus_conn_id=CONN_ID,
        collection_name="{{ params.collection }}",
        drop_all=True,
    )

    def rows(params):
        """Stream the rows: the generator never holds the whole reload in memory."""
        for i in range(int(params["rows"])):
            yield {"id": i, "embedding": _vector(i), "title": f"book {i}"}

    # Upsert, so a re-run rewrites the same rows instead of duplicating them.
    reload = MilvusIngestOperator(
        task_id="reload",
        milvus_conn_id=CONN_ID,
        collection_name="{{ params.collection }}",
        data=rows,
        batch_size=500,
        mode="upsert",
    )

    rebuild = MilvusCreateIndexOperator(
        task_id="rebuild_indexes",
        milvus_conn_id=CONN_ID,
        index_specs=drop.output,
        restore_load_state=True,
        load=True,
        poll_interval=1,
    )

    # Prove the collection serves queries: the nearest neighbour of row 7's vector is row 7.
    # A wide HNSW beam (ef): with 100k+ rows the default can miss the exact match.
    nearest = MilvusSearchOperator(
        task_id="search_row_7",
        milvus_conn_id=CONN_ID,
        collection_name="{{ params.collection }}",
        data=[_vector(7)],
        anns_field="embedding",
        limit=3,
        search_params={"params": {"ef": 1024}},
    )

    @task
    def search(hits: list[list[dict]], params=None) -> list[int]:
        """The ids the search found, nearest first; fails unless row 7 comes first."""
        ids = [hit["id"] for hit in hits[0]]
        if not ids or ids[0] != 7:
            raise ValueError(f"Search on {params['collection']} returned {ids}, expected row 7 first")
        return ids

    check_recall = MilvusRecallCheckOperator(
        task_id="check_recall",
        milvus_conn_id=CONN_ID,
        collection_name="{{ params.collection }}",
        search_params={"params": {"ef": 64}},
        min_recall="{{ params.min_recall }}",
    )

    seed() >> drop >> reload >> rebuild >> nearest
    search(nearest.output)
    rebuild >> check_recall


milvus_reindex()
