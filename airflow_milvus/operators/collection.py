"""Load and release collections, idempotently: Airflow adapters of :mod:`airflow_milvus.lifecycle.collections`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus.lifecycle.collections import ensure_loaded, ensure_released
from airflow_milvus.operators.base import MilvusAssetEventsMixin, MilvusBaseOperator


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
