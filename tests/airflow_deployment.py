"""A real, throwaway Airflow deployment for tests: every component its own process group.

``AirflowDeployment`` copies a migrated sqlite database into a fresh AIRFLOW_HOME and starts
``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as ``airflow standalone``
does, but each can be killed and restarted on its own. ``executor="CeleryExecutor"`` adds
Debian's ``redis-server`` and ``celery_workers`` workers, each with its own task-instance
hostname. Ports are free-picked (deployments run side by side under xdist). DAGs come from
``example_dags/`` (plus ``extra_dags``). REST calls and run waits are ``tests.airflow_api``'s.

    with AirflowDeployment(tmp_path, env={"AIRFLOW_CONN_MILVUS_DEFAULT": ...}) as airflow:
        run = airflow.run_dag("milvus_reindex", conf={"collection": "books"})
        assert run.state == "success", airflow.explain(run)

``stop()`` (and ``__exit__``) tear everything down even after a failure: SIGTERM to each
process group, SIGKILL after a grace period, then to any process still carrying this
deployment's marker in its environment (task processes, a shared ``milvus-lite server``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.airflow_api import AirflowApi, DagRun
from tests.airflow_home import migrated_database
from tests.milvus_server import free_port, free_ports

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO / "example_dags"
MARKER = "AIRFLOW_DEPLOYMENT_ID"  # set in every process we start, found again at teardown
HOSTNAME_VAR = "AIRFLOW_DEPLOYMENT_HOSTNAME"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def deployment_hostname() -> str:
    """``[core] hostname_callable`` of the deployment: two Celery workers on one machine
    would otherwise record the same task-instance hostname."""
    return os.environ.get(HOSTNAME_VAR) or socket.getfqdn()


class AirflowDeployment(AirflowApi):
    """Airflow's components as separate processes on one throwaway home.

    :param home: an empty directory for AIRFLOW_HOME, logs and the sqlite database.
    :param env: extra environment for every component (``AIRFLOW_CONN_*``,
        ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE``, ...). Nothing else of the test
        session's Airflow settings leaks in.
    :param executor: ``LocalExecutor`` (as ``airflow standalone``) or ``CeleryExecutor``.
    :param celery_workers: how many Celery workers to start (CeleryExecutor only).
    :param worker_concurrency: task slots per Celery worker.
    :param pools: pools to create, ``{name: slots}``; the example DAGs need ``milvus_reindex``.
    :param extra_dags: ``{file_name: source}`` DAG files to add beside the example DAGs;
        each file's DAG id must be its file name's stem.
    :param dag_ids: example DAGs that must be parsed before ``start()`` returns.
    :param components: which of ``COMPONENTS`` to start; ``("api-server",)`` serves the REST
        API and the UI alone (the browser test).
    :param python: the interpreter whose Airflow runs the components; another virtualenv's
        (``.venvs/low/bin/python``) serves that Airflow version's UI.
    """

    def __init__(
        self,
        home: Path,
        *,
        env: dict[str, str] | None = None,
        executor: str = "LocalExecutor",
        celery_workers: int = 2,
        worker_concurrency: int = 1,
        pools: dict[str, int] | None = None,
        extra_dags: dict[str, str] | None = None,
        dag_ids: tuple[str, ...] = ("milvus_reindex",),
        components: tuple[str, ...] = COMPONENTS,
        python: str = sys.executable,
    ) -> None:
        self.home = Path(home)
        self.python = str(python)
        self.components = components
        self.executor = executor
        self.celery_workers = celery_workers if executor == "CeleryExecutor" else 0
        self.worker_concurrency = worker_concurrency
        self.pools = {"milvus_reindex": 1} if pools is None else pools
        self.extra_dags = extra_dags or {}
        self.dag_ids = set(dag_ids) | {Path(name).stem for name in self.extra_dags}
        self.port, worker_logs, trigger_logs, redis = free_ports(4)
        self.url = f"http://127.0.0.1:{self.port}"
        self.id = secrets.token_hex(6)
        self._secret = secrets.token_hex(32)
        self._log_ports = {"WORKER": worker_logs, "TRIGGER": trigger_logs}
        self.extra_env = dict(env or {})
        self.procs: dict[str, subprocess.Popen] = {}
        self.killed: set[str] = set()  # components stopped on purpose (not a crash to report)
        self._redis_port = redis if self.celery_workers else None

    # ------------------------------------------------------------------ environment
    @property
    def dags_folder(self) -> Path:
        return self.home / "dags" if self.extra_dags else EXAMPLE_DAGS

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                MARKER: self.id,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.deployment_hostname",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
                "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                # Every component must sign and check the same tokens.
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret,
                "AIRFLOW__API__SECRET_KEY": self._secret,
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                # Free ports for the log servers: fixed defaults would collide across deployments.
                **{f"AIRFLOW__LOGGING__{kind}_LOG_SERVER_PORT": str(port) for kind, port in self._log_ports.items()},
                # Two shared cores: parse once, poll fast, reassign a dead triggerer's work soon.
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
                "AIRFLOW__CORE__PARALLELISM": "4",
                # A task gives up on an execution API call after 5 s by default: too short when
                # the cores are shared and sqlite is busy (tasks then die before they start).
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            }
        )
        if self._redis_port:
            env.update(
                AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{self._redis_port}/0",
                AIRFLOW__CELERY__RESULT_BACKEND=f"redis://127.0.0.1:{self._redis_port}/1",
                AIRFLOW__CELERY__WORKER_CONCURRENCY=str(self.worker_concurrency),
            )
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        """Run an ``airflow`` CLI command against this deployment; return the finished process."""
        proc = subprocess.run(
            [self.python, "-m", "airflow", *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and proc.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> AirflowDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 420) -> None:
        """Migrate, start every component, create the pools, wait until the DAGs are parsed."""
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        if self.extra_dags:
            self.dags_folder.mkdir(exist_ok=True)
            for path in EXAMPLE_DAGS.glob("*.py"):
                (self.dags_folder / path.name).symlink_to(path)
            for name, source in self.extra_dags.items():
                (self.dags_folder / name).write_text(source)
        shutil.copyfile(migrated_database(self.python), self.home / "airflow.db")
        if self._redis_port:
            self._spawn("redis", ["redis-server", "--port", str(self._redis_port), "--bind", "127.0.0.1",
                                  "--dir", str(self.home), "--save", "", "--appendonly", "no"])
        deadline = time.monotonic() + timeout
        # All at once: none of them needs another to start, and startup is mostly imports.
        for name in self.components:
            self.start_component(name)
        for n in range(1, self.celery_workers + 1):
            self.start_component(f"worker-{n}")
        self._wait(self.healthy, deadline, "api-server healthy", "api-server")
        for name, slots in self.pools.items():
            self.api("POST", "/api/v2/pools", {"name": name, "slots": slots, "description": "tests"})
        self._wait(lambda: self.dag_ids <= self.parsed_dag_ids(), deadline, f"DAGs {sorted(self.dag_ids)} parsed",
                   "dag-processor")
        if self.celery_workers:
            self._wait(self._celery_workers_up, deadline, "Celery workers ready", "worker-1")

    def start_component(self, name: str) -> None:
        """Start (or restart) ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer``
        or ``worker-<n>``."""
        args = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer"],
        }.get(name)
        env = {}
        if name.startswith("worker-"):
            args = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency",
                    str(self.worker_concurrency), "--pid", str(self.home / f"{name}.pid")]
            env = {HOSTNAME_VAR: name, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        if args is None:
            raise ValueError(f"Unknown component {name!r}")
        self.killed.discard(name)
        self._spawn(name, [self.python, "-m", "airflow", *args], env)

    def reconfigure(self, name: str, **env: str) -> None:
        """Roll out settings to a component: stop it (SIGTERM), then start it with ``env`` added.
        Components started later get them too."""
        self.kill_component(name, signal.SIGTERM)
        self.extra_env.update(env)
        self.start_component(name)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
        old = self.procs.get(name)
        if old is not None and old.poll() is None:
            raise RuntimeError(f"{name} is already running (pid {old.pid}); kill it first.")
        with open(self.log_path(name), "ab") as log:
            self.procs[name] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**self.env, **(env or {})},
                start_new_session=True,  # its own process group: a kill reaches its children too
            )

    def kill_component(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a component's whole process group (SIGKILL: a crash) and reap it."""
        proc = self.procs[name]
        self.killed.add(name)
        _killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop(self, grace: float = 10) -> None:
        """Stop every component and anything they left behind; safe to call twice."""
        for proc in self.procs.values():
            if proc.poll() is None:
                _killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        # Detached children (task processes, a shared milvus-lite server): TERM, then KILL.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            leftovers = self.leftover_pids()
            for pid in leftovers:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            wait_until = time.monotonic() + (5 if leftovers and sig == signal.SIGTERM else 0)
            while time.monotonic() < wait_until and self.leftover_pids():
                time.sleep(0.2)

    def leftover_pids(self) -> list[int]:
        """Live processes (other than this one) started by this deployment, found by marker."""
        marker = f"{MARKER}={self.id}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    # ------------------------------------------------------------------ tasks
    def kill_task_process(self, ti: dict[str, Any], sig: int = signal.SIGKILL) -> int:
        """Kill the process running a task instance (the pid it reported on start)."""
        pid = int(ti["pid"])
        os.kill(pid, sig)
        return pid

    # ------------------------------------------------------------------ diagnostics
    def log_path(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def component_log(self, name: str, chars: int = 3000) -> str:
        try:
            return self.log_path(name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ internals
    def _celery_workers_up(self) -> bool:
        # Celery prints "<node> ready." once it consumes from the broker.
        return all(" ready." in self.component_log(f"worker-{n}", chars=100_000) for n in range(1, self.celery_workers + 1))

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None and name not in self.killed:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.component_log(name)}")

    def _wait(self, ready, deadline: float, what: str, log_of: str) -> None:
        while not ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow deployment: no {what} in time.\n{self.component_log(log_of)}")
            time.sleep(0.5)


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


__all__ = ["AirflowDeployment", "DagRun", "deployment_hostname"]
