"""Reindex with a reload by Milvus import job: export files, drop the index, import, rebuild, load, query.

For reloads of millions of rows, Milvus's own import jobs read the files and build the
segments themselves, instead of every row passing through one Airflow worker
(example_dags/milvus_reindex.py). The same DAG runs on embedded Milvus Lite (no
``milvus_default`` connection needed), which has no import jobs: there the import operator
reads the files and inserts the rows itself.

The export step writes Parquet files with pymilvus's ``LocalBulkWriter`` (``pip install
airflow-milvus[bulk]``) into ``$AIRFLOW_HOME/milvus_exports/<collection>-<rows>``: an absolute
path the Milvus server can read when it runs on this machine with local storage. With MinIO/S3
use ``RemoteBulkWriter`` and pass the object keys instead.

Safe to re-run: the export finds its files already written, and the import skips files it
already imported into this collection (same paths, sizes and modification times). Import jobs
insert, they do not replace rows with the same primary key: a full reload of new files into a
collection that still holds the old rows needs the old rows deleted first, or a fresh
collection (see milvus_blue_green_reindex).
"""

from __future__ import annotations

import json
import os
import random

import pendulum
from airflow.sdk import Param, dag, task

from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator
from airflow_milvus.operators.index import (
    MilvusCreateIndexOperator,
    MilvusDropIndexOperator,
)

CONN_ID = "milvus_default"
DIM = 32
DEFAULT_INDEX = {"field_name": "embedding", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 16, "efConstruction": 64}}


def _vector(i: int) -> list[float]:
    rng = random.Random(i)  # the same row always gets the same vector
    return [rng.random() for _ in range(DIM)]


@dag(
    dag_id="milvus_reindex_import",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["milvus", "example"],
    params={
        "collection": Param("demo_books_import", type="string", description="Collection to reindex"),
        "rows": Param(2000, type="integer", minimum=1, description="Rows to export and import"),
    },
)
def milvus_reindex_import():
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

    @task
    def export_files(params=None) -> list[str]:
        """Write the rows as Parquet import files, once per (collection, rows); return their paths."""
        from pymilvus import CollectionSchema
        from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

        name, rows = params["collection"], int(params["rows"])
        home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
        folder = os.path.join(home, "milvus_exports", f"{name}-{rows}")
        manifest = os.path.join(folder, "files.json")
        if os.path.exists(manifest):
            files = json.loads(open(manifest).read())
            if all(os.path.exists(f) for f in files):
                return files  # written by an earlier run: the import will skip them
        with MilvusHook(CONN_ID) as hook:
            schema = CollectionSchema.construct_from_dict(hook.describe_collection(name))
        os.makedirs(folder, exist_ok=True)  # the writer creates only the last level
        writer = LocalBulkWriter(schema=schema, local_path=folder, file_type=BulkFileType.PARQUET)
        for i in range(rows):
            writer.append_row({"id": i, "embedding": _vector(i), "title": f"book {i}"})
        writer.commit()
        files = [os.path.abspath(f) for batch in writer.batch_files for f in batch]  # Milvus needs absolute paths
        with open(manifest, "w") as out:
            json.dump(files, out)
        return files

    drop = MilvusDropIndexOperator(
        task_id="drop_indexes",
        milvus_conn_id=CONN_ID,
        collection_name="{{ params.collection }}",
        drop_all=True,
    )

    files = export_files()
    reload = MilvusBulkImportOperator(
        task_id="reload",
        milvus_conn_id=CONN_ID,
        collection_name="{{ params.collection }}",
        files=files,
        deferrable=True,  # the job runs inside Milvus: wait on the triggerer, not in a worker slot
        poll_interval=1,
    )

    rebuild = MilvusCreateIndexOperator(
        task_id="rebuild_indexes",
        milvus_conn_id=CONN_ID,
        index_specs=drop.output,
        restore_load_state=True,
        load=True,
        poll_interval=1,
    )

    @task
    def search(params=None) -> list[int]:
        """Prove the collection serves queries: the nearest neighbour of row 7's vector is row 7."""
        name = params["collection"]
        with MilvusHook(CONN_ID) as hook:
            hits = hook.call(
                "search",
                lambda c: c.search(name, data=[_vector(7)], limit=3, anns_field="embedding", search_params={"params": {"ef": 1024}}),
            )
        ids = [int(h["id"]) for h in hits[0]]
        if not ids or ids[0] != 7:
            raise ValueError(f"Search on {name} returned {ids}, expected row 7 first")
        return ids

    seed() >> files >> drop >> reload >> rebuild >> search()


milvus_reindex_import()
