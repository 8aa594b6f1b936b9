"""The one waiting path for index builds, shared by the operators, the sensor and the trigger.

As in Amazon's Glue family, one poll (:func:`check_builds`) decides the state of every target;
the operators and the sensor wait with :func:`poll_builds` on a worker, and the trigger runs the
same poll through ``asyncio.to_thread``. A poll's result is an event dict whose ``status`` is
``success``, ``pending``, ``error`` or ``timeout``; :func:`raise_for_event` turns a failed one
into the error every caller raises.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow_milvus.errors import MilvusIndexBuildError
from airflow_milvus.planning.create import poll_targets
from airflow_milvus.planning.rules import build_outcome

log = logging.getLogger(__name__)


def check_builds(hook, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """One poll of every target: an event whose status is success, error or pending."""
    statuses = {
        f"{t['collection_name']}.{t['index_name']}": hook.index_build_status(t["collection_name"], t["index_name"])
        for t in targets
    }
    for key, status in statuses.items():
        outcome = build_outcome(status)
        if outcome == "failed":
            reason = status.get("fail_reason") or "no reason given by Milvus"
            return {"status": "error", "message": f"Index {key} build failed: {reason}", "statuses": statuses}
        if outcome == "missing":
            message = f"Index {key} does not exist; create it before waiting for it."
            return {"status": "error", "message": message, "statuses": statuses}
    done = all(build_outcome(s) == "done" for s in statuses.values())
    message = "all indexes built" if done else "building"
    return {"status": "success" if done else "pending", "message": message, "statuses": statuses}


def raise_for_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event itself when it is not a failure; MilvusIndexBuildError with its message otherwise."""
    if event.get("status") not in ("success", "pending"):
        raise MilvusIndexBuildError(event.get("message") or f"Index build wait ended with {event}")
    return event


def poll_builds(hook, targets: list[dict[str, Any]], *, timeout: float, poll_interval: float, logger=log) -> dict[str, Any]:
    """Poll until the builds succeed or ``timeout`` seconds pass; the last poll's event
    (``pending`` when time ran out). A failed or missing build raises at once."""
    deadline = time.monotonic() + float(timeout)
    while True:
        event = raise_for_event(check_builds(hook, targets))
        if event["status"] == "success":
            logger.info("Index builds finished: %s", event["statuses"])
            return event
        if time.monotonic() >= deadline:
            return event
        logger.info("Waiting for index builds: %s", event["statuses"])
        time.sleep(max(0.0, min(float(poll_interval), deadline - time.monotonic())))


def wait_for_builds(hook, targets: list[dict[str, Any]], *, timeout: float, poll_interval: float, logger=log) -> dict[str, Any]:
    """:func:`poll_builds`, with running out of time as an error."""
    event = poll_builds(hook, targets, timeout=timeout, poll_interval=poll_interval, logger=logger)
    if event["status"] != "success":
        raise MilvusIndexBuildError(
            f"Index builds not finished after {timeout:.0f}s: {event['statuses']}. "
            "Raise timeout, or wait with MilvusIndexBuiltSensor."
        )
    return event


def build_targets(hook, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets to poll for indexes just created (or found) from ``specs``."""
    targets, unnamed = poll_targets(specs, lite=True if hook.is_lite else None)
    for spec in unnamed:  # Milvus chose the name: ask which
        found = hook.list_index_specs(spec["collection_name"], spec["field_name"])
        if not found:
            raise MilvusIndexBuildError(f"Index on {spec['collection_name']}.{spec['field_name']} vanished right after it was created.")
        targets.append({"collection_name": spec["collection_name"], "index_name": found[0]["index_name"]})
    return targets
