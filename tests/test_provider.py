"""The provider registers with Airflow and never imports pymilvus at import time."""

from __future__ import annotations

import importlib
import importlib.resources
import json
import os
import pkgutil
import subprocess
import sys

import jsonschema
import pytest

import airflow_milvus
from airflow_milvus.get_provider_info import get_provider_info

# Every module of the package, found rather than listed: a new module is checked without anyone
# remembering to add it.
# Triggers come last: they load the trigger machinery, which would hide it loaded by a later module.
MODULES = sorted(
    ["airflow_milvus"]
    + [m.name for m in pkgutil.walk_packages(airflow_milvus.__path__, "airflow_milvus.") if not m.name.endswith("__main__")],
    key=lambda name: (".triggers" in name, name),
)
HEAVY = ("pymilvus", "grpc", "milvus_lite", "pyarrow", "numpy")

# One interpreter imports every module in turn and reports what each one loaded first: the heavy
# client libraries, and (outside triggers/) the trigger machinery, which DAG parsing never needs.
# Relative to what the Task SDK's base classes import themselves (on Airflow 3.1 they load triggers).
IMPORT_PROBE = """
import importlib, json, sys
from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator
sdk_loaded = set(sys.modules)
report = {}
for module in sys.argv[1:]:
    importlib.import_module(module)
    heavy = [m for m in %r if m in sys.modules]
    triggers = "airflow.triggers.base" in sys.modules and "airflow.triggers.base" not in sdk_loaded
    report[module] = heavy + (["airflow.triggers.base"] if triggers and ".triggers." not in module else [])
    if report[module]:
        break  # later modules would be blamed for what this one loaded
print(json.dumps(report))
""" % (HEAVY,)


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


def test_importing_any_module_stays_light():
    """DAG files import operators on every parse: pymilvus & co. (~0.6 s, 100 MiB) load only when a task runs."""
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *MODULES], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert list(report) == MODULES and len(MODULES) > 20, report
    assert {m: loaded for m, loaded in report.items() if loaded} == {}


def test_import_check_can_fail(tmp_path, monkeypatch):
    """The probe above really detects an eager import, and names the module that did it."""
    (tmp_path / "eager_module.py").write_text("import pymilvus\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE, "airflow_milvus.assets", "eager_module", "airflow_milvus.quality.recall"],
                          capture_output=True, text=True, check=True)
    report = json.loads(proc.stdout)
    assert report["airflow_milvus.assets"] == []
    assert "pymilvus" in report["eager_module"] and "airflow_milvus.quality.recall" not in report


def _airflow(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=os.environ.copy(), timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow  # two `airflow` subprocesses
def test_airflow_cli_lists_provider_and_hook():
    assert "airflow-milvus" in _airflow("providers", "list", "--output", "json")
    hooks = json.loads(_airflow("providers", "hooks", "--output", "json"))
    milvus = [h for h in hooks if h.get("connection_type") == "milvus"]
    assert milvus and milvus[0]["class"] == "airflow_milvus.hooks.milvus.MilvusHook"
    assert (milvus[0]["package_name"], milvus[0]["hook_name"], milvus[0]["conn_id_attribute_name"]) == (
        "airflow-milvus", "Milvus", "milvus_conn_id")
