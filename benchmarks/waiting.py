"""Waiting: how soon a finished build is noticed, and how many worker slots a wait holds.

Notice delay: a watcher thread polls the index every 0.1 s from its own client and stamps
the moment the build is done (Finished, no pending rows: the provider's own definition).
The delay is the waiting task's end_date minus that moment, for the create operator's
worker wait, the sensor in poke mode, and the deferrable sensor (dag.test() runs the
trigger in-process).

Worker slots: see ``slots.py`` (a real scheduler and triggerer).
"""

from __future__ import annotations

import time

from benchmarks import data
from benchmarks.common import log, median

CONN = "bench_milvus"
NAME = "bench_wait"

SENSOR_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.sensors.index import MilvusIndexBuiltSensor

with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    MilvusIndexBuiltSensor(
        task_id="wait", milvus_conn_id={conn!r}, collection_name={name!r}, index_name="embedding",
        poke_interval={poll!r}, timeout=900, deferrable={deferrable!r},
    )
"""

OPERATOR_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.index import MilvusCreateIndexOperator

with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    MilvusCreateIndexOperator(
        task_id="wait", milvus_conn_id={conn!r}, collection_name={name!r}, field_name="embedding",
        index_name="embedding", index_type={index_type!r}, metric_type={metric!r}, index_params={params!r},
        wait_for_completion=True, poll_interval={poll!r}, timeout=900,
    )
"""


class _NoticeRecorder:
    """Stamp the first poll that sees the build done, in the operator, sensor and trigger."""

    def __init__(self) -> None:
        self.noticed_at: float | None = None

    def install(self) -> None:
        import airflow_milvus.lifecycle.waiting as waiting

        # The operators, the sensor and the trigger all poll through waiting.check_builds.
        for module in (waiting,):
            original = module.check_builds
            if getattr(original, "_bench_notice", False):
                continue

            def wrapper(*args, _orig=original, **kwargs):
                event = _orig(*args, **kwargs)
                if event.get("status") == "success" and self.noticed_at is None:
                    self.noticed_at = time.time()
                return event

            wrapper._bench_notice = True
            module.check_builds = wrapper


def _drop_index(uri: str) -> None:
    with data.client(uri) as c:
        if c.get_load_state(NAME)["state"].name != "NotLoad":
            c.release_collection(NAME)
        if c.list_indexes(NAME):
            c.drop_index(NAME, "embedding")


def _start_build(uri: str) -> None:
    with data.client(uri) as c:
        c.create_index(NAME, data.index_params(c), sync=False)


def measure(uri: str, *, rows: int, dim: int, poll: float, repeats: int) -> dict:
    from tests.dag_runner import run_dag, write_dag

    log(f"waiting: building {NAME} ({rows} rows, dim {dim}, no index)")
    data.make_collection(uri, NAME, rows=rows, dim=dim, index=None, load=False)
    spec = data.INDEX
    kinds = {
        "create operator, worker wait": (
            write_dag(OPERATOR_DAG.format(conn=CONN, name=NAME, poll=poll, index_type=spec["index_type"], metric=spec["metric_type"], params=spec["params"]), "bench_wait_operator"),
            False,
        ),
        "sensor, poke mode": (write_dag(SENSOR_DAG.format(conn=CONN, name=NAME, poll=poll, deferrable=False), "bench_wait_poke"), True),
        "sensor, deferrable (trigger)": (write_dag(SENSOR_DAG.format(conn=CONN, name=NAME, poll=poll, deferrable=True), "bench_wait_deferrable"), True),
    }
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    recorder = _NoticeRecorder()
    recorder.install()
    watcher = data.Watcher(uri, NAME, interval=0.1)
    watcher.start()
    try:
        for rep in range(repeats):
            for kind, (dag_id, external_build) in kinds.items():
                _drop_index(uri)
                watcher.arm_build()
                recorder.noticed_at = None
                started = time.time()
                if external_build:
                    _start_build(uri)
                dag_run, tis = run_dag(dag_id)
                ti = tis["wait"]
                if dag_run.state != "success":
                    raise RuntimeError(f"{kind}: the DAG run ended {dag_run.state}")
                deadline = time.time() + 5
                while watcher.build_done_at is None and time.time() < deadline:
                    time.sleep(0.05)
                done_at, ended = watcher.build_done_at, ti.end_date.timestamp()
                noticed = recorder.noticed_at
                sample = {
                    "build_s": (done_at - started) if done_at else None,
                    "notice_s": (noticed - done_at) if done_at and noticed else None,
                    "delay_s": (ended - done_at) if done_at else None,
                    "task_start_after_build": bool(done_at and ti.start_date.timestamp() > done_at),
                }
                results[kind].append(sample)
                log(f"waiting: {kind} round {rep + 1}: build {sample['build_s']:.1f}s, noticed {sample['notice_s']}, returned {sample['delay_s']:.2f}s")
    finally:
        watcher.stop()
    out = {"poll_interval_s": poll, "rows": rows, "dim": dim, "kinds": {}}
    for kind, samples in results.items():
        valid = [s for s in samples if s["delay_s"] is not None and s["notice_s"] is not None and not s["task_start_after_build"]]
        delays = [s["delay_s"] for s in valid]
        notices = [s["notice_s"] for s in valid]
        out["kinds"][kind] = {
            "samples": samples,
            "median_notice_s": median(notices),
            "max_notice_s": max(notices) if notices else None,
            "median_delay_s": median(delays),
            "max_delay_s": max(delays) if delays else None,
            "median_build_s": median([s["build_s"] for s in samples if s["build_s"]]),
            "noticed_within_one_poll": bool(notices) and max(notices) <= poll,
        }
    return out
