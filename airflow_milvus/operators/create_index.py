"""Create indexes, or rebuild exactly what a drop removed, then wait and restore the load state.

The Airflow adapter of :mod:`airflow_milvus.lifecycle.create`: templating, waiting on a worker
or deferring to the triggerer, XCom and asset events. ``airflow milvus index create`` calls the
same functions. Milvus Lite and the server disagree on several index rules (docs/reindexing.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus import lineage
from airflow_milvus.compat import conf
from airflow_milvus.lifecycle import create, waiting
from airflow_milvus.lifecycle.snapshots import SnapshotStoreMixin
from airflow_milvus.operators.base import MilvusAssetEventsMixin, MilvusBaseOperator
from airflow_milvus.planning.create import CollectionState, CreateOutcome, wanted_specs

# Before deferring, the worker watches the build this long: a build that ends within it never
# reaches the triggerer (no trigger round trip, and no exposure to apache/airflow#71580).
WORKER_CHECK_SECONDS = 10.0


class MilvusCreateIndexOperator(SnapshotStoreMixin, MilvusAssetEventsMixin, MilvusBaseOperator):
    """Create indexes, or rebuild exactly what a drop removed (``index_specs=drop.output``).

    An identical existing index is success without work. A different index on the field is
    handled by ``if_exists``.

    :param collection_name: collection of the explicit index (templated).
    :param field_name: field of the explicit index (templated).
    :param index_type: e.g. ``HNSW``, ``IVF_FLAT``, ``AUTOINDEX``, ``INVERTED`` (templated).
    :param metric_type: e.g. ``L2``, ``IP``, ``COSINE``; None for scalar indexes (templated).
    :param index_params: build parameters, a dict or a JSON string (templated). Named
        ``index_params`` because ``params`` is every Airflow operator's DAG-params argument.
    :param index_name: optional index name (templated; Milvus Lite names indexes by field).
    :param index_specs: instead of the explicit index: a list of specs, or a drop result
        (templated; XComArgs work).
    :param if_exists: ``"skip"`` (keep a different existing index, warn), ``"replace"``
        (release if needed, drop, create) or ``"fail"``.
    :param wait_for_completion: wait until every build is Finished with 0 pending rows.
    :param timeout: seconds to wait for builds and loads.
    :param poll_interval: seconds between build status polls.
    :param deferrable: wait on the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param restore_load_state: given a drop result, load the collections that were loaded
        before the drop, and wait until Loaded.
    :param load: load the touched collections afterwards regardless.
    :param dry_run: log and return what would be created; change nothing.
    :param emit_asset_events: emit an asset event per collection an index was built on
        (see :class:`~airflow_milvus.operators.base.MilvusAssetEventsMixin`; ``asset_extra`` too).
    :return: ``{"created": [spec, ...], "skipped": [spec, ...], "loaded": [collection, ...],
        "released": [collection, ...]}``; ``released``: collections Milvus Lite loaded with the
        build that were not loaded before (before the drop, for a rebuild), released again.
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id",
        "collection_name",
        "field_name",
        "index_type",
        "metric_type",
        "index_params",
        "index_name",
        "index_specs",
        "if_exists",
        "wait_for_completion",
        "timeout",
        "poll_interval",
        "restore_load_state",
        "load",
        "dry_run",
        "asset_extra",
    )
    template_fields_renderers = {"index_params": "json", "index_specs": "json"}
    bool_fields = ("wait_for_completion", "restore_load_state", "load", "dry_run")
    seconds_fields = ("timeout", "poll_interval")

    def __init__(
        self,
        *,
        collection_name: str | None = None,
        field_name: str | None = None,
        index_type: str | None = None,
        metric_type: str | None = None,
        index_params: dict[str, Any] | str | None = None,
        index_name: str | None = None,
        index_specs: Any = None,
        if_exists: str = "skip",
        wait_for_completion: bool = True,
        timeout: float = 3600.0,
        poll_interval: float = 5.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        restore_load_state: bool = True,
        load: bool = False,
        dry_run: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.field_name = field_name
        self.index_type = index_type
        self.metric_type = metric_type
        self.index_params = index_params
        self.index_name = index_name
        self.index_specs = index_specs
        self.if_exists = if_exists
        self.wait_for_completion = wait_for_completion
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.restore_load_state = restore_load_state
        self.load = load
        self.dry_run = dry_run

    def run(self, context) -> dict[str, Any]:
        wanted = wanted_specs(
            collection_name=self.collection_name,
            field_name=self.field_name,
            index_type=self.index_type,
            metric_type=self.metric_type,
            index_params=self.index_params,
            index_name=self.index_name,
            index_specs=self.index_specs,
        )
        plan = create.plan_indexes(self.hook, wanted, if_exists=self.if_exists)
        outcome = create.apply_create(
            self.hook, self.snapshot_store, plan, index_specs=self.index_specs, timeout=self.timeout,
            dry_run=self.dry_run, logger=self.log,
        )  # fmt: skip
        if self.dry_run:
            return outcome.to_xcom()
        if self.wait_for_completion and self.deferrable:
            targets = create.build_targets(self.hook, outcome)
            check = min(float(self.poll_interval), WORKER_CHECK_SECONDS, float(self.timeout))
            if targets and waiting.poll_builds(self.hook, targets, timeout=check, poll_interval=1, logger=self.log)["status"] != "success":
                from airflow_milvus.triggers.index import MilvusIndexBuiltTrigger

                self.defer(
                    trigger=MilvusIndexBuiltTrigger(
                        targets=targets,
                        milvus_conn_id=self.milvus_conn_id,
                        poll_interval=self.poll_interval,
                        timeout=self.timeout,
                        payload=outcome.to_payload(),
                    ),
                    method_name="execute_complete",
                )
        elif self.wait_for_completion:
            create.wait_for_builds(self.hook, outcome, timeout=self.timeout, poll_interval=self.poll_interval, logger=self.log)
        return self._finish(outcome, plan.states)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        """Resume after the deferred wait; rendered fields are coerced as for ``execute``
        (``MilvusBaseOperator.render_template_fields``)."""
        waiting.raise_for_event(event)
        self.log.info("Index builds finished (deferred wait): %s", event.get("statuses"))
        with self.hook:
            return self._finish(CreateOutcome.from_payload(event["payload"]), states={})

    def _finish(self, outcome: CreateOutcome, states: dict[str, CollectionState]) -> dict[str, Any]:
        result = create.finish_create(
            self.hook, outcome, states=dict(states), load=self.load, restore_load_state=self.restore_load_state,
            index_specs=self.index_specs, timeout=self.timeout, logger=self.log,
        )  # fmt: skip
        self.announce_index_builds(result)  # asset events: see MilvusAssetEventsMixin
        lineage.report(self.hook, output_collections=[spec["collection_name"] for spec in result["created"]])
        return result
