"""Index snapshots that outlive one DAG run.

A drop returns its snapshot through XCom, but XCom is cleared when a failed run is
re-run, and the re-run's drop finds nothing left to drop. So every dropped spec is also
kept in an Airflow Variable until an index is built again on that field; the next drop
reports such specs as ``pending_rebuild``, and the create operator rebuilds them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)
PREFIX = "airflow_milvus.snapshot"


def _key(conn_id: str, collection_name: str) -> str:
    return f"{PREFIX}.{conn_id}.{collection_name}"


def load(conn_id: str, collection_name: str) -> list[dict[str, Any]]:
    try:
        from airflow.sdk import Variable

        raw = Variable.get(_key(conn_id, collection_name), default=None)
    except Exception as exc:  # no API server or DB reachable (e.g. a plain script)
        log.warning("Cannot read the index snapshot Variable for %s: %s", collection_name, exc)
        return []
    if not raw:
        return []
    try:
        specs = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        log.warning("Ignoring a malformed snapshot Variable for %s", collection_name)
        return []
    return [s for s in specs if isinstance(s, dict)]


def _save(conn_id: str, collection_name: str, specs: list[dict[str, Any]]) -> None:
    from airflow.sdk import Variable

    key = _key(conn_id, collection_name)
    try:
        if specs:
            Variable.set(key, json.dumps(specs, sort_keys=True), description="airflow-milvus: dropped indexes awaiting rebuild")
        else:
            Variable.delete(key)
    except Exception as exc:
        log.warning("Cannot write the index snapshot Variable %s: %s; the XCom result still holds it", key, exc)


def remember(conn_id: str, specs: list[dict[str, Any]]) -> None:
    """Record dropped specs, one per (collection, field), the newest winning."""
    by_collection: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        by_collection.setdefault(spec["collection_name"], []).append(spec)
    for collection, new in by_collection.items():
        fields = {s["field_name"] for s in new}
        kept = [s for s in load(conn_id, collection) if s.get("field_name") not in fields]
        _save(conn_id, collection, kept + new)


def forget(conn_id: str, collection_name: str, field_names: set[str]) -> None:
    """Drop the entries of fields that have an index again."""
    current = load(conn_id, collection_name)
    kept = [s for s in current if s.get("field_name") not in field_names]
    if len(kept) != len(current):
        _save(conn_id, collection_name, kept)
