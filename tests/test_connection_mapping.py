"""Connection mapping (hooks/connection.py): pure functions from Airflow connection fields to
``MilvusClient`` arguments, and the secrets they hold. No Milvus needed."""

from __future__ import annotations

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.hooks.connection import (
    DEFAULT_TIMEOUT,
    default_lite_path,
    redact,
    secrets_in,
)
from airflow_milvus.hooks.connection import build_client_config as build


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


def test_secrets_are_the_password_token_and_uri_password():
    cfg = build(login="u", password="pw-s3cret", extra={"uri": "http://u:uri-s3cret@h:1", "token": "tok-s3cret"})
    assert secrets_in(cfg) == ["pw-s3cret", "tok-s3cret", "uri-s3cret"]
    text = redact("pw-s3cret tok-s3cret http://u:uri-s3cret@h:1", secrets_in(cfg))
    assert text == "*** *** http://u:***@h:1"
    assert secrets_in(build(extra={"uri": "/tmp/m.db"})) == []  # a Lite path has none
