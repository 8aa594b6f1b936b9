"""Milvus import jobs (the gRPC Import call) and the memory of completed imports.

Jobs go through the hook's own client (its gRPC handler, with the connection's database),
under the hook's retry policy: no second connection, nothing ORM-global. pymilvus exposes
the same calls as ``utility.do_bulk_insert`` / ``get_bulk_insert_state``.

Completed imports are remembered in an Airflow Variable per connection and collection (as
index snapshots are, see snapshots.py), keyed by each item's fingerprint (import_files.py):
a re-run skips the items already imported, and adopts jobs a previous run started.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow_milvus.lifecycle import snapshots

log = logging.getLogger(__name__)
PREFIX = "airflow_milvus.imports"
KEEP = 200  # remembered items per collection, newest kept

# BulkInsertState codes (pymilvus.client.types), named as Milvus logs them.
STATES = {0: "Pending", 1: "Failed", 2: "Started", 5: "Persisted", 6: "Completed", 7: "Failed and cleaned"}
DONE, FAILED = {6}, {1, 7}


def start_job(hook, collection_name: str, partition_name: str | None, item: list[str]) -> int:
    """Start one import job; returns its id."""

    def start(c) -> int:
        handler = c._get_connection()
        return int(handler.do_bulk_insert(
            collection_name, partition_name or "", list(item),
            timeout=hook.timeout, retry_times=2, context=c._generate_call_context(),
        ))

    return hook.call(f"import({collection_name} <- {', '.join(item)})", start)


def job_status(hook, job_id: int) -> dict[str, Any]:
    """JSON-safe state of one job: id, state, state_name, progress, rows, files, reason."""

    def get(c):
        return c._get_connection().get_bulk_insert_state(
            int(job_id), timeout=hook.timeout, retry_times=2, context=c._generate_call_context()
        )

    state = hook.call(f"get_import_state({job_id})", get)
    infos = state.infos or {}
    code = int(state.state)
    return {
        "job_id": int(job_id),
        "state": code,
        "state_name": STATES.get(code, f"Unknown ({code})"),
        # Milvus 2.3 reports no percentage until the rows are persisted; 0 until then.
        "progress": int(infos.get("progress_percent") or (100 if code in DONE else 0)),
        "rows": int(state.row_count or 0),
        "files": str(infos.get("files") or ""),
        "reason": str(infos.get("failed_reason") or ""),
    }


def check_jobs(hook, job_ids: list[int]) -> dict[str, Any]:
    """One poll of every job: an event payload whose status is success, error or pending."""
    statuses = [job_status(hook, job_id) for job_id in job_ids]
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
