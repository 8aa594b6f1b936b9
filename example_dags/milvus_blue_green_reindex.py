"""Zero-downtime reindex: build a new generation of the collection, then swap the alias to it.

Clients query the alias (``demo_books_live``), never a collection. Each run:

1. creates ``<alias>_v<N+1>`` with the schema of the collection the alias serves
   (``<alias>_v<N>``; the first run creates ``<alias>_v1`` from a demo schema),
2. ingests into it,
3. builds its indexes (the ones the served collection has, or the ``index`` param) and waits,
4. loads it, and checks that it answers a search,
5. measures its recall@10 against exact search with the search params clients use, and
   fails below ``min_recall`` (the recall gate),
6. swaps the alias to it in one atomic step,
7. releases and drops the previous generations.

Until step 6 the alias keeps serving the old collection; after it, the new one. A new index
that searches worse than ``min_recall`` never serves: the gate fails, the alias stays on the
old generation, and the new one is left for inspection. Every step is idempotent, so a failed
run can be re-run: a half-built generation is reused (its index rebuilt if the settings
changed), a swap that already happened is success, and cleanup drops whatever generations
are not served.

Runs as-is on embedded Milvus Lite, or on a server through ``AIRFLOW_CONN_MILVUS_DEFAULT``.
"""

from __future__ import annotations

import random
import re

import pendulum
from airflow.sdk import Param, dag, task

from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.alias import MilvusSwapAliasOperator
from airflow_milvus.operators.collection import MilvusLoadCollectionOperator
from airflow_milvus.operators.index import MilvusCreateIndexOperator
from airflow_milvus.operators.ingest import MilvusIngestOperator
from airflow_milvus.operators.quality import MilvusRecallCheckOperator
from airflow_milvus.operators.search import MilvusSearchOperator

CONN_ID = "milvus_default"
DIM = 32
FIRST_INDEX = {"field_name": "embedding", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 16, "efConstruction": 64}}


def _vector(i: int) -> list[float]:
    rng = random.Random(i)  # the same row always gets the same vector
    return [rng.random() for _ in range(DIM)]


def _generation(name: str | None, alias: str) -> int:
    match = re.fullmatch(rf"{re.escape(alias)}_v(\d+)", name or "")
    return int(match.group(1)) if match else 0


@dag(
    dag_id="milvus_blue_green_reindex",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two runs building generations at once would drop each other's
    tags=["milvus", "example"],
    params={
        "alias": Param("demo_books_live", type="string", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Alias clients query"),
        "rows": Param(2000, type="integer", minimum=1, description="Rows to load into the new generation"),
        "index": Param(
            None,
            type=["null", "object"],
            description='Vector index of the new generation, e.g. {"index_type": "IVF_FLAT", "metric_type": "L2", '
            '"params": {"nlist": 128}}; default: the index the alias serves now',
        ),
        "search_params": Param({"params": {"ef": 64}}, type="object", description="Search params clients use"),
        "min_recall": Param(0.9, type="number", minimum=0, maximum=1, description="Recall@10 the new generation must reach"),
    },
)
def milvus_blue_green_reindex():
    @task(multiple_outputs=True)
    def plan(params=None) -> dict:
        """Name the new generation and the indexes it needs, from what the alias serves now."""
        alias = params["alias"]
        with MilvusHook(CONN_ID) as hook:
            current = hook.describe_alias(alias)
            if current is None and hook.has_collection(alias):
                raise ValueError(f"{alias!r} is a collection, not an alias; pick another alias name.")
            new = f"{alias}_v{_generation(current, alias) + 1}"
            specs = hook.list_index_specs(current) if current else [{**FIRST_INDEX, "index_name": "embedding"}]
        if params["index"]:  # new build settings for the vector field; other indexes stay
            specs = [s for s in specs if s["field_name"] != "embedding"]
            specs.append({"field_name": "embedding", "index_name": "embedding", "params": {}, **params["index"]})
        index_specs = [{**spec, "collection_name": new} for spec in specs]
        return {"current": current or "", "new": new, "index_specs": index_specs}

    @task
    def create_collection(current: str, new: str) -> str:
        """Step 1: same schema as the served collection (a re-run reuses a half-built one)."""
        from pymilvus import DataType

        with MilvusHook(CONN_ID) as hook:
            if current:
                hook.clone_collection_schema(current, new)
            elif not hook.has_collection(new):
                client = hook.get_conn()
                schema = client.create_schema(auto_id=False)
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
                schema.add_field("title", DataType.VARCHAR, max_length=128)
                client.create_collection(new, schema=schema)
            if hook.get_load_state(new) == "Loaded":
                hook.release_collection(new)  # Milvus Lite loads new collections at once
        return new

    def rows(params):
        for i in range(int(params["rows"])):
            yield {"id": i, "embedding": _vector(i), "title": f"book {i}"}

    planned = plan()
    created = create_collection(planned["current"], planned["new"])

    ingest = MilvusIngestOperator(  # step 2; upsert, so a re-run does not duplicate rows
        task_id="ingest",
        milvus_conn_id=CONN_ID,
        collection_name=planned["new"],
        data=rows,
        batch_size=500,
        mode="upsert",
    )
    build = MilvusCreateIndexOperator(  # step 3
        task_id="build_indexes",
        milvus_conn_id=CONN_ID,
        index_specs=planned["index_specs"],
        if_exists="replace",  # a re-run with other settings rebuilds the half-built generation
        wait_for_completion=True,
        poll_interval=1,
    )
    load = MilvusLoadCollectionOperator(task_id="load", milvus_conn_id=CONN_ID, collection_name=planned["new"])  # step 4

    search_new = MilvusSearchOperator(  # step 4: row 7 must be its own nearest neighbour
        task_id="search_new",
        milvus_conn_id=CONN_ID,
        collection_name=planned["new"],
        data=[_vector(7)],
        anns_field="embedding",
        limit=1,
        consistency_level="Strong",
    )

    @task
    def verify(new: str, hits: list[list[dict]], params=None) -> int:
        """Swap only to a generation that answers: all rows there, row 7 its own nearest neighbour."""
        with MilvusHook(CONN_ID) as hook:
            hook.flush(new)
            count = hook.row_count(new)
        if count < int(params["rows"]) or not hits[0] or hits[0][0]["id"] != 7:
            raise ValueError(f"{new}: {count} rows, search for row 7 returned {hits}; not swapping to it")
        return count

    check_recall = MilvusRecallCheckOperator(  # step 5: the new index must search well enough
        task_id="check_recall",
        milvus_conn_id=CONN_ID,
        collection_name=planned["new"],
        top_k=10,
        sample_size=100,
        search_params="{{ params.search_params | tojson }}",
        min_recall="{{ params.min_recall }}",
    )

    swap = MilvusSwapAliasOperator(  # step 6
        task_id="swap_alias",
        milvus_conn_id=CONN_ID,
        alias="{{ params.alias }}",
        collection_name=planned["new"],
    )

    @task
    def drop_previous(params=None) -> list[str]:
        """Step 7: release and drop every generation the alias does not serve."""
        alias = params["alias"]
        with MilvusHook(CONN_ID) as hook:
            serving = hook.describe_alias(alias)
            old = [c for c in hook.match_collections(f"{alias}_v*", missing_ok=True) if c != serving and _generation(c, alias)]
            for name in old:
                hook.release_collection(name)
                hook.drop_collection(name)
        return old

    created >> ingest >> build >> load >> search_new
    verify(planned["new"], search_new.output) >> check_recall >> swap >> drop_previous()


milvus_blue_green_reindex()
