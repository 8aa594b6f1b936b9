"""Indexes other clients created survive a drop and a rebuild by the provider exactly: the
client that created them reads back what it read before (names as stored, type, metric, and
the parameters in the stored layout), on the real server.

The pymilvus ORM and the Node SDK store build parameters as one JSON string under ``params``;
MilvusClient stores flat keys with string values. Milvus 2.3.5 also stores index names with
leading or trailing spaces.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import uuid
import warnings
from pathlib import Path

import pytest

from tests.conftest import milvus_client, set_connection

NODE_DIR = Path(__file__).parent / "node"
DIM = 8


def make_empty_collection(uri: str, name: str) -> None:
    """id, vec, year with a few rows: builds stay cheap (2.3.5 takes one vector field)."""
    from pymilvus import DataType

    with milvus_client(uri) as c:
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("year", DataType.INT64)
        c.create_collection(name, schema=schema)
        rng = random.Random(3)
        c.insert(name, [{"id": i, "vec": [rng.random() for _ in range(DIM)], "year": 1990 + i} for i in range(20)])
        c.flush(name)


def client_view(uri: str, name: str) -> dict:
    """What MilvusClient.describe_index reads of every index, build progress left out."""
    progress = {"total_rows", "indexed_rows", "pending_index_rows", "state"}
    with milvus_client(uri) as c:
        return {n: {k: v for k, v in c.describe_index(name, n).items() if k not in progress} for n in c.list_indexes(name)}


def drop_and_rebuild(conn_id: str, name: str) -> dict:
    """The reindex core, as a DAG runs it: drop every index, then rebuild from the drop's result."""
    from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator

    dropped = MilvusDropIndexOperator(task_id="drop", milvus_conn_id=conn_id, collection_name=name, drop_all=True).execute({})
    left = client_view_names(conn_id, name)
    MilvusCreateIndexOperator(task_id="rebuild", milvus_conn_id=conn_id, index_specs=dropped, poll_interval=0.5).execute({})
    assert left == [], f"the drop left {left}"
    return dropped


def client_view_names(conn_id: str, name: str) -> list[str]:
    from airflow_milvus.hooks.milvus import MilvusHook

    with MilvusHook(conn_id) as hook:
        return [s["index_name"] for s in hook.list_index_specs(name)]


@pytest.fixture
def server_conn(milvus_server, monkeypatch) -> str:
    return set_connection(monkeypatch, milvus_server.uri)


# ------------------------------------------------------------------ the pymilvus ORM
def orm_view(alias: str, name: str) -> dict:
    from pymilvus import Collection

    with warnings.catch_warnings():  # the ORM is deprecated in pymilvus 3, not gone
        warnings.simplefilter("ignore")
        return {i.index_name: (i.field_name, i.params) for i in Collection(name, using=alias).indexes}


def test_orm_indexes_come_back_as_the_orm_made_them(milvus_server, server_conn, collection_name):
    from pymilvus import Collection, connections

    make_empty_collection(milvus_server.uri, collection_name)
    alias = f"orm_{uuid.uuid4().hex[:8]}"
    connections.connect(alias, uri=milvus_server.uri)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            books = Collection(collection_name, using=alias)  # the seed page's form
            books.create_index("vec", {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 1024}}, index_name="vec_idx ")
            books.create_index("year", {"index_type": "STL_SORT", "metric_type": ""}, index_name=" year_idx")
        before, client_before = orm_view(alias, collection_name), client_view(milvus_server.uri, collection_name)
        assert before["vec_idx "] == ("vec", {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 1024}})
        assert before[" year_idx"] == ("year", {"index_type": "STL_SORT", "metric_type": ""})

        dropped = drop_and_rebuild(server_conn, collection_name)

        assert sorted(s["index_name"] for s in dropped["dropped"]) == sorted(before)  # as Milvus stored them
        after = orm_view(alias, collection_name)
        assert after == before
        assert after["vec_idx "][1]["params"]["nlist"] == 1024  # nested, and still a number
        assert client_view(milvus_server.uri, collection_name) == client_before
    finally:
        connections.disconnect(alias)


# ------------------------------------------------------------------ MilvusClient (and this package)
def test_milvus_client_indexes_keep_flat_keys(milvus_server, server_conn, collection_name):
    make_empty_collection(milvus_server.uri, collection_name)
    with milvus_client(milvus_server.uri) as c:
        params = c.prepare_index_params()
        params.add_index("vec", index_type="IVF_FLAT", index_name="vec_idx ", metric_type="COSINE", params={"nlist": 16})
        params.add_index("year", index_type="STL_SORT", index_name="year")
        c.create_index(collection_name, params)
    before = client_view(milvus_server.uri, collection_name)
    assert before["vec_idx "]["nlist"] == "16"  # flat, a string

    drop_and_rebuild(server_conn, collection_name)

    assert client_view(milvus_server.uri, collection_name) == before


# ------------------------------------------------------------------ the Node SDK
def node(*args: str) -> object:
    result = subprocess.run(["node", str(NODE_DIR / "interop.js"), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture
def node_sdk():
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the Node SDK interop test needs Node.js 20+")
    if not (NODE_DIR / "node_modules" / "@zilliz" / "milvus2-sdk-node").is_dir():
        pytest.skip("the Node SDK is not installed: run npm ci --prefix tests/node (scripts/test.sh does)")


def test_node_sdk_indexes_come_back_as_node_made_them(node_sdk, milvus_server, server_conn, collection_name):
    make_empty_collection(milvus_server.uri, collection_name)
    address = milvus_server.uri.split("://", 1)[1]
    requests = [
        {"field_name": "vec", "index_name": "vec_idx ", "index_type": "HNSW", "metric_type": "COSINE",
         "params": {"M": 8, "efConstruction": 64}},
        # The SDK's older form: the pairs as given, metric_type '' included.
        {"field_name": "year", "index_name": " year_idx", "extra_params": {"index_type": "STL_SORT", "metric_type": ""}},
    ]  # fmt: skip
    node(address, "create", collection_name, json.dumps(requests))
    before, client_before = node(address, "describe", collection_name), client_view(milvus_server.uri, collection_name)
    assert {"key": "params", "value": '{"M":8,"efConstruction":64}'} in before[-1]["params"]  # "vec_idx " sorts last

    drop_and_rebuild(server_conn, collection_name)

    assert node(address, "describe", collection_name) == before
    assert client_view(milvus_server.uri, collection_name) == client_before
