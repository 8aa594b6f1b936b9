"""Milvus import jobs: how files are packed into jobs, one poll of their state, and the
memory of completed imports.

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
from airflow_milvus.planning.rules import parse_version

log = logging.getLogger(__name__)
PREFIX = "airflow_milvus.imports"
KEEP = 2000  # remembered items per collection, newest kept (one reload can list ~1,000 files)
# Milvus 2.4+: dataCoord.import.maxFilesPerImportReq and maxImportJobNum, both 1,024 by default.
MAX_FILES_PER_REQUEST = 1024
MAX_JOBS = 1024


def files_per_job(server_version: str) -> int:
    """How many JSON or Parquet files one import request may list on this server.

    Milvus 2.3 and older: one ("for JSON or parquet file, each task only accepts one file",
    measured on 2.3.5). 2.4+: up to 1,024, each read as one file of the same job."""
    return 1 if parse_version(server_version) < (2, 4) else MAX_FILES_PER_REQUEST


def pack_jobs(formats: list[str], server_version: str, *, max_files: int | None = None) -> list[list[int]]:
    """The items (by index, in order) that each job imports: as few jobs as the server allows.

    ``formats`` is each item's ``files.file_format``. A NumPy batch (several column files) is
    one job of its own everywhere: an import request lists files flat, and only a request
    holding nothing but one batch's columns reads them as one batch. JSON and Parquet items
    share a job up to :func:`files_per_job` (and ``max_files``, when smaller)."""
    limit = files_per_job(server_version)
    if max_files is not None:
        limit = max(1, min(limit, int(max_files)))
    jobs: list[list[int]] = []
    for index, kind in enumerate(formats):
        if kind == "numpy" or not jobs or len(jobs[-1]) >= limit or formats[jobs[-1][0]] == "numpy":
            jobs.append([index])
        else:
            jobs[-1].append(index)
    return jobs


def max_concurrent_jobs(value: int) -> int:
    """The operator's bound on jobs running at once, capped at what Milvus 2.4+ queues (1,024)."""
    return max(1, min(int(value), MAX_JOBS))


def check_jobs(hook, job_ids: list[int], *, need_slot: bool = False) -> dict[str, Any]:
    """One poll of every job: an event payload whose status is success, error or pending.

    ``need_slot``: jobs wait to be started, so the poll succeeds as soon as one job is done
    (its slot is free); the event's ``statuses`` say which."""
    statuses = [hook.import_job_status(job_id) for job_id in job_ids]
    failed = [s for s in statuses if s["state"] in FAILED]
    if failed:
        message = "; ".join(
            f"import job {s['job_id']} of {s['files']} failed: {s['reason'] or 'Milvus gave no reason'}" for s in failed
        )
        return {"status": "error", "message": message, "statuses": statuses}
    finished = [s for s in statuses if s["state"] in DONE]
    done = len(finished) == len(statuses)
    if done or (need_slot and finished):
        message = "all imports completed" if done else f"{len(finished)} of {len(statuses)} jobs completed: starting more"
        return {"status": "success", "message": message, "statuses": statuses}
    return {"status": "pending", "message": "importing", "statuses": statuses}


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


# ---------------------------------------------------------------------- what a run does
def sort_items(hook, items: list[list[str]], fps: list[str], memory: dict[str, dict[str, Any]], *, lite: bool):
    """Each item is done (imported before), adopted (its job, started by an earlier run, still
    runs) or to do. Returns ``(todo, adopted, done)``: ``todo`` as ``{"fp", "files"}``, adopted
    jobs as ``{"job_id", "items", "files"}`` (a packed job holds several items), done entries.
    Marks in ``memory`` the jobs found completed."""
    todo, adopted, done, states = [], {}, [], {}
    for fp, item in zip(fps, items):
        entry = memory.get(fp) or {}
        if entry.get("state") == "started" and not lite:
            job_id = entry["job_id"]
            if job_id not in states:
                states[job_id] = hook.import_job_status(job_id)
            status = states[job_id]
            if status["state"] in DONE:
                entry = memory[fp] = {**entry, "state": "completed", "rows": status["rows"]}
            elif status["state"] not in FAILED:
                log.info("Job %s for %s is still running (started by an earlier run): waiting for it", job_id, item)
                job = adopted.setdefault(job_id, {"job_id": job_id, "items": [], "files": []})
                job["items"].append({"fp": fp, "files": item})
                job["files"] += item
                continue
        if entry.get("state") == "completed":
            log.info("Already imported (job %s, %s rows in its job): %s", entry.get("job_id"), entry.get("rows"), item)
            done.append(entry)
            continue
        todo.append({"fp": fp, "files": item})
    return todo, list(adopted.values()), done
