"""Index snapshots that outlive one DAG run.

A drop returns its snapshot through XCom, but XCom is cleared when a failed run is
re-run, and the re-run's drop finds nothing left to drop. So every dropped spec is also
kept in an Airflow Variable until an index is built again on that field; the next drop
reports such specs as ``pending_rebuild``, and the create operator rebuilds them.

Milvus Lite does not report build parameters: the hook records those of the indexes it builds
beside the ``.db`` (hooks/lite_params.py); records that earlier versions kept here still fill in.

Operators receive a :class:`SnapshotStore` for their connection; the Variable keys and their
JSON format are stable, so snapshots written by earlier versions still read.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import Any

from airflow_milvus.planning.specs import is_vector_spec

log = logging.getLogger(__name__)
PREFIX = "airflow_milvus.snapshot"


def _key(conn_id: str, collection_name: str, kind: str = "") -> str:
    return f"{PREFIX}{kind}.{conn_id}.{collection_name}"


class TaskVariables:
    """Airflow Variables inside a task: the Task SDK's ``Variable`` (through the execution API)."""

    def get(self, key: str) -> Any:
        from airflow.sdk import Variable

        return Variable.get(key, default=None)

    def set(self, key: str, value: str, description: str) -> None:
        from airflow.sdk import Variable

        Variable.set(key, value, description=description)

    def delete(self, key: str) -> None:
        from airflow.sdk import Variable

        Variable.delete(key)


class MetadataVariables:
    """Airflow Variables outside a task (the CLI): the metadata database, as Airflow's own
    ``airflow variables`` commands reach it. The Task SDK has no database access there."""

    def get(self, key: str) -> Any:
        from airflow.models.variable import Variable

        return Variable.get(key, default_var=None)

    def set(self, key: str, value: str, description: str) -> None:
        from airflow.models.variable import Variable

        Variable.set(key, value, description=description)

    def delete(self, key: str) -> None:
        from airflow.models.variable import Variable

        Variable.delete(key)


def _get(key: str, variables: TaskVariables | MetadataVariables | None = None) -> Any:
    return (variables or TaskVariables()).get(key)


def _set(key: str, value: str | None, description: str, variables: TaskVariables | MetadataVariables | None = None) -> None:
    variables = variables or TaskVariables()
    if value is None:
        variables.delete(key)
    else:
        variables.set(key, value, description)


class SnapshotStore:
    """The index snapshots of one Airflow connection, kept in Airflow Variables."""

    def __init__(self, conn_id: str, *, variables: TaskVariables | MetadataVariables | None = None) -> None:
        self.conn_id = conn_id
        self.variables = variables or TaskVariables()

    def load(self, collection_name: str, kind: str = "") -> list[dict[str, Any]]:
        """Remembered specs of a collection: dropped ones (``kind=""``) or built ones (``".built"``)."""
        try:
            raw = self.variables.get(_key(self.conn_id, collection_name, kind))
        except Exception as exc:  # neither the API server nor the DB is reachable
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

    def _save(self, collection_name: str, specs: list[dict[str, Any]], kind: str = "") -> None:
        key = _key(self.conn_id, collection_name, kind)
        what = "indexes it built" if kind else "dropped indexes awaiting rebuild"
        try:
            _set(key, json.dumps(specs, sort_keys=True) if specs else None, f"airflow-milvus: {what}", self.variables)
        except Exception as exc:
            log.warning("Cannot write the index snapshot Variable %s: %s; the XCom result still holds it", key, exc)

    def _replace(self, collection_name: str, specs: list[dict[str, Any]], kind: str = "") -> None:
        """Store ``specs``, one per field: they replace what was kept for their fields."""
        fields = {s["field_name"] for s in specs}
        kept = [s for s in self.load(collection_name, kind) if s.get("field_name") not in fields]
        self._save(collection_name, kept + specs, kind)

    def remember(self, specs: list[dict[str, Any]]) -> None:
        """Record dropped specs, one per (collection, field), the newest winning."""
        by_collection: dict[str, list[dict[str, Any]]] = {}
        for spec in specs:
            by_collection.setdefault(spec["collection_name"], []).append(spec)
        for collection, new in by_collection.items():
            self._replace(collection, new)

    def forget(self, collection_name: str, field_names: set[str]) -> None:
        """Drop the entries of fields that have an index again."""
        current = self.load(collection_name)
        kept = [s for s in current if s.get("field_name") not in field_names]
        if len(kept) != len(current):
            self._save(collection_name, kept)

    def fill_unreported_params(self, collection_name: str, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Milvus Lite reports no build parameters. Versions before 0.2 recorded those of the
        indexes they built in Variables (``.built``); the hook now keeps them beside the ``.db``
        (hooks/lite_params.py). Where neither knows them, ``params`` is None (unknown, not "none")."""
        built = {s.get("field_name"): s for s in self.load(collection_name, ".built")}
        filled = []
        for spec in specs:
            known = built.get(spec["field_name"])
            if spec.get("params"):
                pass
            elif known and (known.get("index_type"), known.get("metric_type")) == (spec.get("index_type"), spec.get("metric_type")):
                spec = {**spec, "params": dict(known.get("params") or {})}
            elif is_vector_spec(spec):
                spec = {**spec, "params": None}
            filled.append(spec)
        return filled


class SnapshotStoreMixin:
    """Gives an operator the snapshot store of its connection (read after templates render)."""

    milvus_conn_id: str

    @cached_property
    def snapshot_store(self) -> SnapshotStore:
        return SnapshotStore(self.milvus_conn_id)

