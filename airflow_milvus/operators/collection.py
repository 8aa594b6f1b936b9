"""Load, release and compact collections, idempotently: Airflow adapters of
:mod:`airflow_milvus.lifecycle.collections` and :mod:`airflow_milvus.lifecycle.compaction`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus.compat import conf
from airflow_milvus.lifecycle import compaction, waiting
from airflow_milvus.lifecycle.collections import ensure_loaded, ensure_released
from airflow_milvus.operators.base import MilvusAssetEventsMixin, MilvusBaseOperator
from airflow_milvus.operators.create_index import WORKER_CHECK_SECONDS


class MilvusLoadCollectionOperator(MilvusAssetEventsMixin, MilvusBaseOperator):
    """Load a collection into memory so it serves searches. Loading a Loaded collection is a no-op.

    A load that changed something emits an asset event for the collection (extra:
    ``{"action": "loaded", "row_count", "indexes"}``); see :class:`MilvusAssetEventsMixin`
    for ``emit_asset_events`` and ``asset_extra``.

    :param collection_name: the collection (templated).
    :param wait_for_completion: wait until the state is Loaded; with False, start the load
        and return (``loaded`` then tells whether it had already finished).
    :param timeout: seconds to wait for the load.
    :return: ``{"collection_name": str, "was_loaded": bool, "loaded": bool}``
    """

    template_fields: Sequence[str] = ("milvus_conn_id", "collection_name", "wait_for_completion", "timeout", "asset_extra")
    bool_fields = ("wait_for_completion",)
    seconds_fields = ("timeout",)

    def __init__(
        self,
        *,
        collection_name: str,
        wait_for_completion: bool = True,
        timeout: float = 600.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.wait_for_completion = wait_for_completion
        self.timeout = timeout

    def run(self, context) -> dict[str, Any]:
        name = self.collection_name
        loaded_now = ensure_loaded(self.hook, name, timeout=self.timeout, wait=self.wait_for_completion)
        self.log.info("Collection %s %s", name, "loaded" if loaded_now else "was already loaded")
        if loaded_now and self.wants_asset_events:
            indexes = self.hook.list_index_specs(name)
            self.announce({name: {"action": "loaded", "row_count": self.hook.row_count(name), "indexes": indexes}}, context)
        return {"collection_name": name, "was_loaded": not loaded_now, "loaded": self.hook.get_load_state(name) == "Loaded"}


class MilvusReleaseCollectionOperator(MilvusBaseOperator):
    """Release a collection from memory. Releasing a released collection is a no-op.

    :param collection_name: the collection (templated).
    :return: ``{"collection_name": str, "was_loaded": bool}``
    """

    template_fields: Sequence[str] = ("milvus_conn_id", "collection_name")

    def __init__(self, *, collection_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name

    def run(self, context) -> dict[str, Any]:
        name = self.collection_name
        was_loaded = ensure_released(self.hook, name)
        self.log.info("Collection %s %s", name, "released" if was_loaded else "was not loaded")
        return {"collection_name": name, "was_loaded": was_loaded}


class MilvusCompactOperator(MilvusBaseOperator):
    """Compact a collection: merge small segments and purge deleted rows, then wait for it.

    Milvus decides what one compaction does; the result says what it did. Safe to re-run: a
    compaction after a finished one finds nothing (``compacted`` False). On Milvus Lite nothing
    is started (Lite does not compact; deleted rows leave its count at once): ``state`` is
    ``"Skipped"`` and ``note`` says so. Milvus 2.3 compacts only segments whose vector index is
    built: a collection without one reports nothing compacted, with a ``note``.

    :param collection_name: the collection (templated).
    :param flush: flush first, so that rows written or deleted since the last flush take part.
    :param wait_for_completion: wait until the compaction is Completed; with False, start it and
        return (``state`` "Executing", no ``*_after``).
    :param timeout: seconds to wait for the compaction.
    :param poll_interval: seconds between polls of its state.
    :param deferrable: wait on the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :return: ``{"collection_name", "compaction_ids": [int], "state": "Completed" | "Executing" |
        "Skipped", "compacted": bool, "plans": int (compaction plans Milvus ran), "segments_before",
        "segments_after", "rows_before", "rows_after"}`` (persisted segments and their rows as the
        server counts them, deleted rows included until compacted; None on Lite), and ``note``
        when nothing was compacted.
    """

    template_fields: Sequence[str] = ("milvus_conn_id", "collection_name", "flush", "wait_for_completion", "timeout", "poll_interval")
    bool_fields = ("flush", "wait_for_completion")
    seconds_fields = ("timeout", "poll_interval")

    def __init__(
        self,
        *,
        collection_name: str,
        flush: bool = True,
        wait_for_completion: bool = True,
        timeout: float = 3600.0,
        poll_interval: float = 5.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.flush = flush
        self.wait_for_completion = wait_for_completion
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.deferrable = deferrable

    def run(self, context) -> dict[str, Any]:
        report = compaction.start(self.hook, self.collection_name, flush=self.flush, logger=self.log)
        ids = report["compaction_ids"]
        if not ids or not self.wait_for_completion:
            return report
        if self.deferrable:
            # As the index wait: a compaction that ends within the first seconds never reaches the triggerer.
            check = min(float(self.poll_interval), WORKER_CHECK_SECONDS, float(self.timeout))
            event = waiting.poll(lambda: compaction.check(self.hook, ids), timeout=check, poll_interval=1,
                                 describe=compaction.describe, logger=self.log)  # fmt: skip
            if event["status"] in ("pending", "timeout"):
                from airflow_milvus.triggers.compaction import MilvusCompactionTrigger

                self.defer(
                    trigger=MilvusCompactionTrigger(
                        compaction_ids=ids,
                        milvus_conn_id=self.milvus_conn_id,
                        poll_interval=self.poll_interval,
                        timeout=self.timeout,
                        payload=report,
                    ),
                    method_name="execute_complete",
                )
        else:
            event = compaction.wait(self.hook, report, timeout=self.timeout, poll_interval=self.poll_interval, logger=self.log)
        return self._finish(report, event)

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the deferred wait; rendered fields are coerced as for ``execute``."""
        compaction.raise_for_event(event)
        self.log.info("Compaction finished (deferred wait): %s", compaction.describe(event))
        with self.hook:
            return self._finish(event["payload"], event)

    def _finish(self, report: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        result = compaction.finish(self.hook, report, compaction.raise_for_event(event))
        self.log.info("Collection %s: %s", result["collection_name"], result.get("note") or (
            f"{result['plans']} compaction plan(s); segments {result['segments_before']} -> {result['segments_after']}, "
            f"rows {result['rows_before']} -> {result['rows_after']}"))  # fmt: skip
        return result
