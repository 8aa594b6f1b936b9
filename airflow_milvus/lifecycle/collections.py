"""Load, release and report collections: idempotent, for operators and the CLI alike."""

from __future__ import annotations

from typing import Any

from airflow_milvus.errors import Fix, MilvusInputError, MilvusProviderError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.planning.specs import LOADED_STATES
from airflow_milvus.planning.validation import validate_name

# The operators that match collections call the argument missing_collection_ok; the CLI has no flag.
SKIP_MISSING_COLLECTIONS = Fix("missing_collection_ok", True, purpose="to skip it")


def ensure_loaded(hook: MilvusHook, collection_name: str, *, timeout: float | None = None, wait: bool = True) -> bool:
    """Load ``collection_name`` unless it is Loaded; True when this call loaded it.

    Milvus cannot load a collection whose vector fields have no index, so that is checked
    first and reported with the fix.
    """
    state = hook.get_load_state(validate_name(collection_name, "collection name"))
    if state == "NotExist":
        raise MilvusInputError(f"Collection {collection_name!r} does not exist; create it before loading.")
    if state == "Loaded":
        return False
    indexed = {s["field_name"] for s in hook.list_index_specs(collection_name)}
    unindexed = [f for f in hook.vector_fields(collection_name) if f not in indexed]
    if unindexed:
        raise MilvusInputError(
            f"Collection {collection_name!r} cannot be loaded: vector field(s) {', '.join(unindexed)} "
            "have no index. Create one first (MilvusCreateIndexOperator, or `index create` at a shell), then load."
        )
    load(hook, collection_name, timeout=timeout, wait=wait)
    return True


def load(hook: MilvusHook, collection_name: str, *, timeout: float | None = None, wait: bool = True) -> None:
    """Load without reading the state first (loading a Loaded collection changes nothing)."""
    try:
        hook.load_collection(collection_name, timeout=timeout, wait=wait)
    except MilvusProviderError:
        raise
    except Exception as exc:  # e.g. "unrecoverable error" while a restarted server recovers
        raise MilvusProviderError(
            f"Loading collection {collection_name!r} failed: {hook.redact(error_message(exc))}. If the "
            "server has just restarted, re-run the task once it has recovered."
        ) from exc


def ensure_released(hook: MilvusHook, collection_name: str) -> bool:
    """Release ``collection_name`` if it is loaded; True when this call released it."""
    state = hook.get_load_state(validate_name(collection_name, "collection name"))
    if state == "NotExist":
        raise MilvusInputError(f"Collection {collection_name!r} does not exist; nothing to release.")
    if state not in LOADED_STATES:
        return False
    hook.release_collection(collection_name)
    return True


def collection_status(hook: MilvusHook, collection_name: str) -> dict[str, Any]:
    """``{"collection_name", "load_state", "row_count", "indexes": [spec + "build": status]}``."""
    indexes = [
        {**spec, "build": hook.index_build_status(collection_name, spec["index_name"])}
        for spec in hook.list_index_specs(collection_name)
    ]
    return {
        "collection_name": collection_name,
        "load_state": hook.get_load_state(collection_name),
        "row_count": hook.row_count(collection_name),
        "indexes": indexes,
    }


def status_report(hook: MilvusHook, collection_name: Any, *, field_name: str | None = None, missing_ok: bool = False) -> list[dict[str, Any]]:
    """:func:`collection_status` of every matched collection, indexes of ``field_name`` only if given."""
    report = []
    for name in hook.match_collections(collection_name, missing_ok=missing_ok, fixes=[SKIP_MISSING_COLLECTIONS]):
        status = collection_status(hook, name)
        if field_name:
            status["indexes"] = [i for i in status["indexes"] if i["field_name"] == field_name]
        report.append(status)
    return report
