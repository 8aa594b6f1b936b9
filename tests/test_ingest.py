"""MilvusIngestOperator against the real server and Milvus Lite, directly and inside DAG runs."""

from __future__ import annotations

import random

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.operators.ingest import MilvusIngestOperator
from tests.conftest import conn_env_value, milvus_client
from tests.dag_runner import run_dag, write_dag, xcom
from tests.helpers import DIM, make_collection


def row(i: int, **override) -> dict:
    rng = random.Random(i)
    return {"id": i, "vec": [rng.random() for _ in range(DIM)], "year": 2000 + i % 20, "title": f"book {i}", **override}


def count(uri: str, name: str) -> int:
    """Live rows (deleted/replaced ones excluded), read with strong consistency."""
    with milvus_client(uri) as c:
        c.load_collection(name)
        res = c.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(res[0]["count(*)"])


def ingest(conn_id: str, name: str, data, **kwargs) -> dict:
    return MilvusIngestOperator(task_id="ingest", milvus_conn_id=conn_id, collection_name=name, data=data, **kwargs).execute({})


def test_rows_go_in_batches_and_are_counted(milvus_conn, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=0)
    result = ingest(milvus_conn, collection_name, [row(i) for i in range(250)], batch_size=100)
    assert result == {"collection_name": collection_name, "rows": 250, "batches": 3}
    assert count(milvus_uri, collection_name) == 250
    with milvus_client(milvus_uri) as c:
        got = c.query(collection_name, filter="id == 249", output_fields=["title", "year"], consistency_level="Strong")
    assert [(r["title"], r["year"]) for r in got] == [("book 249", 2000 + 249 % 20)]


def test_upsert_is_safe_to_rerun_from_a_generator(milvus_conn, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=0)
    pulled = []

    def rows():  # a generator: rows are produced batch by batch, never all at once
        for i in range(120):
            pulled.append(i)
            yield row(i)

    for _ in range(2):
        assert ingest(milvus_conn, collection_name, rows, batch_size=50, mode="upsert") == {
            "collection_name": collection_name,
            "rows": 120,
            "batches": 3,
        }
    assert len(pulled) == 240
    assert count(milvus_uri, collection_name) == 120


def test_plain_insert_with_auto_id_duplicates_on_rerun(milvus_conn, milvus_uri, collection_name):
    """What the docstring warns about: insert is not safe to re-run."""
    from pymilvus import DataType

    with milvus_client(milvus_uri) as c:
        schema = c.create_schema(auto_id=True)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        c.create_collection(collection_name, schema=schema)
        params = c.prepare_index_params()
        params.add_index("vec", index_type="FLAT", metric_type="L2")
        c.create_index(collection_name, params)
    rows = [{"vec": row(i)["vec"]} for i in range(30)]
    for _ in range(2):
        assert ingest(milvus_conn, collection_name, rows, batch_size=7)["rows"] == 30
    assert count(milvus_uri, collection_name) == 60
    with pytest.raises(MilvusInputError, match=r"row 0 .*sets 'id', which Milvus generates"):
        ingest(milvus_conn, collection_name, [{"id": 1, "vec": rows[0]["vec"]}])


def test_bad_row_names_batch_row_and_what_was_written(milvus_conn, milvus_uri, collection_name):
    """How a bad row stops the ingest; what makes a row bad is test_row_checks' table."""
    make_collection(milvus_uri, collection_name, rows=0)
    rows = [row(i) for i in range(27)] + [row(27, vec=[0.5] * (DIM - 1))] + [row(i) for i in range(28, 40)]
    with pytest.raises(MilvusInputError) as err:
        ingest(milvus_conn, collection_name, rows, batch_size=10, mode="upsert")
    text = str(err.value)
    assert f"Ingest into {collection_name!r}: batch 3, row 27 (index 7 in the batch)" in text
    assert f"field 'vec': vector has dimension {DIM - 1}, the collection expects {DIM}" in text
    assert "Already written: 20 rows in 2 batches (re-running is safe (upsert))" in text
    assert text.endswith("Fix the data and re-run.")
    assert count(milvus_uri, collection_name) == 20  # the bad batch was not sent


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "delete"}, "mode='delete': use 'insert' or 'upsert'"),
        ({"batch_size": 0}, "batch_size=0: use a whole number of rows >= 1"),
        ({"batch_size": "many"}, "batch_size='many'"),
        ({"data": {"id": 1}}, "must be a list of row dicts"),
        ({"data": None}, "must be a list of row dicts"),
        ({"data": [1, 2]}, r"batch 1, row 0 \(index 0 in the batch\) is a int, not a dict"),
    ],
)
def test_bad_arguments_change_nothing(milvus_conn, milvus_uri, collection_name, kwargs, message):
    make_collection(milvus_uri, collection_name, rows=0)
    args = {"data": [row(i) for i in range(5)], **kwargs}
    with pytest.raises(MilvusInputError, match=message):
        ingest(milvus_conn, collection_name, **args)
    assert count(milvus_uri, collection_name) == 0


def test_missing_collection_is_named(milvus_conn, collection_name):
    with pytest.raises(MilvusInputError, match=f"Collection '{collection_name}' does not exist; create it"):
        ingest(milvus_conn, collection_name, [row(0)])


def test_in_a_dag_from_xcom_and_from_a_callable_with_params(milvus_uri, collection_name, monkeypatch):
    make_collection(milvus_uri, collection_name, rows=0)
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))
    dag_id = write_dag(
        f'''
        import random
        import pendulum
        from airflow.sdk import DAG, Param, task
        from airflow_milvus.operators.ingest import MilvusIngestOperator

        def vec(i):
            rng = random.Random(i)
            return [rng.random() for _ in range({DIM})]

        def more_rows(params):
            for i in range(params["first"], params["first"] + 40):
                yield {{"id": i, "vec": vec(i), "year": 2001, "title": "streamed"}}

        with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1), params={{"first": Param(100, type="integer")}}):
            @task
            def produce():
                return [{{"id": i, "vec": vec(i), "year": 2000, "title": "from xcom"}} for i in range(30)]

            a = MilvusIngestOperator(task_id="from_xcom", collection_name="{collection_name}", data=produce(), batch_size=8,
                                     mode="upsert")
            b = MilvusIngestOperator(task_id="from_callable", collection_name="{collection_name}", data=more_rows,
                                     batch_size=16, mode="upsert")
            a >> b
        '''
    )
    for _ in range(2):  # twice: upserts rewrite the same rows
        dr, tis = run_dag(dag_id, conf={"first": 100})
        assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
        assert xcom(dr, "from_xcom") == {"collection_name": collection_name, "rows": 30, "batches": 4}
        assert xcom(dr, "from_callable") == {"collection_name": collection_name, "rows": 40, "batches": 3}
    assert count(milvus_uri, collection_name) == 70


def test_a_batch_hit_by_an_outage_is_retried_not_lost(milvus_server, collection_name, monkeypatch, capfd):
    """Each batch runs under the retry policy: the server vanishes for 3 s before batch 2."""
    from tests.fault_proxy import FaultProxy

    make_collection(milvus_server.uri, collection_name, rows=0)
    with FaultProxy(milvus_server.port) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_MILVUS_PROXY", conn_env_value(proxy.uri, timeout=3))

        def rows():
            for i in range(150):
                if i == 50:
                    proxy.block_for(3)
                yield row(i)

        result = ingest("milvus_proxy", collection_name, rows, batch_size=50, mode="upsert")
    assert result == {"collection_name": collection_name, "rows": 150, "batches": 3}
    assert proxy.faults and proxy.connections >= 2
    logs = "".join(capfd.readouterr())  # Airflow's structlog writes to the terminal
    assert f"Milvus upsert({collection_name}, 50 rows): attempt 1/5 failed" in logs
    assert count(milvus_server.uri, collection_name) == 150


@pytest.mark.slow  # a whole example DAG, twice
def test_reindex_example_reloads_through_the_ingest_operator_twice(milvus_uri, collection_name, monkeypatch):
    import shutil

    from tests.conftest import REPO
    from tests.dag_runner import dags_folder

    shutil.copy(REPO / "example_dags" / "milvus_reindex.py", dags_folder())
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))
    for _ in range(2):
        dr, tis = run_dag("milvus_reindex", conf={"collection": collection_name, "rows": 600})
        assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
        assert xcom(dr, "reload") == {"collection_name": collection_name, "rows": 600, "batches": 2}
        assert xcom(dr, "search")[0] == 7
    assert count(milvus_uri, collection_name) == 600


def embedding_output(n: int) -> dict:
    """The shape common.ai's LlamaIndexEmbeddingOperator returns (the provider is not installed here)."""
    return {"chunks": [
        {"text": f"chunk {i} of the handbook", "metadata": {"source": f"doc{i % 3}.md", "page": i}, "vector": row(i)["vec"]}
        for i in range(n)
    ]}


def rag_collection(uri: str, name: str, *, vector_field: str, fields: dict) -> None:
    from pymilvus import DataType

    with milvus_client(uri) as c:
        schema = c.create_schema(auto_id=True)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("text", DataType.VARCHAR, max_length=256)
        schema.add_field(vector_field, DataType.FLOAT_VECTOR, dim=DIM)
        for field, kind in fields.items():
            schema.add_field(field, kind, **({"max_length": 64} if kind == DataType.VARCHAR else {}))
        c.create_collection(name, schema=schema)
        params = c.prepare_index_params()
        params.add_index(vector_field, index_type="FLAT", metric_type="L2")
        c.create_index(name, params)


def test_embedding_operator_chunks_default_mapping(milvus_conn, milvus_uri, collection_name):
    from pymilvus import DataType

    rag_collection(milvus_uri, collection_name, vector_field="vector", fields={"metadata": DataType.JSON})
    assert ingest(milvus_conn, collection_name, embedding_output(12), batch_size=5)["rows"] == 12
    with milvus_client(milvus_uri) as c:
        c.load_collection(collection_name)
        got = c.query(collection_name, filter='text == "chunk 7 of the handbook"', output_fields=["metadata", "vector"],
                      consistency_level="Strong")
    assert [g["metadata"] for g in got] == [{"source": "doc1.md", "page": 7}]
    assert got[0]["vector"] == pytest.approx(row(7)["vec"], rel=1e-6)


def test_embedding_operator_chunks_mapping_overridden(milvus_conn, milvus_uri, collection_name):
    from pymilvus import DataType

    rag_collection(milvus_uri, collection_name, vector_field="embedding", fields={"source": DataType.VARCHAR, "page": DataType.INT64})
    result = ingest(milvus_conn, collection_name, embedding_output(9), chunk_fields={"vector": "embedding", "metadata": "*"})
    assert result["rows"] == 9
    with milvus_client(milvus_uri) as c:
        c.load_collection(collection_name)
        got = c.query(collection_name, filter='source == "doc2.md"', output_fields=["page"], consistency_level="Strong")
    assert sorted(g["page"] for g in got) == [2, 5, 8]
    # The default mapping does not fit this collection: the error names the field and the collection's fields.
    with pytest.raises(MilvusInputError, match=r"row 0 .*lacks field\(s\) embedding"):
        ingest(milvus_conn, collection_name, embedding_output(2))
    with pytest.raises(MilvusInputError, match=r"chunks'\]\[0\]\['text'\] is not a dict"):
        ingest(milvus_conn, collection_name, embedding_output(1), chunk_fields={"text": "*"})
