"""Runs whenever the ``demo_books`` collection has been reindexed, instead of on a clock.

``milvus_reindex`` rebuilds the collection's index; its create operator then emits an asset
event for ``milvus://<host>:<port>/<db>/demo_books`` (or ``milvus://lite/<path>.db/demo_books``
on Milvus Lite), and the scheduler starts this DAG. Put a cache warm-up, a RAG evaluation or a
search-service reload here. See docs/assets_and_approval.md.

``collection_asset`` names the asset from the connection, so this DAG follows whatever
``milvus_default`` points at. It reads the connection (no Milvus call) when the file is parsed.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_milvus.assets import collection_asset
from airflow_milvus.hooks.milvus import MilvusHook

CONN_ID = "milvus_default"
COLLECTION = "demo_books"
BOOKS = collection_asset(COLLECTION, CONN_ID)


@dag(
    dag_id="milvus_downstream_on_reindex",
    schedule=[BOOKS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["milvus", "example", "assets"],
)
def milvus_downstream_on_reindex():
    @task
    def what_changed(triggering_asset_events=None) -> list[dict]:
        """Log and return what the reindex says it did: the index specs, row count, load state."""
        changes = []
        # By asset: the same event is also listed under the alias it came through (milvus_collections).
        for event in triggering_asset_events[BOOKS] if triggering_asset_events else []:
            print(f"{event.asset.uri} changed by {event.source_dag_id}.{event.source_task_id}: {event.extra}")
            changes.append(dict(event.extra))
        return changes

    @task
    def warm_up() -> int:
        """Touch the freshly built index once, so the first user query is not the slow one."""
        with MilvusHook(CONN_ID) as hook:
            rows = hook.call("query", lambda c: c.query(COLLECTION, filter="", output_fields=["count(*)"]))
        return int(rows[0]["count(*)"])

    what_changed() >> warm_up()


milvus_downstream_on_reindex()
