"""Lineage: the operators' reports to Airflow's hook lineage collector, and the ``milvus`` scheme's
OpenLineage converter, checked in real DAG runs on both flavours.

The OpenLineage tests run the real OpenLineage provider with a file transport in a process of
its own: the provider decides at import whether it is enabled, so it cannot be switched on in
this process without enabling it for every later test of the worker.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections import defaultdict
from urllib.parse import urlsplit

import pytest

pytest.importorskip("airflow.providers.openlineage", reason="the test extra installs apache-airflow-providers-openlineage")

from airflow_milvus import lineage
from tests.conftest import REPO
from tests.dag_runner import dags_test_command, run_dag, write_dag
from tests.helpers import DIM, make_collection
from tests.test_bulk_import import write_with_bulk_writer

pytestmark = pytest.mark.usefixtures("variables_outside_a_task")


def expected_uri(milvus_uri: str, collection: str) -> str:
    """The collection's asset URI, spelt out here rather than built by the code under test."""
    if "://" not in milvus_uri:
        return f"milvus://lite{os.path.abspath(milvus_uri)}/{collection}"
    server = urlsplit(milvus_uri)
    return f"milvus://{server.hostname}:{server.port}/default/{collection}"


def expected_namespace(milvus_uri: str) -> str:
    if "://" not in milvus_uri:
        return f"milvus://lite{os.path.abspath(milvus_uri)}"
    server = urlsplit(milvus_uri)
    return f"milvus://{server.hostname}:{server.port}"


# ------------------------------------------------------------------ the converter
@pytest.mark.parametrize(
    ("uri", "namespace", "name"),
    [
        ("milvus://Milvus.internal/books", "milvus://milvus.internal:19530", "default.books"),
        ("milvus://10.0.0.5:19531/analytics/books_v2", "milvus://10.0.0.5:19531", "analytics.books_v2"),
        ("milvus://[::1]:443/default/b", "milvus://[::1]:443", "default.b"),
        ("milvus://lite/data/milvus/books.db/books", "milvus://lite/data/milvus/books.db", "default.books"),
    ],
)
def test_converter_names_namespace_and_dataset(uri, namespace, name):
    from airflow.sdk import Asset

    dataset = lineage.to_openlineage(Asset(uri=uri), None)
    assert (dataset.namespace, dataset.name) == (namespace, name)


def test_converter_is_registered_for_the_milvus_scheme():
    """Airflow finds it through provider info, and the OpenLineage provider translates with it."""
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset
    from airflow.sdk import Asset

    dataset = translate_airflow_asset(Asset(uri="milvus://Host:19530/db1/books"), None)
    assert (dataset.namespace, dataset.name) == ("milvus://host:19530", "db1.books")


def test_file_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lineage.file_uri("/data/a.parquet") == "file:///data/a.parquet"
    assert lineage.file_uri("s3://bucket/a/b.parquet") == "s3://bucket/a/b.parquet"
    assert lineage.file_uri("rows/a.json", local=True) == f"file://{tmp_path}/rows/a.json"  # Lite reads it here
    assert lineage.file_uri("rows/a.json", bucket="milvus-bucket") == "s3://milvus-bucket/rows/a.json"
    assert lineage.file_uri("rows/a.json") is None  # a key in a bucket nobody named


# ------------------------------------------------------------------ OpenLineage events of an import
IMPORT_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    MilvusBulkImportOperator(task_id="import", milvus_conn_id=CONN, collection_name=NAME, files=FILES, poll_interval=0.5)
"""

# dag.test() in a fresh interpreter: the same in-process run as tests.dag_runner.run_dag.
DAG_TEST = "import sys; from tests.dag_runner import run_dag; dr, _ = run_dag(sys.argv[1]); sys.exit(dr.state != 'success')"


def openlineage_events(dag_id: str, runner: str, log_file) -> list[dict]:
    env = {**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(log_file), "append": True})}
    command = dags_test_command(dag_id) if runner == "airflow dags test" else [sys.executable, "-c", DAG_TEST, dag_id]
    done = subprocess.run(command, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]


# The server through the CLI's `airflow dags test`, Lite through dag.test(): both ways of running, once each.
def test_import_complete_event_has_files_in_and_collection_out(flavour, milvus_uri, milvus_conn, collection_name, tmp_path):
    make_collection(milvus_uri, collection_name, rows=0)
    parquet = write_with_bulk_writer(milvus_uri, collection_name, tmp_path / "pq", range(60))
    json_file = write_with_bulk_writer(milvus_uri, collection_name, tmp_path / "js", range(60, 90), "JSON")
    files = [*parquet, *json_file]
    body = f"CONN = {milvus_conn!r}\nNAME = {collection_name!r}\nFILES = {files!r}\n" + IMPORT_DAG
    dag_id = write_dag(body)
    runner = "airflow dags test" if flavour == "server" else "dag.test()"
    events = openlineage_events(dag_id, runner, tmp_path / "openlineage.jsonl")

    complete = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{dag_id}.import"]
    assert len(complete) == 1, [(e["eventType"], e["job"]["name"]) for e in events]
    inputs = sorted((d["namespace"], d["name"]) for d in complete[0]["inputs"])
    outputs = [(d["namespace"], d["name"]) for d in complete[0]["outputs"]]
    assert inputs == sorted(("file", os.path.abspath(f)) for f in files)
    assert outputs == [(expected_namespace(milvus_uri), f"default.{collection_name}")]


# ------------------------------------------------------------------ the collector, per task
@pytest.fixture
def collected(monkeypatch):
    """A real collector per task of a dag.test() run (Airflow's own is a no-op without a reader,
    and one per process would mix the tasks): returns task_id -> (input URIs, output URIs)."""
    try:
        from airflow.sdk.lineage import HookLineageCollector
    except ImportError:  # Airflow 3.1
        from airflow.lineage.hook import HookLineageCollector
    from airflow.sdk import get_current_context

    collectors: dict[str, HookLineageCollector] = defaultdict(HookLineageCollector)
    monkeypatch.setattr(lineage, "_collector", lambda: collectors[get_current_context()["ti"].task_id])

    def uris(task_id: str) -> tuple[set[str], set[str]]:
        assets = collectors[task_id].collected_assets
        return {i.asset.uri for i in assets.inputs}, {o.asset.uri for o in assets.outputs}

    return uris


FLOW_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.alias import MilvusSwapAliasOperator
from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator
from airflow_milvus.operators.ingest import MilvusIngestOperator
from airflow_milvus.operators.search import MilvusQueryOperator, MilvusSearchOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    c = dict(milvus_conn_id=CONN)
    ingest = MilvusIngestOperator(task_id="ingest", collection_name=NAME, data=ROWS, **c)
    dry = MilvusDropIndexOperator(task_id="dry_drop", collection_name=NAME, dry_run=True, **c)
    drop = MilvusDropIndexOperator(task_id="drop", collection_name=NAME, **c)
    rebuild = MilvusCreateIndexOperator(task_id="rebuild", index_specs=drop.output, load=True, poll_interval=0.5, **c)
    again = MilvusCreateIndexOperator(task_id="rebuild_again", index_specs=drop.output, load=True, poll_interval=0.5, **c)
    swap = MilvusSwapAliasOperator(task_id="swap", alias=ALIAS, collection_name=NAME, **c)
    search = MilvusSearchOperator(task_id="search", collection_name=ALIAS, data=[VECTOR], limit=3, **c)
    query = MilvusQueryOperator(task_id="query", collection_name=NAME, filter="id >= 0", limit=5, **c)
    ingest >> dry >> drop >> rebuild >> again >> swap >> search >> query
"""


def test_each_operator_reports_what_it_read_and_wrote(milvus_uri, milvus_conn, collection_name, collected):
    make_collection(milvus_uri, collection_name, rows=0)
    alias = f"{collection_name}_live"
    rng = random.Random(3)
    rows = [{"id": i, "vec": [rng.random() for _ in range(DIM)], "year": 2000, "title": f"b{i}"} for i in range(50)]
    body = (
        f"CONN = {milvus_conn!r}\nNAME = {collection_name!r}\nALIAS = {alias!r}\nROWS = {rows!r}\n"
        f"VECTOR = {rows[0]['vec']!r}\n" + FLOW_DAG
    )
    dr, tis = run_dag(write_dag(body, f"lineage_{uuid.uuid4().hex[:8]}"))
    assert dr.state == "success", {k: str(v.state) for k, v in tis.items()}

    coll, live = expected_uri(milvus_uri, collection_name), expected_uri(milvus_uri, alias)
    assert collected("ingest") == (set(), {coll})
    assert collected("dry_drop") == (set(), set())  # a dry run changes nothing
    assert collected("drop") == (set(), {coll})
    assert collected("rebuild") == (set(), {coll})
    assert collected("rebuild_again") == (set(), set())  # the indexes were there: nothing built
    assert collected("swap") == ({coll}, {live})  # the alias now serves the collection
    assert collected("search") == ({live}, set())
    assert collected("query") == ({coll}, set())


# ------------------------------------------------------------------ bucket keys on object storage
S3_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    c = dict(milvus_conn_id=CONN, collection_name=NAME, poll_interval=0.5)
    by_key = MilvusBulkImportOperator(task_id="by_key", files=KEYS, aws_conn_id=AWS, **c)
    by_uri = MilvusBulkImportOperator(task_id="by_uri", files=URIS, validate_files=False, **c)
    by_key >> by_uri
"""


@pytest.mark.slow
def test_import_of_bucket_keys_reports_s3_uris(s3_milvus_server, s3_store, collection_name, tmp_path, monkeypatch, collected):
    """Keys with the bucket from an aws connection, and s3:// URIs alone: both are s3://bucket/key."""
    from tests.conftest import S3_BUCKET, set_connection
    from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY
    from tests.test_bulk_import_s3 import write_remote

    uri = s3_milvus_server.uri
    make_collection(uri, collection_name, rows=0)
    keys = write_remote(uri, collection_name, s3_store, range(40), tmp_path)
    more = write_remote(uri, collection_name, s3_store, range(40, 70), tmp_path)
    aws = f"aws_{uuid.uuid4().hex[:8]}"
    extra = {"endpoint_url": s3_store.endpoint, "region_name": REGION, "service_config": {"s3": {"bucket_name": S3_BUCKET}}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{aws.upper()}", json.dumps({"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY, "extra": extra}))
    uris = [f"s3://{S3_BUCKET}/{k}" for k in more]
    body = f"CONN = {set_connection(monkeypatch, uri)!r}\nAWS = {aws!r}\nNAME = {collection_name!r}\nKEYS = {keys!r}\nURIS = {uris!r}\n"
    dr, tis = run_dag(write_dag(body + S3_DAG))
    assert dr.state == "success", {k: str(v.state) for k, v in tis.items()}

    coll = expected_uri(uri, collection_name)
    assert collected("by_key") == ({f"s3://{S3_BUCKET}/{k}" for k in keys}, {coll})
    assert collected("by_uri") == (set(uris), {coll})
