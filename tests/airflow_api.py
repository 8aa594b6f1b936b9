"""What a test reads from a running Airflow: REST API (health, DAGs, runs, task instances) and task logs.

``AirflowDeployment`` (every component) and the browser test's UI server (the api-server
alone) both talk to Airflow through it. The simple auth manager makes every caller an admin.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FINISHED = {"success", "failed"}


@dataclass
class DagRun:
    """A finished (or timed-out) DAG run: its state and its task instances by task id."""

    dag_id: str
    run_id: str
    state: str
    seconds: float
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)


class AirflowApi:
    """REST calls against ``self.url``, task logs under ``self.home``; ``_check_alive`` lets a
    subclass fail a wait early."""

    url: str
    home: Path

    def api(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        """Call the REST API; return the decoded JSON body (None when empty).

        Reads are retried a few times: on two busy cores the API server can be slow to answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        for attempt in range(1, 4):
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    raw = resp.read()
                return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                raise RuntimeError(f"{method} {path} -> {exc.code}: {exc.read().decode(errors='replace')}") from None
            except OSError:  # a timeout or a refused connection
                if method != "GET" or attempt == 3:
                    raise
                time.sleep(2)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def parsed_dag_ids(self) -> set[str]:
        try:
            return {d["dag_id"] for d in self.api("GET", "/api/v2/dags?limit=100")["dags"]}
        except (RuntimeError, OSError):
            return set()

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run; return its run id."""
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """``{task_id: task instance}`` as the REST API returns it (state, try_number,
        hostname, pid, ...)."""
        tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti for ti in tis}

    def mapped_task_instances(self, dag_id: str, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        """``{(task_id, map_index): task instance}``, every map index of every task (page by
        page: the API returns at most ``[api] maximum_page_limit``, 100 by default, at a time)."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        while True:
            page = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(found)}")
            found.update({(ti["task_id"], ti["map_index"]): ti for ti in page["task_instances"]})
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def clear(self, dag_id: str, run_id: str, task_ids: list[tuple[str, int]]) -> None:
        """Clear these map indexes and everything downstream of them, as the UI's "Clear" does."""
        self.api("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", {
            "dry_run": False, "dag_run_id": run_id, "task_ids": [list(t) for t in task_ids],
            "include_downstream": True, "only_failed": False, "reset_dag_runs": True,
        })  # fmt: skip

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300, poll: float = 1) -> DagRun:
        """Poll a run until success or failed (or ``timeout``); return it with its tasks."""
        started = time.monotonic()
        state = self.run_state(dag_id, run_id)
        while state not in FINISHED and time.monotonic() - started < timeout:
            self._check_alive()
            time.sleep(poll)
            state = self.run_state(dag_id, run_id)
        return DagRun(dag_id, run_id, state, time.monotonic() - started, self.task_instances(dag_id, run_id))

    def run_dag(self, dag_id: str, conf: dict[str, Any] | None = None, timeout: float = 300) -> DagRun:
        """Trigger a run and wait for its end state."""
        started = time.monotonic()
        run = self.wait_for_run(dag_id, self.trigger(dag_id, conf), timeout)
        run.seconds = time.monotonic() - started
        return run

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, states: set[str],
                      timeout: float = 180, poll: float = 0.2) -> dict[str, Any]:
        """Poll a task instance until its state is in ``states``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            ti = self.task_instances(dag_id, run_id).get(task_id) or {}
            if ti.get("state") in states:
                return ti
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id}.{task_id} still {ti.get('state')!r} after {timeout}s, not in {states}")
            time.sleep(poll)

    # ------------------------------------------------------------------ task logs
    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        path = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}" / f"attempt={try_number}.log"
        return path.read_text(errors="replace") if path.exists() else f"(no log at {path})"

    def trigger_logs(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> dict[int, str]:
        """``{triggerer job id: what it logged running the task's trigger}``."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        prefix = f"attempt={try_number}.log.trigger."
        return {
            int(path.name[len(prefix):-len(".log")]): path.read_text(errors="replace")
            for path in folder.glob(f"{prefix}*.log")
        }

    def explain(self, run: DagRun, chars: int = 3000) -> str:
        """Task states and the logs of tasks that did not succeed: an assertion message."""
        lines = [f"{run.dag_id} {run.run_id}: {run.state} after {run.seconds:.0f}s"]
        for task_id, ti in run.tasks.items():
            lines.append(f"  {task_id}: {ti['state']} try {ti['try_number']} on {ti.get('hostname')}")
        for task_id, ti in run.tasks.items():
            if ti["state"] != "success":
                for attempt in range(1, max(1, ti["try_number"]) + 1):
                    log = self.task_log(run.dag_id, run.run_id, task_id, attempt)
                    lines.append(f"--- {task_id} attempt {attempt} ---\n{log[-chars:]}")
        return "\n".join(lines)

    def _check_alive(self) -> None:
        """Raise if what serves the API has died (nothing to check here)."""


__all__ = ["AirflowApi", "DagRun", "FINISHED"]
