"""Milvus import jobs: one poll of their state, and the memory of completed imports.

Jobs are started and read through the hook (``MilvusHook.start_import_job`` and
``import_job_status``, in hooks/imports.py); :func:`check_jobs` is the one poll that the
operator (on a worker) and the trigger both run through ``lifecycle/waiting.py``.

Completed imports are remembered in an Airflow Variable per connection and collection (as
index snapshots are, see snapshots.py), keyed by each item's fingerprint (import_files.py):
a re-run skips the items already imported, and adopts jobs a previous run started.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow_milvus.hooks.imports import DONE, FAILED, STATES  # noqa: F401  (the operator reads them here)
from airflow_milvus.lifecycle import snapshots

log = logging.getLogger(__name__)
PREFIX = "airflow_milvus.imports"
KEEP = 200  # remembered items per collection, newest kept


def check_jobs(hook, job_ids: list[int]) -> dict[str, Any]:
    """One poll of every job: an event payload whose status is success, error or pending."""
    statuses = [hook.import_job_status(job_id) for job_id in job_ids]
    failed = [s for s in statuses if s["state"] in FAILED]
    if failed:
        message = "; ".join(
            f"import job {s['job_id']} of {s['files']} failed: {s['reason'] or 'Milvus gave no reason'}" for s in failed
        )
        return {"status": "error", "message": message, "statuses": statuses}
    done = all(s["state"] in DONE for s in statuses)
    return {"status": "success" if done else "pending", "message": "all imports completed" if done else "importing",
            "statuses": statuses}


def describe_progress(statuses: list[dict[str, Any]]) -> str:
    return "; ".join(f"job {s['job_id']}: {s['state_name']}, {s['progress']}%, {s['rows']} rows" for s in statuses)


# ---------------------------------------------------------------------- memory
def _key(conn_id: str, collection_name: str) -> str:
    return f"{PREFIX}.{conn_id}.{collection_name}"


def load(conn_id: str, collection_name: str, collection_id: Any) -> dict[str, dict[str, Any]]:
    """Remembered items ({fingerprint: entry}) of this very collection.

    Entries of an earlier collection of the same name (dropped and re-created: another
    collection id) do not count."""
    try:
        raw = snapshots._get(_key(conn_id, collection_name))
        memory = json.loads(raw) if isinstance(raw, str) else (raw or {})
    except Exception as exc:  # unreadable: import again rather than fail (a failed job adds nothing)
        log.warning("Cannot read the import memory of %s: %s", collection_name, exc)
        return {}
    if not isinstance(memory, dict) or memory.get("collection_id") != str(collection_id):
        return {}
    items = memory.get("items")
    return {k: v for k, v in items.items() if isinstance(v, dict)} if isinstance(items, dict) else {}


def save(conn_id: str, collection_name: str, collection_id: Any, items: dict[str, dict[str, Any]]) -> None:
    key = _key(conn_id, collection_name)
    kept = dict(list(items.items())[-KEEP:])
    value = json.dumps({"collection_id": str(collection_id), "items": kept}) if kept else None
    try:
        snapshots._set(key, value, "airflow-milvus: import jobs started or completed, by file fingerprint")
    except Exception as exc:
        log.warning("Cannot write the import memory %s: %s; a re-run may import these files again", key, exc)
