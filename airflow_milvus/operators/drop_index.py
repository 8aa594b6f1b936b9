"""Drop indexes of one or more collections, keeping a snapshot to rebuild them from.

The Airflow adapter of :mod:`airflow_milvus.lifecycle.drop` (templating, XCom); the
``airflow milvus index drop`` command calls the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus import lineage
from airflow_milvus.lifecycle import drop
from airflow_milvus.lifecycle.snapshots import SnapshotStoreMixin
from airflow_milvus.operators.base import MilvusBaseOperator


class MilvusDropIndexOperator(SnapshotStoreMixin, MilvusBaseOperator):
    """Drop indexes of one or more collections, keeping a snapshot to rebuild them from.

    Covers every form of the Milvus "drop index" page: collection only (ORM, Node.js, CLI),
    collection + field (Java, Go, REST) and collection + index name (modern pymilvus).

    :param collection_name: a name, a list of names, or a glob such as ``"books_*"`` (templated).
    :param field_name: drop the index on this field only (templated).
    :param index_name: drop the index with this name only (templated).
    :param drop_all: with neither field nor index name and several indexes, drop them all;
        otherwise that case is refused with the list of indexes.
    :param release_if_loaded: release a loaded collection first (Milvus refuses the drop
        otherwise). With False a loaded collection is an error.
    :param missing_ok: an index that is already absent is success (the idempotent re-run).
    :param missing_collection_ok: skip collections that do not exist instead of failing.
    :param dry_run: log and return what would be dropped and released; change nothing.
    :return: ``{"dropped": [spec, ...], "collections": {name: {"was_loaded": bool,
        "released": bool}}, "dry_run": bool, "snapshot": {name: [spec, ...]},
        "pending_rebuild": [spec, ...]}``. ``snapshot`` holds every index the collection had;
        ``pending_rebuild`` holds specs an earlier run dropped and nothing has rebuilt yet.
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id",
        "collection_name",
        "field_name",
        "index_name",
        "drop_all",
        "release_if_loaded",
        "missing_ok",
        "missing_collection_ok",
        "dry_run",
    )
    bool_fields = ("drop_all", "release_if_loaded", "missing_ok", "missing_collection_ok", "dry_run")

    def __init__(
        self,
        *,
        collection_name: str | list[str],
        field_name: str | None = None,
        index_name: str | None = None,
        drop_all: bool = False,
        release_if_loaded: bool = True,
        missing_ok: bool = True,
        missing_collection_ok: bool = False,
        dry_run: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.field_name = field_name
        self.index_name = index_name
        self.drop_all = drop_all
        self.release_if_loaded = release_if_loaded
        self.missing_ok = missing_ok
        self.missing_collection_ok = missing_collection_ok
        self.dry_run = dry_run

    def run(self, context) -> dict[str, Any]:
        plan = drop.plan_drop(
            self.hook,
            self.snapshot_store,
            collection_name=self.collection_name,
            field_name=self.field_name,
            index_name=self.index_name,
            drop_all=self.drop_all,
            release_if_loaded=self.release_if_loaded,
            missing_ok=self.missing_ok,
            missing_collection_ok=self.missing_collection_ok,
            logger=self.log,
        )
        if self.dry_run:
            drop.log_dry_run(plan, self.log)
        else:
            drop.apply_drop(self.hook, self.snapshot_store, plan, logger=self.log)
            lineage.report(self.hook, output_collections=[c.collection for c in plan.collections if c.targets])
        return plan.to_xcom(dry_run=self.dry_run)
