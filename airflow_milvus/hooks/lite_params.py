"""Build parameters of the indexes this hook builds on a Milvus Lite ``.db``, kept beside it.

Milvus Lite's DescribeIndex reports no build parameters, so a drop's snapshot could not say what
to rebuild. Every index the hook builds on a ``.db`` is recorded in ``<db>.index-params.json``
(per collection and field, with its type and metric), whoever called the hook: an operator, the
CLI or a ``@task.milvus`` function, in any process. Listing fills the unreported parameters from
it. An index built by another client is not recorded: its parameters are unknown (``None``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow_milvus.planning.specs import is_vector_spec


def _path(db: str) -> Path:
    return Path(f"{db}.index-params.json")


@contextmanager
def _locked(db: str):
    """Several processes share a ``.db`` (tasks, the triggerer, the CLI): one writer at a time."""
    with open(f"{db}.index-params.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _read(db: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_path(db).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(db: str, data: dict[str, dict[str, Any]]) -> None:
    path = _path(db)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)  # readers never see half a file


def _key(collection_name: str, field_name: str) -> str:
    return f"{collection_name}/{field_name}"


def record(db: str, spec: Mapping[str, Any]) -> None:
    """Remember what was built on ``spec``'s field (``{}``: built without parameters)."""
    with _locked(db):
        data = _read(db)
        data[_key(spec["collection_name"], spec["field_name"])] = {
            "index_type": spec["index_type"],
            "metric_type": spec.get("metric_type") or None,
            "params": dict(spec.get("params") or {}),
        }
        _write(db, data)


def forget(db: str, collection_name: str, field_name: str | None = None) -> None:
    """Forget a field's record (its index was dropped), or the whole collection's."""
    with _locked(db):
        data = _read(db)
        prefix = _key(collection_name, field_name or "")
        kept = {k: v for k, v in data.items() if not (k == prefix or (field_name is None and k.startswith(prefix)))}
        if kept != data:
            _write(db, kept)


def fill(db: str | None, collection_name: str, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``specs`` with the recorded parameters where the same index type and metric were built
    here; ``params`` None (unknown) for a vector index built by another client. ``db`` None: a
    Lite server reached by URI, whose files this process cannot see (nothing is recorded)."""
    records = _read(db) if db else {}
    return [_filled(records.get(_key(collection_name, spec["field_name"])), spec) for spec in specs]


def _filled(known: Mapping[str, Any] | None, spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("params"):
        return spec
    if known and (known.get("index_type"), known.get("metric_type")) == (spec.get("index_type"), spec.get("metric_type") or None):
        return {**spec, "params": dict(known.get("params") or {})}
    if is_vector_spec(spec):
        return {**spec, "params": None}
    return spec  # Lite's scalar index types take no build parameters
