"""One shared Milvus Lite server per ``.db``, for every process of its owner on the machine.

milvus-lite 3.x locks a ``.db`` to the process that opens it until that process exits, and
keeps the collections' load state inside that process. Airflow runs every task, the
triggerer, the API server and the CLI in processes of their own, so an in-process Lite loses
the load between tasks and leaves the file locked. Instead, the first process that needs a
``.db`` starts a server on it (:mod:`airflow_milvus.hooks.lite_serve`), detached, and every
process talks to that server over gRPC.

Who can reach it: only the ``.db``'s owner. The server listens on a Unix socket in an
owner-only directory (``$TMPDIR/airflow-milvus-<uid>/``), never on TCP, and no server is
started for a ``.db`` that another user owns.

Beside ``books.db`` live:

- ``books.db.server.lock``: an flock held while a server starts or stops, so two processes
  never start two servers and none finds one that is going away;
- ``books.db.server.json``: the running server's pid and socket, written once it answers;
- ``books.db.server.log``: its output.

The server outlives the task that started it, and with it the load state, until it has had
no request for ``[milvus] lite_server_idle_timeout`` seconds (0: never), is stopped
(:func:`stop_server`, ``python -m airflow_milvus lite stop DB``) or dies. The next call then
starts a new one, which sees the data but not the load state, as after a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airflow_milvus.errors import MilvusInputError, MilvusUnavailableError

START_TIMEOUT = 60.0
#: ``[milvus] lite_server_idle_timeout`` when the configuration does not set it (seconds).
DEFAULT_IDLE_TIMEOUT = 600


def _files(db: str) -> tuple[Path, Path, Path]:
    base = os.path.abspath(db)
    return Path(f"{base}.server.json"), Path(f"{base}.server.lock"), Path(f"{base}.server.log")


def idle_timeout() -> float:
    """``[milvus] lite_server_idle_timeout`` from Airflow's configuration, in seconds."""
    from airflow.configuration import conf

    value = conf.get("milvus", "lite_server_idle_timeout", fallback=str(DEFAULT_IDLE_TIMEOUT))
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise MilvusInputError(
            f"[milvus] lite_server_idle_timeout is {value!r}: set it to seconds without a request "
            "before the shared Milvus Lite server stops (0: never)."
        )
    return seconds


def socket_dir() -> Path:
    """This user's directory for Lite servers' sockets: owned by them, mode 0700."""
    path = Path(tempfile.gettempdir()) / f"airflow-milvus-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise MilvusInputError(
            f"{path} must be a directory that only you (uid {os.geteuid()}) can use, and it is not "
            f"(mode {stat.filemode(info.st_mode)}, owner uid {info.st_uid}): Milvus Lite's sockets go "
            "there. Remove it, or set TMPDIR to a directory of your own."
        )
    return path


def _socket_path(db: str) -> str:
    digest = hashlib.sha256(os.path.abspath(db).encode()).hexdigest()[:20]  # a socket path has 107 bytes at most
    return str(socket_dir() / f"{digest}.sock")


def check_owner(db: str) -> None:
    """Refuse a ``.db`` (or the directory it would be made in) that another user owns: its
    server would serve this user, and write files the owner cannot use."""
    path = Path(os.path.abspath(db))
    target = path if path.exists() else path.parent
    owner = target.stat().st_uid
    if owner != os.geteuid():
        raise MilvusInputError(
            f"Milvus Lite database {db} belongs to uid {owner}, not to you (uid {os.geteuid()}): a shared "
            "Lite server serves only the .db's owner. Run as its owner, or copy the .db and connect to the copy."
        )


def server_info(db: str) -> dict | None:
    """``{"pid", "socket", "uri"}`` of the server recorded for ``db``, or None."""
    state, _, _ = _files(db)
    try:
        info = json.loads(state.read_text())
        return {"pid": int(info["pid"]), "socket": str(info["socket"]), "uri": f"unix:{info['socket']}"}
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


def _answers(socket_path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1)
            sock.connect(socket_path)
            return True
    except OSError:
        return False


def _running(db: str) -> dict | None:
    info = server_info(db)
    return info if info and _pid_alive(info["pid"]) and _answers(info["socket"]) else None


def ensure_server(db: str, *, timeout: float = START_TIMEOUT) -> str:
    """The ``unix:`` URI of the server for ``db``, starting it if needed."""
    info = _running(db)
    if info:
        return info["uri"]
    check_owner(db)
    state, lock, _ = _files(db)
    with open(lock, "a+") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # another process may be starting or stopping it right now
        try:
            info = _running(db)
            if info:
                return info["uri"]
            stale = server_info(db)
            if stale and _pid_alive(stale["pid"]):  # alive but not answering: hung; replace it
                _terminate(stale["pid"], grace=5)
            info = _start(db, timeout)
            tmp = state.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"pid": info["pid"], "socket": info["socket"], "db": os.path.abspath(db)}))
            os.replace(tmp, state)
            return info["uri"]
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _start(db: str, timeout: float) -> dict:
    state, lock, log_path = _files(db)
    sock = _socket_path(db)
    command = [
        sys.executable, "-m", "airflow_milvus.hooks.lite_serve", "--data-dir", os.path.abspath(db), "--socket", sock,
        "--idle-timeout", str(idle_timeout()), "--state-file", str(state), "--lock-file", str(lock),
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the task's process group
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _start_failure(db, log_path)
        if _answers(sock):
            return {"pid": proc.pid, "socket": sock, "uri": f"unix:{sock}"}
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
