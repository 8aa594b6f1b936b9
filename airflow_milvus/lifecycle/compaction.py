"""Compact a collection: start, one poll, the report.

:func:`start` checks the collection, flushes it and starts a manual compaction; :func:`check` is
the one poll that :func:`wait` (on a worker) and ``MilvusCompactionTrigger`` (on the triggerer)
run through ``lifecycle/waiting.py``; :func:`finish` reads the collection again and says what
changed. Milvus decides what a compaction merges and purges: a request can find nothing to do
(a re-run after a finished compaction does), and then ``compacted`` is False and ``note`` says why
as far as the server lets us tell.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.lifecycle import waiting
from airflow_milvus.planning.rules import build_outcome, parse_version
from airflow_milvus.planning.validation import validate_name

log = logging.getLogger(__name__)

LITE_NOTE = (
    "Milvus Lite does not compact: its compact call does nothing, and deleted rows leave its row "
    "count at once. No compaction was started."
)
NOTHING_PLANNED = (
    "Milvus planned no compaction: no segment met its thresholds (enough deleted rows, or small "
    "segments to merge), or another compaction holds them."
)


class MilvusCompactionError(MilvusProviderError):
    """A compaction failed, or did not finish in time."""


def start(hook, collection_name: str, *, flush: bool = True, logger=log) -> dict[str, Any]:
    """Check ``collection_name``, flush it (rows written since the last flush take part only once
    sealed), count its segments and start a compaction. Returns the report so far (JSON-safe; a
    trigger echoes it back). Milvus Lite: nothing is started, the report says so."""
    validate_name(collection_name, "collection name")
    if not hook.has_collection(collection_name):
        raise MilvusInputError(
            f"Collection {collection_name!r} does not exist in {hook.redact(hook.uri)}; nothing was compacted. "
            "Check the name (and db_name), or create and fill the collection first."
        )
    report: dict[str, Any] = {"collection_name": collection_name, "compaction_ids": [], "compacted": False, "plans": 0}
    if hook.is_lite:
        logger.info("Collection %s: %s", collection_name, LITE_NOTE)
        rows = hook.row_count(collection_name)
        return {**report, "state": "Skipped", "segments_before": None, "segments_after": None,
                "rows_before": rows, "rows_after": rows, "note": LITE_NOTE}  # fmt: skip
    if flush:
        hook.flush(collection_name)
    before = hook.segment_summary(collection_name)
    compaction_id = hook.start_compaction(collection_name)
    logger.info("Compaction %s of %s started (%s segments, %s rows)", compaction_id, collection_name,
                before["segments"], before["segment_rows"])  # fmt: skip
    return {**report, "compaction_ids": [compaction_id], "state": "Executing",
            "segments_before": before["segments"], "rows_before": before["segment_rows"]}  # fmt: skip


def check(hook, compaction_ids: list[int]) -> dict[str, Any]:
    """One poll of every compaction: an event whose status is success, error or pending."""
    statuses = [hook.compaction_state(i) for i in compaction_ids]
    for s in statuses:
        if s["timed_out"]:
            message = f"Compaction {s['compaction_id']}: {s['timed_out']} plan(s) timed out on the server"
            return {"status": "error", "message": message, "statuses": statuses}
        if s["state"] not in ("Executing", "Completed"):
            message = (f"Milvus does not know compaction {s['compaction_id']} (state {s['state']}): the server may "
                       "have restarted. Run the task again: a new compaction takes what is left.")  # fmt: skip
            return {"status": "error", "message": message, "statuses": statuses}
    done = all(s["state"] == "Completed" for s in statuses)
    return {"status": "success" if done else "pending", "message": "completed" if done else "compacting",
            "statuses": statuses}  # fmt: skip


def describe(event: dict[str, Any]) -> str:
    return "Compaction " + "; ".join(
        f"{s['compaction_id']}: {s['state']}, plans {s['executing']} executing, {s['completed']} completed"
        for s in event["statuses"]
    )


def raise_for_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event itself when it succeeded; MilvusCompactionError with its message otherwise."""
    if event.get("status") != "success":
        raise MilvusCompactionError(event.get("message") or f"Compaction wait ended with {event}")
    return event


def timeout_message(compaction_ids: list[int], timeout: float) -> str:
    return (f"Compaction {', '.join(map(str, compaction_ids))} not finished after {timeout:.0f}s; it goes on in "
            "Milvus. Raise timeout to wait for it (a re-run starts a new request, which finds only what is left).")  # fmt: skip


def wait(hook, report: dict[str, Any], *, timeout: float, poll_interval: float, logger=log) -> dict[str, Any]:
    """Poll the started compaction on this worker until it completes; raise if it fails or time runs out."""
    ids = report["compaction_ids"]
    event = waiting.poll(lambda: check(hook, ids), timeout=timeout, poll_interval=poll_interval, describe=describe,
                         logger=logger, timeout_message=lambda _: timeout_message(ids, timeout))  # fmt: skip
    return raise_for_event(event)


def finish(hook, report: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The report of a completed compaction: plans run, segments and rows after, and a note when
    nothing was compacted."""
    name = report["collection_name"]
    plans = sum(s["completed"] for s in event["statuses"])
    after = hook.segment_summary(name)
    result = {**report, "state": "Completed", "plans": plans, "compacted": plans > 0,
              "segments_after": after["segments"], "rows_after": after["segment_rows"]}  # fmt: skip
    if not plans:
        result["note"] = why_nothing(hook, name)
    return result


def why_nothing(hook, collection_name: str) -> str:
    """Why Milvus planned nothing, as far as we can tell. Milvus 2.3 compacts only segments whose
    vector index is built: on 2.3.5 a collection without a vector index never compacted, whether
    ``dataCoord.compaction.indexBasedCompaction`` was on (the default) or off."""
    version = parse_version(hook.server_version)
    if version == (0,) or version >= (2, 4):
        return NOTHING_PLANNED
    status = {s["field_name"]: hook.index_build_status(collection_name, s["index_name"])
              for s in hook.list_index_specs(collection_name)}  # fmt: skip
    reasons = []
    for field in hook.vector_fields(collection_name):
        if field not in status:
            reasons.append(f"{field} has no index")
        elif build_outcome(status[field]) != "done":
            reasons.append(f"the index of {field} is still building ({status[field]['pending_index_rows']} rows pending)")
    if not reasons:
        return NOTHING_PLANNED
    return (f"Milvus {'.'.join(map(str, version[:2]))} compacts only segments whose vector index is built, and in "
            f"{collection_name!r} {'; '.join(reasons)}. Compact once the index is built.")  # fmt: skip
