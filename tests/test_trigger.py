"""MilvusIndexBuiltTrigger: serializable, non-blocking, success/error/timeout events."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_milvus.errors import MilvusIndexBuildError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.sensors.index import MilvusIndexBuiltSensor
from airflow_milvus.triggers.index import MilvusIndexBuiltTrigger
from tests.helpers import make_collection


def first_event(trigger: MilvusIndexBuiltTrigger):
    async def _run():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(_run())


def test_serialize_round_trip():
    trigger = MilvusIndexBuiltTrigger(targets=[{"collection_name": "c", "index_name": "vec"}], milvus_conn_id="m",
                                      poll_interval=2, timeout=30, payload={"result": {"created": []}})
    path, kwargs = trigger.serialize()
    assert path == "airflow_milvus.triggers.index.MilvusIndexBuiltTrigger"
    clone = MilvusIndexBuiltTrigger(**kwargs)
    assert clone.serialize() == (path, kwargs)
    assert kwargs["started_at"] == trigger.started_at  # a restarted triggerer keeps the deadline


def test_success_event_on_real_milvus(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name)
    event = first_event(MilvusIndexBuiltTrigger(targets=[{"collection_name": collection_name, "index_name": "vec"}],
                                                milvus_conn_id=milvus_conn, poll_interval=0.2, payload={"k": 1}))
    assert event["status"] == "success" and event["payload"] == {"k": 1}
    assert event["statuses"][f"{collection_name}.vec"]["state"] == "Finished"


def test_missing_index_is_an_error_event(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name)
    event = first_event(MilvusIndexBuiltTrigger(targets=[{"collection_name": collection_name, "index_name": "nope"}],
                                                milvus_conn_id=milvus_conn, poll_interval=0.2))
    assert event["status"] == "error" and "does not exist" in event["message"]


class _Stub(MilvusHook):
    """A real server cannot be made to fail or stall a build on demand: stub the status only."""

    states: list[dict] = []

    def index_build_status(self, collection_name, index_name):
        time.sleep(0.05)  # a blocking call, as pymilvus makes
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def close(self):
        pass


@pytest.fixture
def stub_hook(monkeypatch):
    monkeypatch.setattr("airflow_milvus.hooks.milvus.MilvusHook", _Stub)
    return _Stub


def test_failed_build_carries_the_fail_reason(stub_hook):
    stub_hook.states = [{"state": "InProgress", "pending_index_rows": 10}, {"state": "Failed", "fail_reason": "out of disk"}]
    event = first_event(MilvusIndexBuiltTrigger(targets=[{"collection_name": "c", "index_name": "v"}], poll_interval=0.01))
    assert event["status"] == "error" and "out of disk" in event["message"]


def test_finished_with_pending_rows_is_not_done_and_times_out(stub_hook):
    stub_hook.states = [{"state": "Finished", "pending_index_rows": 3}]
    event = first_event(MilvusIndexBuiltTrigger(targets=[{"collection_name": "c", "index_name": "v"}], poll_interval=0.05, timeout=0.3))
    assert event["status"] == "timeout"


def test_polling_does_not_block_the_event_loop(monkeypatch):
    ticks = []
    seen_during_poll = []

    class Blocking(_Stub):
        def index_build_status(self, collection_name, index_name):
            before = len(ticks)
            time.sleep(0.3)  # a blocking pymilvus call
            seen_during_poll.append(len(ticks) - before)
            return {"state": "Finished", "pending_index_rows": 0}

    monkeypatch.setattr("airflow_milvus.hooks.milvus.MilvusHook", Blocking)

    async def main():
        async def ticker():
            while True:
                ticks.append(1)
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        async for event in MilvusIndexBuiltTrigger(targets=[{"collection_name": "c", "index_name": "v"}]).run():
            task.cancel()
            return event.payload

    assert asyncio.run(main())["status"] == "success"
    # Had the poll run on the loop, the ticker could not have advanced while it slept.
    assert seen_during_poll and seen_during_poll[0] > 0


def test_sensor_raises_on_failed_build():
    # No stub_hook fixture: a module first imported while MilvusHook is patched would keep the stub
    # for the rest of the session (the sensor test of test_operators_index then met it in CI).
    _Stub.states = [{"state": "Failed", "fail_reason": "bad params"}]
    sensor = MilvusIndexBuiltSensor(task_id="s", collection_name="c", index_name="v")
    sensor.hook = _Stub()  # overrides the cached property
    with pytest.raises(MilvusIndexBuildError, match="bad params"):
        sensor.poke({})


# ---------------------------------------------------------------------- import jobs, same poller
def test_import_trigger_serialization_is_unchanged():
    from airflow_milvus.triggers.bulk_import import MilvusImportJobTrigger

    trigger = MilvusImportJobTrigger(job_ids=["7", 8], milvus_conn_id="m", timeout=30, started_at=1.5, payload={"k": 1})
    path, kwargs = trigger.serialize()
    assert path == "airflow_milvus.triggers.bulk_import.MilvusImportJobTrigger"
    assert kwargs == {"job_ids": [7, 8], "milvus_conn_id": "m", "poll_interval": 5.0, "timeout": 30.0,
                      "started_at": 1.5, "payload": {"k": 1}, "need_slot": False}
    assert MilvusImportJobTrigger(**kwargs).serialize() == (path, kwargs)
    # A trigger an earlier version serialized (no need_slot) still resumes after an upgrade: all jobs.
    earlier = {k: v for k, v in kwargs.items() if k != "need_slot"}
    assert MilvusImportJobTrigger(**earlier).serialize() == (path, kwargs)


class _ImportStub(_Stub):
    """Import job states on demand: a real server fails a job only for a bad file, and never stalls one."""

    jobs: list[dict] = []

    def import_job_status(self, job_id):
        time.sleep(0.05)  # a blocking call, as pymilvus makes
        state = self.jobs.pop(0) if len(self.jobs) > 1 else self.jobs[0]
        return {"job_id": job_id, "progress": 0, "rows": 0, "files": "a.json", "reason": "", **state}


@pytest.mark.parametrize(
    ("jobs", "timeout", "status", "message"),
    [
        ([{"state": 0, "state_name": "Pending"}, {"state": 1, "state_name": "Failed", "reason": "bad row"}], None,
         "error", "import job 3 of a.json failed: bad row"),
        ([{"state": 2, "state_name": "Started"}], 0.2, "timeout", "Import jobs not finished after 0s"),
        ([{"state": 2, "state_name": "Started"}, {"state": 6, "state_name": "Completed", "rows": 9}], None,
         "success", "all imports completed"),
    ],
)
def test_import_trigger_events(monkeypatch, jobs, timeout, status, message):
    from airflow_milvus.triggers.bulk_import import MilvusImportJobTrigger

    monkeypatch.setattr("airflow_milvus.hooks.milvus.MilvusHook", _ImportStub)
    _ImportStub.jobs = jobs
    event = first_event(MilvusImportJobTrigger(job_ids=[3], poll_interval=0.01, timeout=timeout, payload={"k": 1}))
    assert (event["status"], event["message"], event["payload"]) == (status, message, {"k": 1})
    assert [s["job_id"] for s in event["statuses"]] == [3]
