"""Run `airflow api-server` (REST API + React UI) as a subprocess with its own AIRFLOW_HOME."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.milvus_server import free_port


class AirflowApiServer:
    """A throwaway Airflow home (sqlite, migrated) served on a free localhost port.

    The simple auth manager makes every visitor an admin, so the browser needs no login;
    connection testing is switched on (Airflow disables it by default).
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "api-server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        # Drop the test session's Airflow settings and AIRFLOW_CONN_* variables: this
        # server must see only its own database.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.home / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.home}/airflow.db",
            AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        )
        return env

    def _airflow(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "airflow", *args]

    def start(self, timeout: float = 120) -> None:
        (self.home / "dags").mkdir(parents=True, exist_ok=True)
        subprocess.run(self._airflow("db", "migrate"), check=True, capture_output=True, env=self.env, timeout=300)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self._airflow("api-server", "--host", "127.0.0.1", "--port", str(self.port)),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # own process group: stop() reaches uvicorn's workers too
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"airflow api-server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._healthy():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"airflow api-server not healthy after {timeout}s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
