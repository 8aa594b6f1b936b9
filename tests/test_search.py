"""MilvusSearchOperator, MilvusQueryOperator, the hook's search/query and @task.milvus, on a
server and on Milvus Lite; the JSON-safe conversion and the request checks without Milvus."""

from __future__ import annotations

import json
import random

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.operators.search import (
    MilvusQueryOperator,
    MilvusSearchOperator,
    check_result_size,
)
from airflow_milvus.planning.search import check_request, json_safe, shape_hits
from tests.conftest import conn_env_value, milvus_client
from tests.dag_runner import run_dag, write_dag, xcom
from tests.helpers import DIM, make_collection


def vec(i: int) -> list[float]:
    """Row i's vector in tests.helpers.make_collection (one seeded stream for all rows)."""
    rng = random.Random(7)
    rows = [[rng.random() for _ in range(DIM)] for _ in range(i + 1)]
    return rows[i]


# ---------------------------------------------------------------------------- no Milvus
def test_json_safe_converts_numpy_bytes_and_half_precision_vectors():
    np = pytest.importorskip("numpy")
    half = np.array([0.5, -1.25, 2.0], dtype=np.float16)
    bf16 = (np.array([0.5, -1.25, 2.0], dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    value = {
        "i": np.int64(7), "f": np.float32(0.25), "b": np.bool_(True), "arr": np.arange(3, dtype=np.int32),
        "f32": np.array([0.5, 1.5], dtype=np.float32), "nested": ({"k": np.float64(1.0)},), 5: "int key",
        "sparse": {3: np.float32(0.5)}, "raw": b"\x01\xff",
    }  # fmt: skip
    safe = json_safe(value)
    assert safe == {
        "i": 7, "f": 0.25, "b": True, "arr": [0, 1, 2], "f32": [0.5, 1.5], "nested": [{"k": 1.0}], "5": "int key",
        "sparse": {"3": 0.5}, "raw": [1, 255],
    }  # fmt: skip
    assert type(safe["i"]) is int and type(safe["f"]) is float and type(safe["b"]) is bool
    json.dumps(safe, allow_nan=False)
    # A half-precision vector as pymilvus returns it (bytes, or a list of one bytes), or as an array.
    assert json_safe(half.tobytes(), "FLOAT16_VECTOR") == [0.5, -1.25, 2.0]
    assert json_safe([half.tobytes()], "FLOAT16_VECTOR") == [0.5, -1.25, 2.0]
    assert json_safe(half) == [0.5, -1.25, 2.0]
    assert json_safe([bf16], "BFLOAT16_VECTOR") == [0.5, -1.25, 2.0]
    assert json_safe([b"\x0f\xf0"], "BINARY_VECTOR") == [15, 240]
    try:
        from ml_dtypes import bfloat16
    except ImportError:
        pass
    else:
        assert json_safe(np.array([0.5, 2.0], dtype=bfloat16)) == [0.5, 2.0]
    with pytest.raises(TypeError, match="has no JSON form"):
        json_safe(object())


def _description(dynamic=False):
    from pymilvus import DataType

    fields = [
        {"name": "id", "type": DataType.INT64, "params": {}, "is_primary": True},
        {"name": "vec", "type": DataType.FLOAT_VECTOR, "params": {"dim": 4}},
        {"name": "half", "type": DataType.FLOAT16_VECTOR, "params": {"dim": 2}},
        {"name": "title", "type": DataType.VARCHAR, "params": {"max_length": 64}},
    ]
    return {"collection_name": "books", "fields": fields, "enable_dynamic_field": dynamic}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"anns_field": None}, r"'books' has 2 vector fields \(vec, half\); set anns_field"),
        ({"anns_field": "nope"}, r"'books' has no field 'nope' \(anns_field\); its vector fields are vec, half"),
        ({"anns_field": "title"}, r"Field 'title' of 'books' is VARCHAR, not a vector field"),
        ({"data": [[1.0, 2.0, 3.0]]}, r"data\[0\] has dimension 3, but books.vec is FLOAT_VECTOR of dimension 4"),
        ({"data": [1.0, 2.0, 3.0, 4.0]}, r"data is one vector, not a list of vectors: wrap it, data=\[vector\]"),
        ({"data": []}, r"data must be a non-empty list of query vectors"),
        ({"data": [["a", "b", "c", "d"]]}, r"data\[0\] is not a list of numbers"),
        ({"output_fields": ["nope"]}, r"'books' has no field 'nope' \(output_fields\); its fields are id, vec, half, title"),
        ({"output_fields": "title"}, r"output_fields='title' is not a list"),
        ({"output_fields": ["vec"]}, r"names vector field\(s\) vec .* Set include_vectors=True"),
        ({"output_fields": ["count(*)"]}, r"'count\(\*\)' works in a query, not in a search"),
    ],
)
def test_request_checks_name_the_object_and_the_fix(kwargs, message):
    args = {"search": True, "output_fields": None, "include_vectors": False, "data": [[0.0] * 4], "anns_field": "vec", **kwargs}
    with pytest.raises(MilvusInputError, match=message):
        check_request(_description(), **args)


def test_request_fields_and_shaping():
    np = pytest.importorskip("numpy")
    # A search asks for the primary key when no field is wanted (Lite sends every field for none) and keeps none.
    req = check_request(_description(), search=True, output_fields=None, include_vectors=False, data=[[0, 1, 2, 3]], anns_field="vec")
    assert (req.request_fields, req.keep, req.data) == (["id"], set(), [[0.0, 1.0, 2.0, 3.0]])
    raw = [[{"id": np.int64(4), "distance": np.float32(0.5), "entity": {"id": 4, "vec": [1.0] * 4}}]]
    assert shape_hits(raw, req) == [[{"id": 4, "distance": 0.5, "entity": {}}]]
    # '*' is every field but the vectors, unless include_vectors; half-precision query vectors go as float16.
    req = check_request(_description(), search=True, output_fields=["*"], include_vectors=False, data=[[1, 2]], anns_field="half")
    assert req.request_fields == ["id", "title"] and req.data[0].dtype == np.float16
    hit = {"id": 1, "distance": 0.0, "entity": {"id": 1, "title": "t", "half": [np.array([1, 2], np.float16).tobytes()]}}
    assert shape_hits([[hit]], req)[0][0]["entity"] == {"id": 1, "title": "t"}
    req = check_request(_description(), search=True, output_fields=["*"], include_vectors=True, data=[[1, 2]], anns_field="half")
    assert shape_hits([[hit]], req)[0][0]["entity"] == {"id": 1, "title": "t", "half": [1.0, 2.0]}
    # A dynamic collection takes any output field name (a key of the dynamic field).
    req = check_request(_description(dynamic=True), search=False, output_fields=["genre"], include_vectors=False)
    assert req.request_fields == ["genre"]


def test_result_size_bound():
    result = [[{"id": i, "distance": 0.5, "entity": {"title": "x" * 50}} for i in range(10)]]
    size = check_result_size(result, 10_000, "the search")
    assert size == len(json.dumps(result, separators=(",", ":")))
    with pytest.raises(MilvusInputError, match=rf"is {size} bytes as JSON, more than max_result_bytes=100: nothing was pushed"):
        check_result_size(result, 100, "the search")


# ---------------------------------------------------------------------------- both flavours
def search(conn_id, name, data, **kwargs):
    return MilvusSearchOperator(task_id="search", milvus_conn_id=conn_id, collection_name=name, data=data, **kwargs).execute({})


def query(conn_id, name, **kwargs):
    return MilvusQueryOperator(task_id="query", milvus_conn_id=conn_id, collection_name=name, **kwargs).execute({})


def test_search_and_query_through_an_alias(milvus_conn, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=30, load=True)
    alias = f"{collection_name}_live"
    with milvus_client(milvus_uri) as c:
        c.create_alias(collection_name, alias)
    hits = search(milvus_conn, alias, [vec(7), vec(12)], limit=3, output_fields=["title", "year"])
    assert [h[0]["id"] for h in hits] == [7, 12] and [len(h) for h in hits] == [3, 3]
    assert hits[0][0]["entity"] == {"title": "book 7", "year": 1907} and hits[0][0]["distance"] < 1e-4
    assert all(a["distance"] <= b["distance"] for a, b in zip(hits[0], hits[0][1:]))
    json.dumps(hits, allow_nan=False)
    # No output fields: ids and distances only, on both flavours (Lite would send every field).
    assert search(milvus_conn, alias, [vec(7)], limit=1) == [[{"id": 7, "distance": hits[0][0]["distance"], "entity": {}}]]
    got = search(milvus_conn, collection_name, [vec(7)], limit=2, output_fields=["*"], include_vectors=True, filter="id != 7",
                 consistency_level="strong")
    assert got[0][0]["id"] != 7 and set(got[0][0]["entity"]) == {"id", "vec", "year", "title"}
    assert len(got[0][0]["entity"]["vec"]) == DIM
    rows = query(milvus_conn, alias, filter="id in [3, 1, 2]", output_fields=["title"])
    assert sorted(rows, key=lambda r: r["id"]) == [{"id": i, "title": f"book {i}"} for i in (1, 2, 3)]
    rows = query(milvus_conn, collection_name, filter="year >= 1925")
    assert sorted(r["id"] for r in rows) == [25, 26, 27, 28, 29] and set(rows[0]) == {"id", "year", "title"}
    assert len(query(milvus_conn, collection_name, limit=4)) == 4
    assert query(milvus_conn, collection_name, filter="id >= 0", output_fields=["count(*)"]) == [{"count(*)": 30}]


def test_bad_input_is_refused_alike_and_changes_nothing(milvus_conn, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=20, load=True)
    unloaded = make_collection(milvus_uri, f"{collection_name}_u", rows=5)
    unindexed = make_collection(milvus_uri, f"{collection_name}_n", rows=5, indexes=())
    with milvus_client(milvus_uri) as c:
        for name in (unloaded, unindexed):
            c.release_collection(name)  # Milvus Lite keeps reporting a collection without an index Loaded
        before = {n: c.get_load_state(n)["state"].name for n in (collection_name, unloaded, unindexed)}
    assert before[collection_name] == "Loaded" and before[unloaded] == "NotLoad"
    ok = [vec(1)]
    cases = [
        (search, {"data": [[0.5] * (DIM - 1)]}, rf"data\[0\] has dimension {DIM - 1}, but {collection_name}.vec is FLOAT_VECTOR of dimension {DIM}"),
        (search, {"anns_field": "nope"}, rf"'{collection_name}' has no field 'nope' \(anns_field\)"),
        (search, {"output_fields": ["nope"]}, rf"'{collection_name}' has no field 'nope' \(output_fields\); its fields are id, vec, year, title"),
        (query, {"filter": "id < 3", "output_fields": ["nope"]}, r"has no field 'nope' \(output_fields\)"),
        (search, {"filter": "year >>> 3"}, rf"Milvus rejected filter 'year >>> 3' on '{collection_name}': .+\. Fix the expression"),
        (search, {"filter": "nope > 3"}, r"Milvus rejected filter 'nope > 3'.*the fields are id, vec, year, title"),
        (query, {"filter": "year >>> 3"}, r"Milvus rejected filter 'year >>> 3'"),
        (search, {"collection_name": unloaded}, rf"'{unloaded}' is NotLoad: Milvus searches and queries only loaded collections. Load it first"),
        (query, {"collection_name": unloaded, "filter": "id > 0"}, rf"'{unloaded}' is NotLoad"),
        (search, {"collection_name": unindexed}, rf"Vector field\(s\) vec of '{unindexed}' have no index.*Create the index"),
        (search, {"collection_name": f"{collection_name}_x"}, rf"Collection '{collection_name}_x' does not exist .*Check the name"),
        (query, {"collection_name": f"{collection_name}_x", "filter": "id > 0"}, r"does not exist"),
        (search, {"partition_names": ["nope"]}, r"has no partition 'nope'; its partitions are _default"),
        (search, {"search_params": {"metric_type": "IP"}}, r"metric_type 'IP' differs from the index on .*vec, built for 'L2'"),
        (search, {"limit": 20000}, r"limit=20000 must be between 1 and 16384"),
        (search, {"consistency_level": "Bogus"}, r"consistency_level='Bogus' is not one of Strong, Session, Bounded, Eventually"),
        (query, {}, r"without a filter needs a limit"),
        (search, {"max_result_bytes": 0}, r"max_result_bytes = 0 must be at least 1"),
    ]
    for fn, kwargs, message in cases:
        kwargs = {"collection_name": collection_name, **kwargs}
        name = kwargs.pop("collection_name")
        args = (kwargs.pop("data", ok),) if fn is search else ()
        with pytest.raises(MilvusInputError, match=message):
            fn(milvus_conn, name, *args, **kwargs)
    with milvus_client(milvus_uri) as c:
        after = {n: c.get_load_state(n)["state"].name for n in (collection_name, unloaded, unindexed)}
        count = c.query(collection_name, filter="", limit=100, output_fields=["id"])
    assert after == before
    assert len(count) == 20


def test_operators_and_decorator_in_a_dag_run(milvus_uri, collection_name, monkeypatch):
    make_collection(milvus_uri, collection_name, rows=30, load=True)
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_SEARCH", conn_env_value(milvus_uri))
    dag_id = write_dag(
        f'''
        import random
        import pendulum
        from airflow.sdk import DAG, task
        from airflow_milvus.operators.search import MilvusQueryOperator, MilvusSearchOperator

        NAME = "{collection_name}"

        with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1), params={{"year": 1920}}):
            @task
            def vectors():
                rng = random.Random(7)
                rows = [[rng.random() for _ in range({DIM})] for _ in range(8)]
                return [rows[7], rows[3]]

            queries = vectors()
            found = MilvusSearchOperator(task_id="search", milvus_conn_id="milvus_search", collection_name=NAME,
                                         data=queries, limit=3, output_fields=["title"], include_vectors="false")
            rows = MilvusQueryOperator(task_id="query", milvus_conn_id="milvus_search", collection_name=NAME,
                                       filter="year > {{{{ params.year }}}}", output_fields=["title"], limit="5")
            too_big = MilvusSearchOperator(task_id="too_big", milvus_conn_id="milvus_search", collection_name=NAME,
                                           data=queries, limit=10, output_fields=["*"], include_vectors=True,
                                           max_result_bytes="{{{{ 2000 }}}}")

            @task.milvus(milvus_conn_id="milvus_search", retry_attempts=2)
            def titles(hits, milvus_hook):
                ids = [hit["id"] for hit in hits[0]]
                got = milvus_hook.query(NAME, filter=f"id in {{ids}}", output_fields=["title"])
                by_id = {{row["id"]: row["title"] for row in got}}
                return {{"titles": [by_id[i] for i in ids], "connected": milvus_hook._client is not None,
                        "retry_attempts": milvus_hook.retry_policy.attempts}}

            titles(found.output)
        '''
    )
    dr, tis = run_dag(dag_id)
    states = {t: str(ti.state) for t, ti in tis.items()}
    assert states == {"vectors": "success", "search": "success", "query": "success", "too_big": "failed", "titles": "success"}
    hits = xcom(dr, "search")
    assert [h[0]["id"] for h in hits] == [7, 3] and hits[0][0]["entity"] == {"title": "book 7"}
    rows = xcom(dr, "query")
    assert len(rows) == 5 and all(set(r) == {"id", "title"} and 1920 < 1900 + r["id"] % 100 for r in rows)
    assert xcom(dr, "titles") == {"titles": [h["entity"]["title"] for h in hits[0]], "connected": True, "retry_attempts": 2}
    assert xcom(dr, "too_big") is None  # refused before anything was pushed


def test_decorator_closes_the_hook_when_the_function_fails(lite_uri, monkeypatch):
    import pendulum
    from airflow.sdk import DAG, task

    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DECO", conn_env_value(lite_uri))
    seen = {}

    with DAG("deco_close", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        @task.milvus(milvus_conn_id="milvus_deco")
        def boom(milvus_hook, n):
            seen["hook"], seen["connected"], seen["n"] = milvus_hook, milvus_hook._client is not None, n
            raise RuntimeError("boom")

        op = boom(n=3).operator
    assert op.op_kwargs == {"n": 3, "milvus_hook": None}  # nothing unserializable in the DAG
    with pytest.raises(RuntimeError, match="boom"):
        op.execute({"params": {}})  # Airflow's context_merge drops an empty context
    assert seen["connected"] is True and seen["n"] == 3 and seen["hook"]._client is None

    with DAG("deco_bad", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        @task.milvus
        def no_hook(n):
            return n

        with pytest.raises(TypeError, match="has no 'milvus_hook' parameter"):
            no_hook(1)
