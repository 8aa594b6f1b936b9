"""Faults on the real server: a proxy between hook and server cuts, blocks or stalls the
link at each step of a reindex (after the release, before the drop; during the create; during
the build wait; during the load), and the server is SIGKILLed mid-task.

Every case ends one of two ways: the run succeeds after retries with the exact index back
and the collection loaded, or it fails with a clear error and a re-run after the fault clears
rebuilds the exact index from the drop's snapshot. Rows are counted before and after.
"""

from __future__ import annotations

import threading
import time

import pytest

from airflow_milvus.errors import MilvusUnavailableError
from airflow_milvus.hooks.milvus import MilvusHook
from tests.conftest import milvus_client, set_connection
from tests.fault_proxy import FaultProxy
from tests.helpers import (
    VECTOR_INDEX,
    load_state,
    make_collection,
    row_count,
    scalar_index,
)
from tests.milvus_server import private_server
from tests.reliability import index_definitions, reindex_dag, run_recorded, states

pytestmark = pytest.mark.server

# Where a fault strikes: the hook method that is about to run when it does.
STEPS = {
    "drop": "drop_index",  # the release has happened, the drop has not
    "create": "create_index",
    "build_wait": "index_build_status",
    "load": "load_collection",
}
RPC_TIMEOUT = 3


@pytest.fixture
def server(milvus_server):
    """The server behind the proxy: the session's shared one, except where a test kills it."""
    return milvus_server


@pytest.fixture
def proxy(server):
    with FaultProxy(server.port) as p:
        yield p


@pytest.fixture
def proxy_conn(proxy):
    """A connection to the proxy; set outside monkeypatch so undoing the faults keeps it."""
    with pytest.MonkeyPatch.context() as mp:
        yield set_connection(mp, proxy.uri, timeout=RPC_TIMEOUT)


def strike_before(monkeypatch, method: str, fault) -> list[float]:
    """Run ``fault()`` once, just before the first call of ``MilvusHook.<method>``.

    Undo with ``monkeypatch.undo()``; the connection stays (its env var is set with os.environ,
    and the snapshot Variable is keyed by connection id, as in production re-runs)."""
    original = getattr(MilvusHook, method)
    fired: list[float] = []

    def wrapper(self, *args, **kwargs):
        if not fired:
            fired.append(time.monotonic())
            fault()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MilvusHook, method, wrapper)
    return fired


@pytest.fixture
def loaded_collection(server, collection_name):
    """A loaded collection with a vector and a scalar index; yields (name, definitions, rows)."""
    uri = server.uri
    make_collection(uri, collection_name, indexes=(VECTOR_INDEX, scalar_index(uri)), load=True)
    return collection_name, index_definitions(uri, collection_name), row_count(uri, collection_name)


def wait_ready(uri: str, name: str, timeout: float = 240) -> None:
    """After a crash the port opens long before Milvus serves again: old sessions expire
    first, and until the query node is back a load fails with 'unrecoverable error'."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with milvus_client(uri, timeout=3) as c:
                c.describe_collection(name, timeout=3)
                probe = f"ready_{name}"
                c.create_collection(probe, dimension=8, timeout=60)  # quick setup: index + load
                c.drop_collection(probe)
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def assert_intact(uri, name, definitions, rows):
    assert index_definitions(uri, name) == definitions
    assert row_count(uri, name) == rows
    assert load_state(uri, name) == "Loaded"


# ------------------------------------------------------------------ blips: survived by retries
@pytest.mark.parametrize("fault", ["cut", "block_3s", "stall_4s"])
@pytest.mark.parametrize("step", list(STEPS))
def test_transient_fault_is_survived(step, fault, milvus_server, proxy, proxy_conn, loaded_collection, monkeypatch):
    name, definitions, rows = loaded_collection
    action = {"cut": proxy.cut, "block_3s": lambda: proxy.block_for(3), "stall_4s": lambda: proxy.stall_for(4)}[fault]
    fired = strike_before(monkeypatch, STEPS[step], action)
    dr, tis, errors = run_recorded(reindex_dag(proxy_conn, name))
    assert fired, f"the {step} step never ran"
    assert dr.state == "success", (states(tis), errors)
    assert_intact(milvus_server.uri, name, definitions, rows)


# ------------------------------------------------------------------ outages: fail clearly, re-run converges
@pytest.mark.parametrize("step", list(STEPS))
def test_outage_fails_clearly_and_rerun_rebuilds(step, milvus_server, proxy, proxy_conn, loaded_collection, monkeypatch):
    name, definitions, rows = loaded_collection
    strike_before(monkeypatch, STEPS[step], proxy.block)
    dr, tis, errors = run_recorded(reindex_dag(proxy_conn, name, attempts=3, max_wait=4))
    assert dr.state == "failed", states(tis)
    failed = "drop" if step == "drop" else "create"
    assert list(errors) == [failed], errors
    assert "MilvusUnavailableError" in errors[failed] and "server unavailable after" in errors[failed]
    assert "bound: 3 attempts within 4s" in errors[failed] and name in errors[failed]
    proxy.resume()
    monkeypatch.undo()  # no more faults; the same connection re-runs the DAG
    dr, tis, errors = run_recorded(reindex_dag(proxy_conn, name))
    assert dr.state == "success", (states(tis), errors)
    assert_intact(milvus_server.uri, name, definitions, rows)


# ------------------------------------------------------------------ the server dies
@pytest.mark.slow  # a server crash and restart, then recovery: a minute or more each
class TestServerKilledMidTask:
    @pytest.fixture(scope="class")
    def server(self, tmp_path_factory):
        """A server of these tests' own: other workers' tests use the shared one meanwhile."""
        with private_server(tmp_path_factory.mktemp("milvus-crash")) as server:
            yield server

    @pytest.mark.parametrize("step", ["drop", "build_wait"])
    def test_server_killed_mid_task(self, step, server, proxy, proxy_conn, loaded_collection, monkeypatch):
        """SIGKILL, restart in the background: the run survives, or fails and the re-run converges."""
        name, definitions, rows = loaded_collection
        restart = threading.Thread(target=server.start, daemon=True)

        def crash():
            server.kill()
            restart.start()

        strike_before(monkeypatch, STEPS[step], crash)
        try:
            dr, tis, errors = run_recorded(reindex_dag(proxy_conn, name, attempts=20, max_wait=10))
        finally:
            restart.join(240)
            if server.proc is None or server.proc.poll() is not None:
                server.start()  # leave a working server to the next test, whatever happened
            wait_ready(server.uri, name)
        if dr.state != "success":
            # The fault has cleared: a re-run with the same connection converges.
            assert errors, states(tis)
            monkeypatch.undo()
            dr, tis, errors = run_recorded(reindex_dag(proxy_conn, name))
        assert dr.state == "success", (states(tis), errors)
        assert_intact(server.uri, name, definitions, rows)


# ------------------------------------------------------------------ silent from the start
def test_port_open_but_server_silent_fails_within_the_configured_bound(proxy, monkeypatch):
    """The port answers, the server behind it does not: unavailable within the bound, not an
    auth failure. (A closed port is test_hook's test_unreachable_server_fails_within_bound.)"""
    proxy.block()
    conn = set_connection(monkeypatch, proxy.uri, timeout=2)
    attempts, max_wait, timeout = 3, 4.0, 2.0
    hook = MilvusHook(conn, retry_attempts=attempts, retry_max_wait=max_wait)
    started = time.monotonic()
    with pytest.raises(MilvusUnavailableError) as err:
        hook.list_collections()
    elapsed = time.monotonic() - started
    bound = attempts * timeout + max_wait  # every attempt may use its whole timeout
    assert elapsed < bound + 10, f"took {elapsed:.1f}s, bound {bound:.0f}s"
    message = str(err.value)
    assert "server unavailable after" in message and f"bound: {attempts} attempts within 4s" in message
    assert proxy.uri.split("//")[1] in message
