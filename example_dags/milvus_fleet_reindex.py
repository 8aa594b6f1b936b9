"""Reindex a fleet of collections (one per tenant): list, then drop, reload, rebuild and check
recall per collection, as one mapped task group per collection.

Each collection gets its own map index of every step, so the steps spread over all workers, a
broken tenant fails only its own map index (its later steps are ``upstream_failed``, the other
tenants carry on), and clearing that map index after the fix runs it again alone. Each
rebuild gets exactly its own drop's snapshot (``index_specs=drop.output`` inside the group).

How many collections one server reindexes at once: ``TENANTS_AT_ONCE`` map indexes of each
step per DAG (``max_active_tis_per_dag``). To bound it across DAGs that share a server, put
their tasks in one pool: ``airflow pools set milvus_server 4 "one Milvus server"`` and add
``"pool": "milvus_server"`` to ``default_args`` (the example uses none, so it runs in a fresh
Airflow: a task whose pool does not exist is never started).

``summarize`` runs whatever happened and returns one line per tenant. Runs as-is on embedded
Milvus Lite and on a server (``AIRFLOW_CONN_MILVUS_DEFAULT``); every step is idempotent.
"""

from __future__ import annotations

import random
import zlib

import pendulum
from airflow.sdk import Param, dag, task, task_group

from airflow_milvus.compat import AirflowFailException
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator
from airflow_milvus.operators.ingest import MilvusIngestOperator
from airflow_milvus.operators.listing import MilvusListCollectionsOperator
from airflow_milvus.operators.quality import MilvusRecallCheckOperator

CONN_ID = "milvus_default"
DIM = 32
TENANTS_AT_ONCE = 4
DEMO_INDEX = {"field_name": "embedding", "index_name": "embedding", "index_type": "HNSW", "metric_type": "L2",
              "params": {"M": 16, "efConstruction": 64}}  # fmt: skip


def tenant_rows(params, task):
    """The tenant's rows (here generated, the same on every run; in production, its source)."""
    tenant = task.collection_name  # rendered: this map index's collection
    seed = zlib.crc32(tenant.encode())
    for i in range(int(params["rows"])):
        rng = random.Random(seed + i)
        yield {"id": i, "embedding": [rng.random() for _ in range(DIM)]}


@dag(
    dag_id="milvus_fleet_reindex",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["milvus", "example"],
    params={
        "pattern": Param("fleet_tenant_*", type="string", description="Collections to reindex (a glob)"),
        "demo_tenants": Param(3, type="integer", minimum=0, description="Create this many demo tenants first if missing"),
        "rows": Param(300, type="integer", minimum=1, description="Rows to reload per tenant"),
        "max_tenants": Param(500, type="integer", minimum=1, description="Fail if the pattern matches more"),
        "min_recall": Param(None, type=["null", "number"], minimum=0, maximum=1, description="Fail a tenant below this recall@10"),
    },
    default_args={"max_active_tis_per_dag": TENANTS_AT_ONCE},
)
def milvus_fleet_reindex():
    @task
    def seed_demo_tenants(params=None) -> None:
        """Create ``demo_tenants`` collections named after the pattern (``fleet_tenant_000``...)."""
        from pymilvus import DataType

        count, pattern = int(params["demo_tenants"]), params["pattern"]
        if count and not (pattern.endswith("*") and "*" not in pattern[:-1]):
            raise ValueError(f"demo_tenants={count} names the demo tenants after the pattern: use 'prefix*', not {pattern!r}.")
        with MilvusHook(CONN_ID) as hook:
            for number in range(count):
                name = f"{pattern[:-1]}{number:03d}"
                if hook.has_collection(name):
                    continue
                client = hook.get_conn()
                schema = client.create_schema(auto_id=False)
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
                client.create_collection(name, schema=schema)
                hook.create_index({"collection_name": name, **DEMO_INDEX})

    tenants = MilvusListCollectionsOperator(
        task_id="list_tenants", milvus_conn_id=CONN_ID, collection_name="{{ params.pattern }}", limit="{{ params.max_tenants }}"
    )

    @task_group
    def reindex_tenant(collection: str):
        drop = MilvusDropIndexOperator(task_id="drop_indexes", milvus_conn_id=CONN_ID, collection_name=collection, drop_all=True)
        reload = MilvusIngestOperator(
            task_id="reload", milvus_conn_id=CONN_ID, collection_name=collection, data=tenant_rows, batch_size=500, mode="upsert"
        )
        rebuild = MilvusCreateIndexOperator(
            task_id="rebuild_indexes", milvus_conn_id=CONN_ID, index_specs=drop.output, restore_load_state=True, load=True, poll_interval=1
        )
        recall = MilvusRecallCheckOperator(
            task_id="check_recall",
            milvus_conn_id=CONN_ID,
            collection_name=collection,
            search_params={"params": {"ef": 64}},
            sample_size=20,
            min_recall="{{ params.min_recall }}",
        )
        drop >> reload >> rebuild >> recall
        return recall.output

    @task(trigger_rule="all_done")
    def summarize(names: list[str], recalls, ti=None) -> dict[str, str]:
        """One line per tenant (XCom ``outcome``): its recall, or that it failed. Fails the run,
        naming the failed tenants, when any did (their map index is their place in the listing)."""
        measured = {r["collection_name"]: r for r in recalls if r}
        outcome = {
            name: f"reindexed, recall@10 {measured[name]['recall']:.3f}" if name in measured else f"FAILED: see map index {index} of reindex_tenant"
            for index, name in enumerate(names)
        }
        ti.xcom_push(key="outcome", value=outcome)
        for name, line in outcome.items():
            print(f"{name}: {line}")
        failed = [name for name in names if name not in measured]
        if failed:
            # Not retried: a retry would find the same.
            raise AirflowFailException(
                f"{len(failed)} of {len(names)} tenants failed: {', '.join(failed)}. Fix them, then clear their map indexes."
            )
        return outcome

    seed_demo_tenants() >> tenants
    summarize(tenants.output, reindex_tenant.expand(collection=tenants.output))


milvus_fleet_reindex()
