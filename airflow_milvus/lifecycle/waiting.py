"""The one waiting path, shared by the operators, the sensor and the triggers.

As in Amazon's Glue family, waiting is one state machine (:class:`Wait`) driven by two loops:
:func:`poll` on a worker and :func:`apoll` on the triggerer, which runs the same ``check``
through ``asyncio.to_thread``. A waiter supplies only its one poll, ``check``: index builds
:func:`check_builds`, import jobs ``imports.jobs.check_jobs``. A poll's result is an event dict
whose ``status`` is ``success``, ``pending`` or ``error``; the state machine adds ``timeout``.
:func:`raise_for_event` turns a failed build event into the error every build waiter raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from airflow_milvus.errors import MilvusIndexBuildError
from airflow_milvus.planning.create import poll_targets
from airflow_milvus.planning.rules import build_outcome

log = logging.getLogger(__name__)
Event = dict[str, Any]


class Wait:
    """What happens after each poll: log it, then stop or say how long to pause.

    :param timeout: seconds from ``started_at``; None waits forever.
    :param started_at: epoch seconds the wait began (a trigger keeps it across triggerer
        restarts); None starts now, on the monotonic clock.
    :param describe: the line logged after each poll.
    :param timeout_message: the ``timeout`` event's message; default "not finished after Ns".
    """

    def __init__(
        self,
        *,
        timeout: float | None,
        poll_interval: float,
        describe: Callable[[Event], str],
        logger: Any = log,
        timeout_message: Callable[[Event], str] | None = None,
        started_at: float | None = None,
    ) -> None:
        self.timeout = None if timeout is None else float(timeout)
        self.poll_interval = float(poll_interval)
        self.describe, self.logger, self.timeout_message = describe, logger, timeout_message
        # Wall clock only when the start came from elsewhere (a serialized trigger).
        self._clock = time.monotonic if started_at is None else time.time
        self._started = self._clock() if started_at is None else float(started_at)

    def after(self, event: Event) -> tuple[Event, float | None]:
        """The event to return and None when the wait is over, else the event and the pause."""
        self.logger.info("%s", self.describe(event))
        if event.get("status") != "pending":
            return event, None
        if self.timeout is None:
            return event, self.poll_interval
        left = self.timeout - (self._clock() - self._started)
        if left <= 0:
            message = self.timeout_message(event) if self.timeout_message else f"not finished after {self.timeout:.0f}s"
            return {**event, "status": "timeout", "message": message}, None
        return event, min(self.poll_interval, left)


def poll(
    check: Callable[[], Event],
    *,
    timeout: float | None,
    poll_interval: float,
    describe: Callable[[Event], str],
    logger: Any = log,
    timeout_message: Callable[[Event], str] | None = None,
    started_at: float | None = None,
) -> Event:
    """Run ``check`` on this worker until its event is final or time runs out (then a
    ``timeout`` event with the last poll's statuses). Arguments after ``check``: :class:`Wait`'s."""
    machine = Wait(timeout=timeout, poll_interval=poll_interval, describe=describe, logger=logger,
                   timeout_message=timeout_message, started_at=started_at)
    while True:
        event, pause = machine.after(check())
        if pause is None:
            return event
        time.sleep(pause)


async def apoll(
    check: Callable[[], Event],
    *,
    timeout: float | None,
    poll_interval: float,
    describe: Callable[[Event], str],
    logger: Any = log,
    timeout_message: Callable[[Event], str] | None = None,
    started_at: float | None = None,
) -> Event:
    """:func:`poll` for the triggerer: ``check`` (a blocking pymilvus call) runs in a thread,
    so the event loop is never blocked."""
    machine = Wait(timeout=timeout, poll_interval=poll_interval, describe=describe, logger=logger,
                   timeout_message=timeout_message, started_at=started_at)
    while True:
        event, pause = machine.after(await asyncio.to_thread(check))
        if pause is None:
            return event
        await asyncio.sleep(pause)


# ---------------------------------------------------------------------- index builds
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


def describe_builds(event: Event) -> str:
    return f"Index builds ({event['message']}): {event['statuses']}"


def poll_builds(hook, targets: list[dict[str, Any]], *, timeout: float, poll_interval: float, logger=log) -> dict[str, Any]:
    """Poll until the builds succeed or ``timeout`` seconds pass; the last poll's event
    (``pending`` when time ran out). A failed or missing build raises."""
    event = poll(lambda: check_builds(hook, targets), timeout=timeout, poll_interval=poll_interval,
                 describe=describe_builds, logger=logger)
    if event["status"] == "timeout":  # documented as the last poll's (pending) event
        return {**event, "status": "pending", "message": "building"}
    return raise_for_event(event)


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
    targets, unnamed = poll_targets(specs, lite=hook.is_lite)
    for spec in unnamed:  # Milvus chose the name: ask which
        found = hook.list_index_specs(spec["collection_name"], spec["field_name"])
        if not found:
            raise MilvusIndexBuildError(f"Index on {spec['collection_name']}.{spec['field_name']} vanished right after it was created.")
        targets.append({"collection_name": spec["collection_name"], "index_name": found[0]["index_name"]})
    return targets
