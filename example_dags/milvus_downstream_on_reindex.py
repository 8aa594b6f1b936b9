"""Runs whenever the ``demo_books`` collection has been reindexed, instead of on a clock.

``milvus_reindex`` rebuilds the collection's index; its create operator then emits an asset
event for ``milvus://<host>:<port>/<db>/demo_books`` (or ``milvus://lite/<path>.db/demo_books``
on Milvus Lite), and the scheduler starts this DAG. Put a cache warm-up, a RAG evaluation or a
search-service reload here. See docs/assets_and_approval.md.

The asset is written out rather than read from the connection: Airflow parses this file every
few minutes, and a parse should look nothing up. ``MILVUS_DEMO_URI`` says where
``milvus_default`` points (a server's ``http(s)://host:port``); unset, it is the demo's Milvus
Lite file. In your own DAG, write the asset's URI, e.g.
``Asset("milvus://milvus.internal:19530/default/books")``.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, dag, task

from airflow_milvus.assets import uri_for
from airflow_milvus.hooks.connection import default_lite_path
from airflow_milvus.hooks.milvus import MilvusHook

CONN_ID = "milvus_default"
COLLECTION = "demo_books"
BOOKS = Asset(uri_for(os.environ.get("MILVUS_DEMO_URI") or default_lite_path(), COLLECTION))


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
