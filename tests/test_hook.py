"""MilvusHook against Milvus Lite and the real server: connection mapping, test_connection,
index helpers, and retries across a server restart."""

from __future__ import annotations

import threading
import time

import pytest

from airflow_milvus.errors import MilvusAuthenticationError, MilvusInputError, MilvusUnavailableError
from airflow_milvus.hooks.milvus import DEFAULT_TIMEOUT, MilvusHook, default_lite_path
from tests.conftest import conn_env_value
from tests.helpers import DIM, VECTOR_INDEX, make_collection, scalar_index
from tests.milvus_server import MilvusServer, free_port

build = MilvusHook.build_client_config


# ---------------------------------------------------------------- connection mapping
def test_uri_extra_wins_over_host():
    cfg = build(host="ignored", port=1, extra={"uri": "https://in01.zillizcloud.com:19538", "token": "tok"})
    assert cfg == {"uri": "https://in01.zillizcloud.com:19538", "token": "tok", "timeout": DEFAULT_TIMEOUT}


def test_uri_built_from_host_port_schema():
    assert build(host="milvus.internal")["uri"] == "http://milvus.internal:19530"
    assert build(host="milvus.internal", port=443, schema="https")["uri"] == "https://milvus.internal:443"
    assert build(host="h", extra={"secure": "true"})["uri"] == "https://h:19530"


def test_login_password_db_and_string_extras_are_coerced(tmp_path):
    pem = tmp_path / "server.pem"
    pem.write_text("x")
    cfg = build(
        host="h", login="root", password="Milvus",
        extra={"db_name": "prod", "secure": "True", "server_pem_path": str(pem), "server_name": "localhost",
               "timeout": "12.5"},
    )
    assert cfg == {"uri": "https://h:19530", "user": "root", "password": "Milvus", "db_name": "prod", "secure": True,
                   "server_pem_path": str(pem), "server_name": "localhost", "timeout": 12.5}


def test_mtls_paths_and_prefixed_extras(tmp_path):
    paths = {}
    for key in ("client_pem_path", "client_key_path", "ca_pem_path"):
        (tmp_path / key).write_text("x")
        paths[f"extra__milvus__{key}"] = str(tmp_path / key)
    cfg = build(host="h", extra={**paths, "secure": False})
    assert cfg["client_pem_path"].endswith("client_pem_path") and cfg["secure"] is False
    assert cfg["ca_pem_path"].endswith("ca_pem_path")


def test_lite_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert build(extra={"uri": "./milvus.db"})["uri"] == str(tmp_path / "milvus.db")


def test_no_host_no_uri_means_embedded_lite(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert build()["uri"] == str(tmp_path / "milvus_lite.db") == default_lite_path()


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"extra": {"uri": "ftp://h:1"}}, "scheme 'ftp' is not supported"),
        ({"extra": {"uri": "milvus-data"}}, "neither an http"),
        ({"host": "h", "schema": "grpc"}, "schema 'grpc' is not supported"),
        ({"host": "h", "extra": {"secure": "maybe"}}, "not a boolean"),
        ({"host": "h", "extra": {"timeout": "soon"}}, "not a number"),
        ({"host": "h", "extra": {"timeout": "-1"}}, "greater than 0"),
        ({"host": "h", "extra": {"ca_pem_path": "/nonexistent/ca.pem"}}, "not a file"),
    ],
)
def test_bad_connection_settings(kwargs, match):
    with pytest.raises(MilvusInputError, match=match):
        build(**kwargs)


def test_lite_path_in_missing_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_BADLITE", conn_env_value(str(tmp_path / "nope" / "m.db")))
    with pytest.raises(MilvusInputError, match="does not exist. Create it"):
        MilvusHook("badlite").get_conn()
    assert not (tmp_path / "nope").exists()


# ---------------------------------------------------------------- test_connection
def test_test_connection_succeeds_with_version(milvus_conn, flavour):
    ok, message = MilvusHook(milvus_conn).test_connection()
    assert ok, message
    assert ("v2.3.5" if flavour == "server" else "milvus_lite") in message


def test_test_connection_unreachable(monkeypatch):
    port = free_port()
    monkeypatch.setenv("AIRFLOW_CONN_DOWN", conn_env_value(f"http://127.0.0.1:{port}", timeout=2))
    started = time.monotonic()
    ok, message = MilvusHook("down", retry_attempts=2, retry_max_wait=2).test_connection()
    assert not ok
    assert "Cannot reach Milvus" in message and str(port) in message
    assert "authentication" not in message.lower()
    assert time.monotonic() - started < 60  # bounded, not pymilvus's ~210 s loop



@pytest.mark.server
def test_test_connection_auth(auth_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GOOD", conn_env_value(auth_server.uri, token="root:Milvus"))
    ok, message = MilvusHook("good").test_connection()
    assert ok, message

    monkeypatch.setenv(
        "AIRFLOW_CONN_BADPW",
        '{"conn_type": "milvus", "login": "root", "password": "wrong-pw-123", "extra": {"uri": "%s", "timeout": 5}}'
        % auth_server.uri,
    )
    started = time.monotonic()
    ok, message = MilvusHook("badpw").test_connection()
    assert not ok
    assert "authentication failed" in message.lower() and "unavailable" not in message.lower()
    assert "wrong-pw-123" not in message
    assert time.monotonic() - started < 30  # refused credentials are not retried


# ---------------------------------------------------------------- index helpers
def test_index_helpers(milvus_uri, milvus_conn, collection_name, flavour):
    scalar = scalar_index(milvus_uri)
    make_collection(milvus_uri, collection_name, indexes=(VECTOR_INDEX, scalar))
    with MilvusHook(milvus_conn) as hook:
        assert hook.has_collection(collection_name)
        specs = {s["field_name"]: s for s in hook.list_index_specs(collection_name)}
        assert set(specs) == {"vec", "year"}
        vec = specs["vec"]
        assert (vec["collection_name"], vec["index_type"], vec["metric_type"]) == (collection_name, "HNSW", "L2")
        assert vec["params"] == ({"M": 8, "efConstruction": 64} if flavour == "server" else {})
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
        assert str(err.value).endswith("Fix the pattern. Set missing_collection_ok=True to skip it.")
        assert err.value.render("flag").endswith("Fix the pattern.")  # the CLI has no such flag
        assert hook.match_collections(["zz_nothing_*", "zz_missing"], missing_ok=True) == []


# ---------------------------------------------------------------- retries
def _retry_lines(capfd) -> list[str]:
    out, err = capfd.readouterr()  # Airflow logs through structlog to the process streams
    return [line for line in (out + err).splitlines() if "retrying in" in line]


def test_unreachable_server_fails_within_bound(monkeypatch, capfd):
    monkeypatch.setenv("AIRFLOW_CONN_DOWN2", conn_env_value(f"http://127.0.0.1:{free_port()}", timeout=2))
    hook = MilvusHook("down2", retry_attempts=3, retry_max_wait=6)
    started = time.monotonic()
    with pytest.raises(MilvusUnavailableError) as err:
        hook.list_collections()
    elapsed = time.monotonic() - started
    assert "after 3 attempts" in str(err.value) and "bound: 3 attempts within 6s" in str(err.value)
    assert elapsed < 6 + 3 * 2 + 20  # budget + per-call timeouts + slack, far below ~210 s
    retries = _retry_lines(capfd)
    assert len(retries) == 2 and "attempt 1/3" in retries[0]


@pytest.mark.server
def test_call_survives_server_restart(tmp_path, monkeypatch, capfd):
    server = MilvusServer(tmp_path / "restart")
    server.start()
    try:
        make_collection(server.uri, "survivor", rows=50)
        monkeypatch.setenv("AIRFLOW_CONN_RESTART", conn_env_value(server.uri, timeout=5))
        hook = MilvusHook("restart", retry_attempts=30, retry_max_wait=240)
        assert "survivor" in hook.list_collections()
        server.stop()
        threading.Timer(3, server.start).start()
        capfd.readouterr()
        specs = hook.list_index_specs("survivor")
        assert [s["field_name"] for s in specs] == ["vec"]
        assert _retry_lines(capfd)
        hook.close()
    finally:
        time.sleep(1)
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


def test_secrets_are_redacted(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SECRET",
        '{"conn_type": "milvus", "login": "u", "password": "pw-s3cret", "extra": {"uri": "http://u:uri-s3cret@h:1", "token": "tok-s3cret"}}',
    )
    hook = MilvusHook("secret")
    text = hook.redact("pw-s3cret tok-s3cret http://u:uri-s3cret@h:1")
    assert "s3cret" not in text and text.count("***") == 3
