"""The provider registers with Airflow and never imports pymilvus at import time."""

from __future__ import annotations

import importlib
import importlib.resources
import json
import os
import subprocess
import sys

import jsonschema
import pytest

from airflow_milvus.get_provider_info import get_provider_info

MODULES = [
    "airflow_milvus",
    "airflow_milvus.get_provider_info",
    "airflow_milvus.assets",
    "airflow_milvus.hooks.milvus",
    "airflow_milvus.operators.index",
    "airflow_milvus.operators.collection",
    "airflow_milvus.sensors.index",
    "airflow_milvus.triggers.index",
    "airflow_milvus.waiting",
    "airflow_milvus.hooks.connection",
    "airflow_milvus.hooks.lite_server",
    "airflow_milvus.import_files",
    "airflow_milvus.import_jobs",
    "airflow_milvus.recall",
    "airflow_milvus.operators.bulk_import",
    "airflow_milvus.operators.quality",
    "airflow_milvus.triggers.bulk_import",
]


def test_provider_info_validates_against_airflow_schema():
    schema = json.loads((importlib.resources.files("airflow") / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    conn = info["connection-types"][0]
    assert conn["connection-type"] == "milvus"
    assert {"uri", "token", "db_name", "secure", "server_pem_path", "ca_pem_path", "client_pem_path",
            "client_key_path", "server_name", "timeout"} <= set(conn["conn-fields"])
    assert conn["conn-fields"]["token"]["schema"]["format"] == "password"
    (assets,) = info["asset-uris"]
    assert assets["schemes"] == ["milvus"]
    module, _, name = assets["handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


def test_every_declared_module_and_class_imports():
    import importlib

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    module, _, cls = info["connection-types"][0]["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module), cls)
    assert (hook.conn_type, hook.default_conn_name, hook.hook_name, hook.conn_name_attr) == (
        "milvus", "milvus_default", "Milvus", "milvus_conn_id")


@pytest.mark.parametrize("module", MODULES)
def test_import_leaves_pymilvus_unimported(module):
    code = f"import sys, {module}; bad = [m for m in ('pymilvus', 'grpc', 'milvus_lite') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"{module} imported {proc.stdout.strip()}: {proc.stderr[-2000:]}"


def test_import_check_can_fail():
    """The check above really detects an eager import."""
    proc = subprocess.run([sys.executable, "-c", "import sys, pymilvus; sys.exit('pymilvus' in sys.modules)"])
    assert proc.returncode == 1


def _airflow(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=os.environ.copy(), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_airflow_cli_lists_provider_and_hook():
    assert "airflow-milvus" in _airflow("providers", "list", "--output", "json")
    hooks = json.loads(_airflow("providers", "hooks", "--output", "json"))
    milvus = [h for h in hooks if h.get("connection_type") == "milvus"]
    assert milvus and milvus[0]["class"] == "airflow_milvus.hooks.milvus.MilvusHook"
    assert (milvus[0]["package_name"], milvus[0]["hook_name"], milvus[0]["conn_id_attribute_name"]) == (
        "airflow-milvus", "Milvus", "milvus_conn_id")


@pytest.mark.parametrize("module", [m for m in MODULES if "triggers" not in m])
def test_dag_parse_imports_stay_light(module):
    """DAG files import operators on every parse: the trigger machinery stays out until a task defers."""
    # Relative to what the Task SDK's base classes import themselves (on Airflow 3.1 BaseHook does).
    code = ("import sys; from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator; own = set(sys.modules); "
            f"import {module}; bad = [m for m in ('airflow.triggers.base',) if m in sys.modules and m not in own]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"{module} imported {proc.stdout.strip()}: {proc.stderr[-2000:]}"
