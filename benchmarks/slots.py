"""Deferred index waits hold no worker slot: shown on a real Airflow deployment.

Starts the API server, scheduler (LocalExecutor, ``parallelism = 1``: one worker slot),
DAG processor and triggerer as subprocesses on the benchmark's sqlite database. One DAG
run holds N deferrable ``MilvusIndexBuiltSensor`` tasks on one long index build; once all
N are deferred, a second DAG's task takes the only worker slot. The metadata database is
sampled meanwhile: N deferred tasks while the busy task runs, and never more than one
running task, means the waits hold 0 slots.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import data
from benchmarks.common import log

CONN = "bench_milvus"
NAME = "bench_slots"
WAIT_DAG, BUSY_DAG = "bench_slots_wait", "bench_slots_busy"
# Slow build parameters, so the build outlasts N task starts on a loaded 2-core machine.
SLOW_INDEX = {**data.INDEX, "params": {"M": 32, "efConstruction": 360}}

WAIT_SRC = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.sensors.index import MilvusIndexBuiltSensor

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    for i in range({n}):
        MilvusIndexBuiltSensor(
            task_id=f"wait_{{i}}", milvus_conn_id={conn!r}, collection_name={name!r},
            index_name="embedding", poke_interval={poll!r}, timeout=1800, deferrable=True,
        )
"""

BUSY_SRC = """
import os, time
import pendulum
from airflow.sdk import DAG, task

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    @task
    def busy():
        # Holds the only worker slot until the benchmark has sampled the task states.
        deadline = time.monotonic() + 300
        while not os.path.exists({flag!r}) and time.monotonic() < deadline:
            time.sleep(0.2)

    busy()
"""


def _free_port() -> int:
    from tests.milvus_server import free_port

    return free_port()


class Services:
    """The four Airflow services, each in its own process group (stopped by pid only)."""

    def __init__(self, home: Path, dags: Path):
        self.home, self.dags = home, dags
        self.port = _free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        secret = secrets.token_urlsafe(32)
        self.env = dict(
            os.environ,
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="1",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.port}/execution/",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__SECRET_KEY=secret,
            AIRFLOW__API_AUTH__JWT_SECRET=secret,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        )

    def start(self) -> None:
        logs = self.home / "service-logs"
        logs.mkdir(exist_ok=True)
        for name, args in (
            ("api-server", ["api-server", "--port", str(self.port), "--host", "127.0.0.1"]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
            ("triggerer", ["triggerer"]),
        ):
            out = open(logs / f"{name}.log", "ab")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log_dir = logs

    def api_ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v2/version", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow services exited: {dead}; logs in {self.log_dir}")

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


class Db:
    def __init__(self, path: Path):
        self.path = path

    def rows(self, sql: str, *args):
        for _ in range(20):
            try:
                with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5) as conn:
                    return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError:
                time.sleep(0.2)
        raise RuntimeError(f"sqlite stayed locked: {sql}")

    def states(self, run_id: str) -> dict[str, str | None]:
        return {f"{d}.{t}": s for d, t, s in self.rows(
            "SELECT dag_id, task_id, state FROM task_instance WHERE run_id = ?", run_id)}

    def times(self, run_id: str) -> dict[str, tuple[float | None, float | None]]:
        out = {}
        for task_id, start, end in self.rows("SELECT task_id, start_date, end_date FROM task_instance WHERE run_id = ?", run_id):
            out[task_id] = (_epoch(start), _epoch(end))
        return out

    def parsed_since(self, since: float) -> bool:
        rows = self.rows("SELECT last_parsed_time FROM dag WHERE dag_id IN (?, ?) AND is_paused = 0", WAIT_DAG, BUSY_DAG)
        return len(rows) == 2 and all((_epoch(t) or 0) > since for (t,) in rows)


def _epoch(value) -> float | None:
    if not value:
        return None
    value = str(value).replace("T", " ").split("+")[0]
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f" if "." in value else "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()


def _wait(what: str, check, timeout: float, services: Services, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.check_alive()
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"slots: timed out after {timeout:.0f}s waiting for {what}")


def measure(uri: str, home: Path, *, waits: int, rows: int, dim: int, poll: float) -> dict:
    dags = home / "slot_dags"
    dags.mkdir(exist_ok=True)
    flag = home / "slots-release-busy"
    flag.unlink(missing_ok=True)
    (dags / f"{WAIT_DAG}.py").write_text(WAIT_SRC.format(dag_id=WAIT_DAG, n=waits, conn=CONN, name=NAME, poll=poll))
    (dags / f"{BUSY_DAG}.py").write_text(BUSY_SRC.format(dag_id=BUSY_DAG, flag=str(flag)))
    log(f"slots: building {NAME} ({rows} rows, dim {dim}, no index)")
    data.make_collection(uri, NAME, rows=rows, dim=dim, index=None, load=False)

    db = Db(home / "airflow.db")
    services = Services(home, dags)
    watcher = data.Watcher(uri, NAME, interval=0.1)
    samples: list[dict] = []
    try:
        log("slots: starting api-server, scheduler (LocalExecutor, parallelism 1), dag-processor, triggerer")
        started, since = time.monotonic(), time.time()
        services.start()
        _wait("the API server", services.api_ready, 240, services)
        _wait("both DAGs parsed", lambda: db.parsed_since(since), 240, services)
        log(f"slots: services up after {time.monotonic() - started:.0f}s; starting the index build")
        watcher.start()
        watcher.arm_build()
        with data.client(uri) as c:
            c.create_index(NAME, data.index_params(c, SLOW_INDEX), sync=False)
        build_started = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S")
        wait_run, busy_run = f"bench_wait_{stamp}", f"bench_busy_{stamp}"
        services.cli("dags", "trigger", WAIT_DAG, "--run-id", wait_run)

        def all_deferred():
            if watcher.build_done_at is not None:
                raise RuntimeError(f"slots: the index build finished {watcher.build_done_at - build_started:.1f}s after it started, before every wait deferred; raise --slots-rows")
            states = db.states(wait_run)
            return sum(1 for s in states.values() if s == "deferred") == waits

        _wait(f"{waits} deferred waits", all_deferred, 600, services)
        log(f"slots: all {waits} waits deferred; triggering the busy task")
        services.cli("dags", "trigger", BUSY_DAG, "--run-id", busy_run)
        _wait("the busy task running", lambda: db.states(busy_run).get(f"{BUSY_DAG}.busy") == "running", 300, services)
        for _ in range(10):  # five seconds of samples with the one slot taken
            states = {**db.states(wait_run), **db.states(busy_run)}
            samples.append({
                "t": time.time(),
                "running": sorted(k for k, s in states.items() if s == "running"),
                "deferred": sum(1 for s in states.values() if s == "deferred"),
                "triggers": db.rows("SELECT COUNT(*) FROM [trigger]")[0][0],
                "build_done": watcher.build_done_at is not None,
            })
            time.sleep(0.5)
        flag.touch()
        log("slots: released the busy task; waiting for the build and the resumed waits")

        def finished():
            states = list(db.states(wait_run).values())
            return len(states) == waits and all(s in ("success", "failed", "upstream_failed") for s in states)

        _wait("the waits to finish", finished, 1800, services, interval=1)
        final = db.states(wait_run)
        times = db.times(wait_run)
    finally:
        flag.touch()
        watcher.stop()
        services.stop()
    done_at = watcher.build_done_at
    during_busy = [s for s in samples if s["running"] == [f"{BUSY_DAG}.busy"]]
    return {
        "waits": waits,
        "parallelism": 1,
        "rows": rows,
        "dim": dim,
        "index": SLOW_INDEX,
        "poll_interval_s": poll,
        "build_s": (done_at - build_started) if done_at else None,
        "samples": samples,
        "max_deferred_while_busy_runs": max((s["deferred"] for s in during_busy), default=0),
        "max_running": max((len(s["running"]) for s in samples), default=0),
        "build_done_during_samples": any(s["build_done"] for s in samples),
        "wait_states": final,
        "resume_after_build_s": sorted(round(end - done_at, 2) for _, end in times.values() if end and done_at),
    }
