"""MilvusBulkImportOperator: import jobs on the real server, the reading fallback on Milvus Lite."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import uuid

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator
from tests.conftest import conn_env_value, milvus_client
from tests.dag_runner import run_dag, write_dag, xcom
from tests.helpers import DIM, make_collection, row_count

# The operator runs outside a task in most of these tests; its import memory is a Variable.
pytestmark = pytest.mark.usefixtures("variables_outside_a_task")


@pytest.fixture
def server_conn(milvus_server, monkeypatch) -> str:
    """A connection to the real server, for what only import jobs do."""
    conn_id = f"milvus_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_env_value(milvus_server.uri))
    return conn_id


def row(i: int, **override) -> dict:
    rng = random.Random(i)
    return {"id": i, "vec": [rng.random() for _ in range(DIM)], "year": 2000 + i % 20, "title": f"book {i}", **override}


def write_with_bulk_writer(uri: str, name: str, folder, ids, file_type: str = "PARQUET") -> list[str]:
    """Import files as users write them: pymilvus LocalBulkWriter with the collection's schema."""
    from pymilvus import CollectionSchema
    from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter

    with milvus_client(uri) as c:
        schema = CollectionSchema.construct_from_dict(c.describe_collection(name))
    writer = LocalBulkWriter(schema=schema, local_path=str(folder), file_type=getattr(BulkFileType, file_type))
    for i in ids:
        writer.append_row(row(i))
    writer.commit()
    return [f for batch in writer.batch_files for f in batch]


def write_json(path, rows) -> str:
    path.write_text(json.dumps({"rows": rows}))
    return str(path)


def run_import(conn_id: str, name: str, files, **kwargs) -> dict:
    kwargs.setdefault("poll_interval", 0.5)
    return MilvusBulkImportOperator(task_id="import", milvus_conn_id=conn_id, collection_name=name, files=files, **kwargs).execute({})


def ids_in(uri: str, name: str) -> list[int]:
    with milvus_client(uri) as c:
        c.load_collection(name)
        got = c.query(name, filter="id >= 0", output_fields=["id"], consistency_level="Strong", limit=16000)
    return sorted(r["id"] for r in got)


def test_parquet_and_json_import_then_rerun_skips(milvus_conn, milvus_uri, collection_name, flavour, tmp_path):
    make_collection(milvus_uri, collection_name, rows=0)
    parquet = write_with_bulk_writer(milvus_uri, collection_name, tmp_path / "pq", range(0, 300))
    json_file = write_with_bulk_writer(milvus_uri, collection_name, tmp_path / "js", range(300, 420), "JSON")
    first = run_import(milvus_conn, collection_name, [*parquet, *json_file])
    assert (first["rows"], first["skipped"], first["files"], first["skipped_files"]) == (420, False, 2, 0)
    assert len(first["job_ids"]) == (2 if flavour == "server" else 0)
    assert first["method"] == ("import_job" if flavour == "server" else "insert")
    json.dumps(first)  # XCom-safe
    again = run_import(milvus_conn, collection_name, [*parquet, *json_file])
    assert (again["rows"], again["skipped"], again["skipped_files"], again["job_ids"]) == (0, True, 2, first["job_ids"])
    assert ids_in(milvus_uri, collection_name) == list(range(420))  # nothing duplicated
    # A new file next to the imported ones: only it is imported.
    extra = write_with_bulk_writer(milvus_uri, collection_name, tmp_path / "more", range(420, 450))
    third = run_import(milvus_conn, collection_name, [*parquet, *json_file, *extra])
    assert (third["rows"], third["skipped"], third["skipped_files"]) == (30, False, 2)
    assert row_count(milvus_uri, collection_name) == 450


def test_numpy_columns_of_one_batch_are_one_item(milvus_conn, milvus_uri, collection_name, tmp_path):
    make_collection(milvus_uri, collection_name, rows=0)
    batch = write_with_bulk_writer(milvus_uri, collection_name, tmp_path, range(50), "NUMPY")
    assert sorted(os.path.basename(p) for p in batch) == ["id.npy", "title.npy", "vec.npy", "year.npy"]
    assert run_import(milvus_conn, collection_name, [batch])["rows"] == 50
    with milvus_client(milvus_uri) as c:
        c.load_collection(collection_name)
        got = c.query(collection_name, filter="id == 49", output_fields=["title", "year"], consistency_level="Strong")
    assert [(r["title"], r["year"]) for r in got] == [("book 49", 2000 + 49 % 20)]


def test_recreated_collection_is_imported_again(milvus_conn, milvus_uri, collection_name, tmp_path):
    """The memory belongs to the collection, not its name: after drop and re-create, import again."""
    make_collection(milvus_uri, collection_name, rows=0)
    files = write_with_bulk_writer(milvus_uri, collection_name, tmp_path, range(40))
    assert run_import(milvus_conn, collection_name, files)["rows"] == 40
    make_collection(milvus_uri, collection_name, rows=0)
    result = run_import(milvus_conn, collection_name, files)
    assert (result["rows"], result["skipped"]) == (40, False)
    assert row_count(milvus_uri, collection_name) == 40


def test_partition(milvus_conn, milvus_uri, collection_name, tmp_path):
    make_collection(milvus_uri, collection_name, rows=0)
    with milvus_client(milvus_uri) as c:
        c.create_partition(collection_name, "p2026")
    files = write_with_bulk_writer(milvus_uri, collection_name, tmp_path, range(25))
    assert run_import(milvus_conn, collection_name, files, partition_name="p2026")["partition_name"] == "p2026"
    with milvus_client(milvus_uri) as c:
        c.load_collection(collection_name)
        got = c.query(collection_name, filter="", output_fields=["count(*)"], partition_names=["p2026"], consistency_level="Strong")
    assert got[0]["count(*)"] == 25
    with pytest.raises(MilvusInputError, match=r"Partition 'nope' does not exist in collection .*create it or leave partition_name unset"):
        run_import(milvus_conn, collection_name, files, partition_name="nope")


# ---------------------------------------------------------------------- bad input
BAD_ROWS = {
    "wrong dimension": ({"vec": [0.5] * (DIM - 1)}, r"vector has dimension 7, the collection expects 8"),
    "wrong type": ({"year": "1999"}, r"field 'year': expected an integer \(INT64\), got str"),
    "unknown field": ({"colour": "red"}, r"has field 'colour', which the collection does not have"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_file_is_refused_naming_file_and_fix(milvus_conn, milvus_uri, collection_name, tmp_path, case):
    make_collection(milvus_uri, collection_name, rows=20)
    override, message = BAD_ROWS[case]
    good = write_json(tmp_path / "good.json", [row(i) for i in range(100, 110)])
    bad = write_json(tmp_path / "bad.json", [row(200), row(201, **override)])
    with pytest.raises(MilvusInputError, match=rf"Import file .*bad\.json: row 1 .*{message}.*Fix the file"):
        run_import(milvus_conn, collection_name, [good, bad])
    assert row_count(milvus_uri, collection_name) == 20  # checked before any job: the good file waits too


def test_bad_parquet_is_refused(milvus_conn, milvus_uri, collection_name, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    make_collection(milvus_uri, collection_name, rows=20)
    path = tmp_path / "short.parquet"
    pq.write_table(pa.table({"id": [1, 2], "vec": [[0.1] * 4, [0.2] * 4], "year": [1, 2], "title": ["a", "b"]}), path)
    with pytest.raises(MilvusInputError, match=r"short\.parquet: row 0 field 'vec': vector has dimension 4, the collection expects 8"):
        run_import(milvus_conn, collection_name, [str(path)])
    assert row_count(milvus_uri, collection_name) == 20


def test_missing_file_empty_list_and_missing_collection(milvus_conn, milvus_uri, collection_name, tmp_path):
    make_collection(milvus_uri, collection_name, rows=20)
    missing = str(tmp_path / "nowhere.parquet")
    with pytest.raises(MilvusInputError, match=r"Import file '.*nowhere\.parquet' does not exist on this worker\. Fix the path"):
        run_import(milvus_conn, collection_name, [missing])
    with pytest.raises(MilvusInputError, match=r"files=\[\]: give a non-empty list of paths"):
        run_import(milvus_conn, collection_name, [])
    with pytest.raises(MilvusInputError, match=r"Import item \['rows.csv'\]: use one \.json .* or \.parquet file per item"):
        run_import(milvus_conn, collection_name, ["rows.csv"])
    good = write_json(tmp_path / "good.json", [row(1)])
    with pytest.raises(MilvusInputError, match=r"Collection 'no_such_books' does not exist .*create it before importing"):
        run_import(milvus_conn, "no_such_books", [good])
    assert row_count(milvus_uri, collection_name) == 20


@pytest.mark.server
def test_relative_path_is_refused_before_milvus_says_no_such_file(milvus_server, server_conn, collection_name, tmp_path, monkeypatch):
    make_collection(milvus_server.uri, collection_name, rows=0)
    write_json(tmp_path / "rel.json", [row(1)])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MilvusInputError, match=r"'rel\.json' is a relative path.*Give the absolute path '/.*rel\.json'"):
        run_import(server_conn, collection_name, ["rel.json"])


@pytest.mark.server
def test_failed_job_quotes_milvus_and_rerun_imports(milvus_server, server_conn, collection_name, tmp_path):
    """A row beyond the checked ones is wrong: Milvus fails the job, commits nothing, and says why."""
    uri = milvus_server.uri
    make_collection(uri, collection_name, rows=20)
    path = tmp_path / "late_error.json"
    write_json(path, [row(i) for i in range(100, 130)] + [row(130, vec=[0.5] * 3)])
    with pytest.raises(MilvusInputError, match=r"late_error\.json failed: .*array size 3 doesn't equal to vector dimension 8.*committed none"):
        run_import(server_conn, collection_name, [str(path)], validate_rows=10)
    assert row_count(uri, collection_name) == 20
    write_json(path, [row(i) for i in range(100, 131)])  # fixed in place: same path, new size and time
    assert run_import(server_conn, collection_name, [str(path)])["rows"] == 31
    assert row_count(uri, collection_name) == 51


@pytest.mark.server
def test_unvalidated_missing_file_fails_in_milvus_with_its_reason(milvus_server, server_conn, collection_name):
    make_collection(milvus_server.uri, collection_name, rows=20)
    with pytest.raises(MilvusInputError, match=r"/bucket/key\.parquet failed: .*no such file or directory"):
        run_import(server_conn, collection_name, ["/bucket/key.parquet"], validate_files=False)
    assert row_count(milvus_server.uri, collection_name) == 20


# ---------------------------------------------------------------------- waiting
@pytest.mark.server
def test_started_jobs_are_adopted_by_the_rerun(milvus_server, server_conn, collection_name, tmp_path):
    uri = milvus_server.uri
    make_collection(uri, collection_name, rows=0)
    files = write_with_bulk_writer(uri, collection_name, tmp_path, range(500))
    started = run_import(server_conn, collection_name, files, wait_for_completion=False)
    assert (started["rows"], len(started["job_ids"])) == (0, 1)
    waited = run_import(server_conn, collection_name, files)
    assert (waited["job_ids"], waited["rows"], waited["skipped"]) == (started["job_ids"], 500, False)
    assert run_import(server_conn, collection_name, files)["skipped"] is True
    assert ids_in(uri, collection_name) == list(range(500))


@pytest.mark.server
def test_trigger_logs_state_percent_and_rows_each_poll(milvus_server, server_conn, collection_name, tmp_path, capfd):
    from airflow_milvus.triggers.bulk_import import MilvusImportJobTrigger

    uri = milvus_server.uri
    make_collection(uri, collection_name, rows=0)
    files = write_with_bulk_writer(uri, collection_name, tmp_path, range(200))
    job_ids = run_import(server_conn, collection_name, files, wait_for_completion=False)["job_ids"]
    trigger = MilvusImportJobTrigger(job_ids=job_ids, milvus_conn_id=server_conn, poll_interval=0.2, payload={"k": 1})
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_milvus.triggers.bulk_import.MilvusImportJobTrigger"
    trigger = MilvusImportJobTrigger(**json.loads(json.dumps(kwargs)))

    async def first_event():
        async for event in trigger.run():
            return event.payload

    capfd.readouterr()
    event = asyncio.run(first_event())
    logged = capfd.readouterr()
    assert event["status"] == "success" and event["payload"] == {"k": 1}
    assert [(s["state_name"], s["progress"], s["rows"]) for s in event["statuses"]] == [("Completed", 100, 200)]
    polls = re.findall(r"Import progress: job (\d+): (\w+), (\d+)%, (\d+) rows", logged.out + logged.err)
    assert polls and polls[-1] == (str(job_ids[0]), "Completed", "100", "200")  # one line per poll


def test_deferrable_in_a_dag_run(milvus_conn, milvus_uri, collection_name, flavour, tmp_path, capfd):
    make_collection(milvus_uri, collection_name, rows=0)
    files = write_with_bulk_writer(milvus_uri, collection_name, tmp_path, range(150))
    dag_id = write_dag(f"""
        import pendulum
        from airflow.sdk import DAG
        from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator

        with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
            MilvusBulkImportOperator(task_id="import", milvus_conn_id={milvus_conn!r}, collection_name="{{{{ params.c }}}}",
                                     files={files!r}, deferrable=True, poll_interval=0.5, params={{"c": {collection_name!r}}})
    """)
    for attempt in (1, 2):
        dr, tis = run_dag(dag_id)
        assert dr.state == "success", {k: str(v.state) for k, v in tis.items()}
        result = xcom(dr, "import")
        assert (result["rows"], result["skipped"]) == ((150, False) if attempt == 1 else (0, True))
        if attempt == 1:  # the wait ran in the trigger (it alone logs "Import progress"); Lite has nothing to wait for
            assert ("Import progress: job" in "".join(capfd.readouterr())) == (flavour == "server")
    assert row_count(milvus_uri, collection_name) == 150


def test_bad_numbers_are_refused(milvus_conn, milvus_uri, collection_name, tmp_path):
    make_collection(milvus_uri, collection_name, rows=0)
    good = write_json(tmp_path / "good.json", [row(1)])
    for field, value in (("validate_rows", 0), ("validate_rows", True), ("batch_size", "many"), ("batch_size", "2.5")):
        with pytest.raises(MilvusInputError, match=rf"{field}=.*use a whole number >= 1"):
            run_import(milvus_conn, collection_name, [good], **{field: value})
    assert row_count(milvus_uri, collection_name) == 0


@pytest.fixture
def lite_conn(lite_uri, monkeypatch) -> str:
    conn_id = f"milvus_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_env_value(lite_uri))
    return conn_id


def test_lite_checks_every_row_and_streams_json_in_pieces(lite_conn, lite_uri, collection_name, tmp_path, monkeypatch):
    from airflow_milvus.imports import files as import_files

    make_collection(lite_uri, collection_name, rows=0)
    monkeypatch.setattr(import_files, "JSON_CHUNK", 97)  # rows straddle every read: the reader must stitch them
    late = write_json(tmp_path / "late.json", [row(i) for i in range(1500)] + [row(1500, title=None, year="x")])
    with pytest.raises(MilvusInputError, match=r"late\.json: row 1500 field 'year': expected an integer"):
        run_import(lite_conn, collection_name, [late])  # far beyond validate_rows: Lite checks them all
    assert row_count(lite_uri, collection_name) == 0
    good = write_json(tmp_path / "good.json", [row(i) for i in range(1501)])
    assert run_import(lite_conn, collection_name, [good], batch_size=" 400 ")["rows"] == 1501  # as a template renders it
    assert ids_in(lite_uri, collection_name) == list(range(1501))
