"""Milvus Lite across processes: one shared server per .db (airflow_milvus/hooks/lite_server.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.hooks import lite_server
from airflow_milvus.hooks.milvus import MilvusHook
from tests.conftest import REPO, conn_env_value
from tests.dag_runner import run_dag, write_dag, xcom
from tests.helpers import load_state, make_collection

pytestmark = pytest.mark.slow  # fresh interpreters, as Airflow's task processes are


def in_new_process(code: str, uri: str, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (as an Airflow task process would be) with ``hook`` on ``uri``."""
    prelude = """
import json, sys
from airflow_milvus.hooks.milvus import MilvusHook
hook = MilvusHook("lite_test")
"""
    env = {**os.environ, "AIRFLOW_CONN_LITE_TEST": conn_env_value(uri), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(prelude) + textwrap.dedent(code)], env=env,
                         capture_output=True, text=True, timeout=180)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_load_state_survives_the_process_that_loaded_it(lite_uri, collection_name):
    make_collection(lite_uri, collection_name, rows=50)  # released, with an index
    in_new_process(f"hook.load_collection({collection_name!r}); hook.close()", lite_uri)
    seen = in_new_process(f"print(hook.get_load_state({collection_name!r}))", lite_uri)
    assert seen.stdout.strip().splitlines()[-1] == "Loaded"
    assert load_state(lite_uri, collection_name) == "Loaded"  # and this process sees it too


def test_processes_starting_at_once_share_one_server(lite_uri):
    code = "print(json.dumps(hook.list_collections())); from airflow_milvus.hooks.lite_server import server_info; print(server_info(hook.uri)['pid'])"
    env = {**os.environ, "AIRFLOW_CONN_LITE_TEST": conn_env_value(lite_uri), "PYTHONPATH": str(REPO)}
    prelude = "import json\nfrom airflow_milvus.hooks.milvus import MilvusHook\nhook = MilvusHook('lite_test')\n"
    procs = [subprocess.Popen([sys.executable, "-c", prelude + code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    pids = {o[0].strip().splitlines()[-1] for o in outs}
    assert pids == {str(lite_server.server_info(lite_uri)["pid"])}  # one server, started once


def test_no_task_process_keeps_the_db_locked(lite_uri, collection_name):
    make_collection(lite_uri, collection_name, rows=10)
    in_new_process(f"hook.get_load_state({collection_name!r})", lite_uri)
    holders = _lock_holders(lite_uri)
    assert holders == {lite_server.server_info(lite_uri)["pid"]}, holders


def _lock_holders(db: str) -> set[int]:
    """PIDs holding the flock on the .db's LOCK file, read from /proc/locks."""
    inode = os.stat(os.path.join(db, "LOCK")).st_ino
    pids = set()
    with open("/proc/locks") as locks:
        for line in locks:
            parts = line.split()
            if "FLOCK" in parts and parts[-3].endswith(f":{inode}"):
                pids.add(int(parts[-4]))
    return pids


def test_a_dead_server_is_replaced_and_the_data_kept(lite_uri, collection_name):
    make_collection(lite_uri, collection_name, rows=30)
    old = lite_server.server_info(lite_uri)
    os.kill(old["pid"], signal.SIGKILL)
    out = in_new_process(f"print(hook.row_count({collection_name!r}))", lite_uri)
    assert out.stdout.strip().splitlines()[-1] == "30"
    new = lite_server.server_info(lite_uri)
    assert new["pid"] != old["pid"]


def test_a_db_opened_directly_elsewhere_is_a_clear_error(lite_uri, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pymilvus import MilvusClient; c = MilvusClient({lite_uri!r}); print('open', flush=True); import time; time.sleep(120)"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(MilvusInputError, match="locked by another process that opened it directly"):
            lite_server.ensure_server(lite_uri, timeout=30)
        assert lite_server.server_info(lite_uri) is None  # nothing half-started is recorded
    finally:
        holder.kill()
        holder.wait()


def test_stop_server(lite_uri):
    uri = lite_server.ensure_server(lite_uri)
    pid = lite_server.server_info(lite_uri)["pid"]
    assert uri == f"unix:{lite_server.server_info(lite_uri)['socket']}"
    assert lite_server.stop_server(lite_uri) is True
    assert lite_server.server_info(lite_uri) is None and not lite_server._pid_alive(pid)
    assert lite_server.stop_server(lite_uri) is False


def test_lite_snapshot_has_the_params_of_an_index_built_by_the_hook(lite_uri, monkeypatch, collection_name):
    """An index built through MilvusHook.create_index (not the create operator) is recorded beside
    the .db, so the drop snapshot on Lite, which reports no params, still holds them (in another
    process: the drop task's; and for the CLI too)."""
    make_collection(lite_uri, collection_name, rows=20, indexes=())
    monkeypatch.setenv("AIRFLOW_CONN_LITE_SNAP", conn_env_value(lite_uri))
    dag_id = write_dag(f'''
import pendulum
from airflow.sdk import DAG, task
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.index import MilvusDropIndexOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    @task
    def build():
        with MilvusHook("lite_snap") as hook:
            hook.create_index({{"collection_name": "{collection_name}", "field_name": "vec", "index_name": "vec",
                               "index_type": "HNSW", "metric_type": "L2", "params": {{"M": 12, "efConstruction": 48}}}})
    build() >> MilvusDropIndexOperator(task_id="drop", milvus_conn_id="lite_snap", collection_name="{collection_name}")
''')
    dr, tis = run_dag(dag_id)
    assert dr.state == "success", {k: str(v.state) for k, v in tis.items()}
    (dropped,) = xcom(dr, "drop")["dropped"]
    assert dropped["params"] == {"M": 12, "efConstruction": 48}
    assert json.dumps(dropped)  # JSON-safe


# ------------------------------------------------------------------ idle stop
def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not lite_server._pid_alive(pid):
            return True
        time.sleep(0.2)
    return False


def test_an_idle_server_stops_keeps_the_data_and_the_next_use_starts_one(lite_uri, collection_name, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MILVUS__LITE_SERVER_IDLE_TIMEOUT", "3")
    make_collection(lite_uri, collection_name, rows=40)
    hook = MilvusHook("lite_idle")
    monkeypatch.setenv("AIRFLOW_CONN_LITE_IDLE", conn_env_value(lite_uri))
    hook.load_collection(collection_name)
    first = lite_server.server_info(lite_uri)
    for _ in range(4):  # requests keep it alive past its idle timeout
        assert hook.get_load_state(collection_name) == "Loaded"
        time.sleep(1.5)
    assert lite_server.server_info(lite_uri)["pid"] == first["pid"]

    assert _wait_gone(first["pid"], 30), "the server did not stop after 3 s without a request"
    assert lite_server.server_info(lite_uri) is None and not os.path.exists(first["socket"])
    # The same hook, its client cached on the old socket, carries on: a new server, the data kept,
    # the load state gone with the old server.
    assert hook.row_count(collection_name) == 40
    assert hook.get_load_state(collection_name) == "NotLoad"
    assert lite_server.server_info(lite_uri)["pid"] != first["pid"]
    hook.close()


def test_idle_timeout_zero_is_never_and_a_bad_value_is_refused(lite_uri, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MILVUS__LITE_SERVER_IDLE_TIMEOUT", "0")
    assert lite_server.idle_timeout() == 0
    monkeypatch.delenv("AIRFLOW__MILVUS__LITE_SERVER_IDLE_TIMEOUT")
    assert lite_server.idle_timeout() == lite_server.DEFAULT_IDLE_TIMEOUT
    for bad in ("-5", "ten minutes"):
        monkeypatch.setenv("AIRFLOW__MILVUS__LITE_SERVER_IDLE_TIMEOUT", bad)
        with pytest.raises(MilvusInputError, match=r"lite_server_idle_timeout is .*0: never"):
            lite_server.ensure_server(lite_uri)
        assert lite_server.server_info(lite_uri) is None


# ------------------------------------------------------------------ who can reach it
NOBODY = 65534  # Debian's unprivileged "nobody": a second local user that every machine has


def _as_user(uid: int, action) -> str:
    """Run ``action()`` in a forked child that has become ``uid``; its return value, or the
    exception's type and message, comes back as a string."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: pure Python from here on (no gRPC after a fork)
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            result = f"ok: {action()}"
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = f"{type(exc).__name__}: {exc}"
        os.write(write, result.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        out = pipe.read()
    os.waitpid(pid, 0)
    return out


def _tcp_listeners(pid: int) -> list[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    listening = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    listening.append(cols[1])
    return listening


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as a second local user needs root")


@needs_root
def test_another_local_user_cannot_reach_the_server(lite_uri, collection_name):
    make_collection(lite_uri, collection_name, rows=10)
    info = lite_server.server_info(lite_uri)
    assert _tcp_listeners(info["pid"]) == []  # no TCP port any local process could connect to
    sock_dir = os.path.dirname(info["socket"])
    assert stat.S_IMODE(os.stat(sock_dir).st_mode) == 0o700 and stat.S_IMODE(os.stat(info["socket"]).st_mode) == 0o600

    def connect():
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(info["socket"])
        return "connected"

    assert _as_user(os.geteuid(), connect) == "ok: connected"  # the probe itself works
    assert _as_user(NOBODY, connect).startswith("PermissionError")


@needs_root
def test_no_server_is_started_for_a_db_another_user_owns():
    base = tempfile.mkdtemp(prefix="lite-owner-")  # not under pytest's tmp_path: 0700, closed to the other user
    os.chmod(base, 0o755)
    try:
        _no_server_for_a_db_of(NOBODY, Path(base) / "theirs")
    finally:
        shutil.rmtree(base)


def _no_server_for_a_db_of(uid: int, theirs: Path) -> None:
    theirs.mkdir()
    os.chown(theirs, uid, uid)
    db = str(theirs / "milvus.db")
    with pytest.raises(MilvusInputError, match=rf"belongs to uid {uid}, not to you .*Run as its owner"):
        lite_server.ensure_server(db)
    assert os.listdir(theirs) == []  # nothing written: no lock, no log, no data

    # ...and the owner may: the rule is ownership, not who is asking.
    assert _as_user(uid, lambda: lite_server.check_owner(db)) == "ok: None"


def test_a_socket_directory_others_can_use_is_refused(tmp_path, monkeypatch, lite_uri):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shared = tmp_path / f"airflow-milvus-{os.geteuid()}"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    with pytest.raises(MilvusInputError, match="must be a directory that only you .* can use"):
        lite_server.ensure_server(lite_uri)
    assert lite_server.server_info(lite_uri) is None
