"""Load and release collections, idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.operators.base import MilvusAssetEventsMixin, MilvusBaseOperator
from airflow_milvus.planning.validation import validate_name


def ensure_loaded(hook: MilvusHook, collection_name: str, *, timeout: float | None = None, wait: bool = True) -> bool:
    """Load ``collection_name`` unless it is Loaded; True when this call loaded it.

    Milvus cannot load a collection whose vector fields have no index, so that is checked
    first and reported with the fix.
    """
    state = hook.get_load_state(collection_name)
    if state == "NotExist":
        raise MilvusInputError(f"Collection {collection_name!r} does not exist; create it before loading.")
    if state == "Loaded":
        return False
    indexed = {s["field_name"] for s in hook.list_index_specs(collection_name)}
    unindexed = [f for f in hook.vector_fields(collection_name) if f not in indexed]
    if unindexed:
        raise MilvusInputError(
            f"Collection {collection_name!r} cannot be loaded: vector field(s) {', '.join(unindexed)} "
            "have no index. Create one first (MilvusCreateIndexOperator), then load."
        )
    try:
        hook.load_collection(collection_name, timeout=timeout, wait=wait)
    except MilvusProviderError:
        raise
    except Exception as exc:  # e.g. "unrecoverable error" while a restarted server recovers
        raise MilvusProviderError(
            f"Loading collection {collection_name!r} failed: {hook.redact(error_message(exc))}. If the "
            "server has just restarted, re-run the task once it has recovered."
        ) from exc
    return True


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
        name = validate_name(self.collection_name, "collection name")
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
        name = validate_name(self.collection_name, "collection name")
        state = self.hook.get_load_state(name)
        if state == "NotExist":
            raise MilvusInputError(f"Collection {name!r} does not exist; nothing to release.")
        was_loaded = state in ("Loaded", "Loading")
        if was_loaded:
            self.hook.release_collection(name)
        self.log.info("Collection %s %s", name, "released" if was_loaded else "was not loaded")
        return {"collection_name": name, "was_loaded": was_loaded}
