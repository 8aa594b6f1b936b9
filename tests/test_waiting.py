"""The generic poller of lifecycle/waiting.py with fake checks: no Milvus."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from airflow_milvus.errors import MilvusIndexBuildError
from airflow_milvus.lifecycle import waiting


def checks(*statuses: str):
    """A check answering these statuses in turn (the last one for ever), counting its calls."""
    answers = list(statuses)
    calls = []

    def check() -> dict:
        calls.append(threading.current_thread().name)
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        return {"status": status, "message": status, "statuses": {"n": len(calls)}}

    return check, calls


def describe(event: dict) -> str:
    return f"poll {event['statuses']['n']}: {event['status']}"


@pytest.mark.parametrize("final", ["success", "error"])
def test_a_final_event_ends_the_wait_and_every_poll_is_logged(final, caplog):
    check, calls = checks("pending", "pending", final)
    with caplog.at_level(logging.INFO, logger=waiting.log.name):
        event = waiting.poll(check, timeout=10, poll_interval=0.01, describe=describe)
    assert (event["status"], len(calls)) == (final, 3)
    assert [r.getMessage() for r in caplog.records] == ["poll 1: pending", "poll 2: pending", f"poll 3: {final}"]


def test_time_running_out_is_a_timeout_event_with_the_last_statuses():
    check, calls = checks("pending")
    started = time.monotonic()
    event = waiting.poll(check, timeout=0.25, poll_interval=10, describe=describe,
                         timeout_message=lambda e: f"gave up after {len(calls)} polls")
    took = time.monotonic() - started
    # The pause is cut to the time left: one sleep of 0.25 s, not of poll_interval.
    assert took < 2, took
    assert event == {"status": "timeout", "message": "gave up after 2 polls", "statuses": {"n": 2}}


def test_zero_timeout_checks_once_and_has_a_default_message():
    check, calls = checks("pending")
    event = waiting.poll(check, timeout=0, poll_interval=1, describe=describe)
    assert len(calls) == 1 and event["status"] == "timeout" and event["message"] == "not finished after 0s"


def test_started_at_in_the_past_counts_against_the_timeout():
    """A trigger restarted on another triggerer keeps its deadline (wall clock from started_at)."""
    check, calls = checks("pending")
    event = asyncio.run(waiting.apoll(check, timeout=60, poll_interval=1, describe=describe, started_at=time.time() - 61))
    assert len(calls) == 1 and event["status"] == "timeout"


def test_no_timeout_waits_until_final():
    check, calls = checks("pending", "pending", "pending", "success")
    event = asyncio.run(waiting.apoll(check, timeout=None, poll_interval=0.01, describe=describe))
    assert event["status"] == "success" and len(calls) == 4


def test_apoll_runs_the_check_in_a_thread_and_keeps_the_loop_free():
    ticks = []

    def blocking() -> dict:
        time.sleep(0.3)  # a blocking pymilvus call
        return {"status": "success", "message": "done", "statuses": {"n": 1}, "thread": threading.current_thread().name}

    async def main():
        async def ticker():
            while True:
                ticks.append(1)
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        event = await waiting.apoll(blocking, timeout=5, poll_interval=0.01, describe=describe)
        task.cancel()
        return event

    event = asyncio.run(main())
    assert event["thread"] != threading.main_thread().name
    assert len(ticks) > 5  # the loop ticked while the check slept


class FakeHook:
    """index_build_status answers from a list; is_lite for build_targets."""

    def __init__(self, *states: dict) -> None:
        self.states = list(states)

    def index_build_status(self, collection_name, index_name):
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


TARGET = [{"collection_name": "c", "index_name": "v"}]
BUILDING = {"state": "InProgress", "pending_index_rows": 5}
BUILT = {"state": "Finished", "pending_index_rows": 0}


def test_poll_builds_keeps_its_contract():
    done = waiting.poll_builds(FakeHook(BUILDING, BUILT), TARGET, timeout=5, poll_interval=0.01)
    assert done["status"] == "success" and done["statuses"] == {"c.v": BUILT}
    # Out of time: the last poll's pending event, not an error (the deferrable operator then defers).
    late = waiting.poll_builds(FakeHook(BUILDING), TARGET, timeout=0.05, poll_interval=0.01)
    assert late == {"status": "pending", "message": "building", "statuses": {"c.v": BUILDING}}
    with pytest.raises(MilvusIndexBuildError, match="out of disk"):
        waiting.poll_builds(FakeHook(BUILDING, {"state": "Failed", "fail_reason": "out of disk"}), TARGET,
                            timeout=5, poll_interval=0.01)
    with pytest.raises(MilvusIndexBuildError, match=r"not finished after 0s"):
        waiting.wait_for_builds(FakeHook(BUILDING), TARGET, timeout=0, poll_interval=0.01)
