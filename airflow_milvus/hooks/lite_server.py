"""One shared ``milvus-lite server`` per Milvus Lite ``.db``, for every process on the machine.

milvus-lite 3.x locks a ``.db`` to the process that opens it until that process exits, and
keeps the collections' load state inside that process. Airflow runs every task, the
triggerer, the API server and the CLI in processes of their own, so an in-process Lite loses
the load between tasks and leaves the file locked. Instead, the first process that needs a
``.db`` starts ``python -m milvus_lite server`` on it, detached, and every process talks to
that server over gRPC on 127.0.0.1.

Beside ``books.db`` live:

- ``books.db.server.lock``: an flock held only while a server is being started, so two
  processes never start two servers;
- ``books.db.server.json``: the running server's pid and port, written once it answers;
- ``books.db.server.log``: its output.

The server outlives the task that started it, and with it the load state. It runs until it
is stopped (:func:`stop_server`, ``python -m airflow_milvus lite stop DB``) or dies; the next
call then starts a new one, which sees the data but not the load state, as after a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from airflow_milvus.errors import MilvusInputError, MilvusUnavailableError

START_TIMEOUT = 60.0


def _files(db: str) -> tuple[Path, Path, Path]:
    base = os.path.abspath(db)
    return Path(f"{base}.server.json"), Path(f"{base}.server.lock"), Path(f"{base}.server.log")


def server_info(db: str) -> dict | None:
    """``{"pid", "port", "uri"}`` of the server recorded for ``db``, or None."""
    state, _, _ = _files(db)
    try:
        info = json.loads(state.read_text())
        return {"pid": int(info["pid"]), "port": int(info["port"]), "uri": f"http://127.0.0.1:{int(info['port'])}"}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by the process that started it) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _running(db: str) -> dict | None:
    info = server_info(db)
    return info if info and _pid_alive(info["pid"]) and _answers(info["port"]) else None


def ensure_server(db: str, *, timeout: float = START_TIMEOUT) -> str:
    """The ``http://127.0.0.1:PORT`` URI of the server for ``db``, starting it if needed."""
    info = _running(db)
    if info:
        return info["uri"]
    state, lock, _ = _files(db)
    with open(lock, "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # another process may be starting it right now
        try:
            info = _running(db)
            if info:
                return info["uri"]
            stale = server_info(db)
            if stale and _pid_alive(stale["pid"]):  # alive but not answering: hung; replace it
                _terminate(stale["pid"], grace=5)
            info = _start(db, timeout)
            tmp = state.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"pid": info["pid"], "port": info["port"], "db": os.path.abspath(db)}))
            os.replace(tmp, state)
            return info["uri"]
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(db: str, timeout: float) -> dict:
    _, _, log_path = _files(db)
    port = _free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", os.path.abspath(db), "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the task's process group
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _start_failure(db, log_path)
        if _answers(port):
            return {"pid": proc.pid, "port": port, "uri": f"http://127.0.0.1:{port}"}
        time.sleep(0.1)
    _terminate(proc.pid, grace=2)
    raise MilvusUnavailableError(f"Milvus Lite server for {db} did not answer within {timeout:.0f}s; see {log_path}.")


def _start_failure(db: str, log_path: Path) -> Exception:
    tail = log_path.read_text(errors="replace")[-2000:]
    if "DataDirLocked" in tail or "locked" in tail.lower():
        return MilvusInputError(
            f"Milvus Lite database {db} is locked by another process that opened it directly "
            "(for example pymilvus.MilvusClient on the .db path). Stop that process, or connect it "
            f"through the shared server instead; see {log_path}."
        )
    last = tail.strip().splitlines()[-1] if tail.strip() else "no output"
    return MilvusUnavailableError(f"Milvus Lite server for {db} exited at start: {last} (log: {log_path}).")


def _terminate(pid: int, *, grace: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if this process started it


def stop_server(db: str, *, grace: float = 10.0) -> bool:
    """Stop the shared server of ``db``; True if one was running."""
    state, lock, _ = _files(db)
    info = server_info(db)
    running = bool(info and _pid_alive(info["pid"]))
    if running:
        _terminate(info["pid"], grace=grace)
    with contextlib.suppress(FileNotFoundError):
        state.unlink()
    return running
