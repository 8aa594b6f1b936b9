"""Arrange collections for tests with raw pymilvus (not the code under test)."""

from __future__ import annotations

import random

from tests.conftest import milvus_client

DIM = 8
VECTOR_INDEX = {"field_name": "vec", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 8, "efConstruction": 64}}


def is_lite(uri: str) -> bool:
    return "://" not in uri


def scalar_index(uri: str) -> dict:
    """Milvus Lite builds only INVERTED scalar indexes; server 2.3.5 has no INVERTED."""
    return {"field_name": "year", "index_type": "INVERTED" if is_lite(uri) else "STL_SORT", "metric_type": None, "params": {}}


def make_collection(uri, name, *, rows=200, indexes=(VECTOR_INDEX,), load=False, dim=DIM):
    """A collection id/vec/year/title with ``rows`` rows and the given index specs."""
    from pymilvus import DataType

    with milvus_client(uri) as c:
        if c.has_collection(name):
            c.drop_collection(name)
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("year", DataType.INT64)
        schema.add_field("title", DataType.VARCHAR, max_length=128)
        c.create_collection(name, schema=schema)
        if rows:
            rng = random.Random(7)
            c.insert(name, [
                {"id": i, "vec": [rng.random() for _ in range(dim)], "year": 1900 + i % 100, "title": f"book {i}"}
                for i in range(rows)
            ])
            c.flush(name)
        if c.get_load_state(name)["state"].name == "Loaded":
            c.release_collection(name)  # Lite reports new collections as Loaded
        if indexes:
            params = c.prepare_index_params()
            for spec in indexes:
                kw = {"params": dict(spec.get("params") or {})}
                if spec.get("metric_type"):
                    kw["metric_type"] = spec["metric_type"]
                params.add_index(spec["field_name"], index_type=spec["index_type"],
                                 index_name=spec.get("index_name") or spec["field_name"], **kw)
            c.create_index(name, params)
        if load:
            c.load_collection(name)
    return name


def index_summary(uri, name):
    """{index_name: (field, type, metric)} straight from pymilvus."""
    out = {}
    with milvus_client(uri) as c:
        for idx in c.list_indexes(name):
            d = c.describe_index(name, idx)
            metric = d.get("metric_type")
            out[idx] = (d.get("field_name"), d.get("index_type"), None if metric in (None, "", "NONE") else metric)
    return out


def load_state(uri, name):
    with milvus_client(uri) as c:
        return c.get_load_state(name)["state"].name


def row_count(uri, name):
    with milvus_client(uri) as c:
        c.flush(name)
        return int(c.get_collection_stats(name)["row_count"])


def live_rows(uri, name):
    """Rows a query sees (count(*), strong consistency); upserts are not double counted.

    get_collection_stats on the server counts an upserted row twice until compaction."""
    with milvus_client(uri) as c:
        res = c.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(res[0]["count(*)"])
