"""MilvusHook against Milvus Lite and the real server: which connection it uses, test_connection,
the wrappers, and retries (an unreachable server, a restart, permanent refusals). The pure
connection mapping is tested in test_connection_mapping.py."""

from __future__ import annotations

import threading

import pytest

from airflow_milvus.errors import (
    MilvusAuthenticationError,
    MilvusInputError,
    MilvusUnavailableError,
)
from airflow_milvus.hooks.milvus import MilvusHook
from tests.conftest import set_connection
from tests.helpers import DIM, VECTOR_INDEX, make_collection, scalar_index
from tests.milvus_server import MilvusServer, free_port


# ---------------------------------------------------------------- which connection
def test_missing_default_connection_falls_back_to_lite(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_MILVUS_DEFAULT", raising=False)
    with MilvusHook() as hook:
        assert hook.is_lite and hook.uri == str(tmp_path / "milvus_lite.db")
        assert hook.test_connection()[0] is True


def test_missing_named_connection_raises():
    from airflow.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException):
        MilvusHook("no_such_conn_xyz").client_config


def test_lite_path_in_missing_directory(monkeypatch, tmp_path):
    conn = set_connection(monkeypatch, str(tmp_path / "nope" / "m.db"))
    with pytest.raises(MilvusInputError, match="does not exist. Create it"):
        MilvusHook(conn).get_conn()
    assert not (tmp_path / "nope").exists()


# ---------------------------------------------------------------- test_connection
def test_test_connection_succeeds_with_version(milvus_conn, flavour):
    ok, message = MilvusHook(milvus_conn).test_connection()
    assert ok, message
    assert ("v2.3.5" if flavour == "server" else "milvus_lite") in message


@pytest.mark.server
def test_test_connection_auth(auth_server, monkeypatch):
    """Good credentials connect; a wrong password is reported as such, without the password.
    (A call with a wrong password is test_security's: one attempt, MilvusAuthenticationError.)"""
    ok, message = MilvusHook(set_connection(monkeypatch, auth_server.uri, token="root:Milvus")).test_connection()
    assert ok, message

    wrong = set_connection(monkeypatch, auth_server.uri, login="root", password="wrong-pw-123", timeout=5)
    ok, message = MilvusHook(wrong).test_connection()
    assert not ok
    assert "authentication failed" in message.lower() and "unavailable" not in message.lower()
    assert "wrong-pw-123" not in message


# ---------------------------------------------------------------- index helpers
def test_index_helpers(milvus_uri, milvus_conn, collection_name, flavour):
    scalar = scalar_index(milvus_uri)
    make_collection(milvus_uri, collection_name, indexes=(VECTOR_INDEX, scalar))
    with MilvusHook(milvus_conn) as hook:
        assert hook.has_collection(collection_name)
        listed = [hook.list_index_specs(collection_name) for _ in range(5)]
        # One order, whatever order the server lists them in (a server's changes between calls).
        assert all([s["field_name"] for s in specs] == ["vec", "year"] for specs in listed), listed
        specs = {s["field_name"]: s for s in listed[0]}
        vec = specs["vec"]
        assert (vec["collection_name"], vec["index_type"], vec["metric_type"]) == (collection_name, "HNSW", "L2")
        # Lite reports no build params: for an index another client built they are unknown (None).
        assert vec["params"] == ({"M": 8, "efConstruction": 64} if flavour == "server" else None)
        assert specs["year"]["metric_type"] is None and specs["year"]["index_type"] == scalar["index_type"]
        assert [s["field_name"] for s in hook.list_index_specs(collection_name, "year")] == ["year"]
        assert hook.get_index_spec(collection_name, vec["index_name"]) == vec
        assert hook.get_index_spec(collection_name, "no_such_index") is None
        status = hook.index_build_status(collection_name, vec["index_name"])
        assert status["state"] == "Finished" and status["total_rows"] == 200 and status["pending_index_rows"] == 0
        assert hook.index_build_status(collection_name, "no_such_index")["state"] == "NotExist"
        assert hook.get_load_state("no_such_collection") == "NotExist"
        hook.release_collection(collection_name)
        assert hook.get_load_state(collection_name) == "NotLoad"
        hook.load_collection(collection_name)
        assert hook.get_load_state(collection_name) == "Loaded"
        assert hook.row_count(collection_name) == 200
        assert collection_name in hook.match_collections(collection_name[:5] + "*")
        with pytest.raises(MilvusInputError, match="matches no collection") as err:
            hook.match_collections("zz_nothing_*")
        assert str(err.value).endswith("Fix the pattern.")  # the hook names no operator argument
        from airflow_milvus.lifecycle.collections import SKIP_MISSING_COLLECTIONS

        with pytest.raises(MilvusInputError) as err:  # the caller passes the fix it offers
            hook.match_collections("zz_nothing_*", fixes=[SKIP_MISSING_COLLECTIONS])
        assert str(err.value).endswith("Fix the pattern. Set missing_collection_ok=True to skip it.")
        assert err.value.render("flag").endswith("Fix the pattern.")  # the CLI has no such flag
        assert hook.match_collections(["zz_nothing_*", "zz_missing"], missing_ok=True) == []


# ---------------------------------------------------------------- retries
def _retry_lines(capfd) -> list[str]:
    out, err = capfd.readouterr()  # Airflow logs through structlog to the process streams
    return [line for line in (out + err).splitlines() if "retrying in" in line]


def test_unreachable_server_fails_within_bound(monkeypatch, capfd):
    """A closed port: a call retries within its bound, then says the server is unavailable;
    the connection test (the UI's Test button) says so after one attempt."""
    port = free_port()
    # A time budget far above three 2 s attempts: the attempt count is the bound that ends it,
    # however slow a busy machine makes each attempt.
    hook = MilvusHook(set_connection(monkeypatch, f"http://127.0.0.1:{port}", timeout=2), retry_attempts=3, retry_max_wait=60)
    with pytest.raises(MilvusUnavailableError) as err:
        hook.list_collections()
    assert "after 3 attempts" in str(err.value) and "bound: 3 attempts within 60s" in str(err.value)
    retries = _retry_lines(capfd)
    assert len(retries) == 2 and "attempt 1/3" in retries[0]

    ok, message = hook.test_connection()
    assert not ok
    assert "Cannot reach Milvus" in message and str(port) in message
    assert "authentication" not in message.lower()
    assert not _retry_lines(capfd)


@pytest.mark.server
def test_call_survives_server_restart(tmp_path, monkeypatch, capfd):
    server = MilvusServer(tmp_path / "restart")
    server.start()
    restart = threading.Timer(3, server.start)
    try:
        make_collection(server.uri, "survivor", rows=50)
        hook = MilvusHook(set_connection(monkeypatch, server.uri, timeout=5), retry_attempts=30, retry_max_wait=240)
        assert "survivor" in hook.list_collections()
        server.stop()
        restart.start()
        capfd.readouterr()
        specs = hook.list_index_specs("survivor")
        assert [s["field_name"] for s in specs] == ["vec"]
        assert _retry_lines(capfd)
        hook.close()
    finally:
        if restart.is_alive():
            restart.join()  # the hook may get through before start() has finished waiting for readiness
        server.stop()


def test_no_retry_loop_runs_inside_another(milvus_uri, milvus_conn, collection_name):
    """A fresh hook learns the server version on first use: outside the retried call, so that a
    fault is retried by one loop with one bound, not by a loop per attempt of the outer one."""
    make_collection(milvus_uri, collection_name, rows=10)
    for use in (
        lambda h: h.get_index_spec(collection_name, "vec"),
        lambda h: h.index_build_status(collection_name, "vec"),
        lambda h: h.list_index_specs(collection_name),
    ):
        with MilvusHook(milvus_conn) as hook:
            depth, deepest, calls = 0, 0, []
            plain_call = hook.call

            def counting_call(what, fn, **kwargs):
                nonlocal depth, deepest
                depth += 1
                deepest = max(deepest, depth)
                calls.append(what)
                try:
                    return plain_call(what, fn, **kwargs)
                finally:
                    depth -= 1

            hook.call = counting_call
            assert use(hook)
            assert deepest == 1, f"nested retry loops: {calls}"


def test_permanent_errors_are_not_retried(milvus_conn, capfd):
    hook = MilvusHook(milvus_conn, retry_attempts=5)
    hook.list_collections()
    capfd.readouterr()
    with pytest.raises(Exception) as err:
        hook.describe_collection("no_such_collection_abc")
    assert not isinstance(err.value, (MilvusUnavailableError, MilvusAuthenticationError))
    assert not _retry_lines(capfd)
    hook.close()


def test_refused_writes_and_alias_conflicts_fail_at_once(milvus_uri, milvus_conn, collection_name, capfd):
    """Permanent refusals are MilvusInputError on the first attempt. Milvus Lite answers an alias
    conflict with code 1, which the retry policy would otherwise count as transient."""
    other, alias = f"{collection_name}_b", f"{collection_name}_live"
    make_collection(milvus_uri, collection_name, rows=5)
    make_collection(milvus_uri, other, rows=0)
    with MilvusHook(milvus_conn, retry_attempts=5) as hook:
        hook.list_collections()
        capfd.readouterr()
        wrong_dim = {"id": 1, "vec": [0.1] * (DIM + 3), "year": 1, "title": "x"}  # refused by the server
        with pytest.raises(MilvusInputError, match=f"rejected insert of 1 rows into '{collection_name}': .*dim"):
            hook.write_rows(collection_name, [wrong_dim])
        no_year = {"id": 2, "vec": [0.1] * DIM, "title": "x"}  # refused by pymilvus before sending
        with pytest.raises(MilvusInputError, match="rejected upsert of 1 rows.*`year`"):
            hook.write_rows(collection_name, [no_year], mode="upsert")
        hook.create_alias(alias, collection_name)
        with pytest.raises(MilvusInputError, match=f"Milvus refused create_alias\\('{alias}' -> '{other}'\\)"):
            hook.create_alias(alias, other)
        assert hook.describe_alias(alias) == collection_name and hook.list_aliases(collection_name) == [alias]
        assert hook.describe_alias(f"{alias}_none") is None
        hook.drop_alias(alias)
        assert hook.row_count(collection_name) == 5
    assert not _retry_lines(capfd)


def test_hook_redacts_its_connection_secrets(monkeypatch):
    conn = set_connection(monkeypatch, "http://u:uri-s3cret@h:1", login="u", password="pw-s3cret", token="tok-s3cret")
    text = MilvusHook(conn).redact("pw-s3cret tok-s3cret http://u:uri-s3cret@h:1")
    assert "s3cret" not in text and text.count("***") == 3
