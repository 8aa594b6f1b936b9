"""MilvusBulkImportOperator on object storage: a real Milvus 2.3.5 whose storage is a bucket of an
S3 server on loopback (moto), files written there by pymilvus's RemoteBulkWriter, imported by key
and checked from the worker through an Airflow ``aws`` connection; and packing within Milvus's limits."""

from __future__ import annotations

import io
import json
import random
import threading
import uuid

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.imports import jobs as import_jobs
from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator
from tests.conftest import S3_BUCKET, conn_env_value, milvus_client
from tests.helpers import DIM, make_collection, row_count
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY
from tests.test_bulk_import import ids_in, run_import

ENDED = import_jobs.DONE | import_jobs.FAILED  # any other state holds a slot (Pending, Started, Persisted)


@pytest.fixture
def s3_conn(s3_milvus_server, monkeypatch) -> str:
    conn_id = f"milvus_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_env_value(s3_milvus_server.uri))
    return conn_id


@pytest.fixture
def aws_conn(s3_store, monkeypatch) -> str:
    """An Airflow ``aws`` connection to the bucket, as a MinIO user writes it."""
    conn_id = f"aws_{uuid.uuid4().hex[:8]}"
    extra = {"endpoint_url": s3_store.endpoint, "region_name": REGION, "service_config": {"s3": {"bucket_name": S3_BUCKET}}}
    body = {"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(body))
    return conn_id


def row(i: int, **override) -> dict:
    rng = random.Random(i)
    return {"id": i, "vec": [rng.random() for _ in range(DIM)], "year": 2000 + i % 20, "title": f"book {i}", **override}


def write_remote(uri: str, name: str, s3_store, ids, tmp_path) -> list[str]:
    """One Parquet file in the bucket, written as users write them: RemoteBulkWriter; its keys."""
    from pymilvus import CollectionSchema
    from pymilvus.bulk_writer import BulkFileType, RemoteBulkWriter

    with milvus_client(uri) as c:
        schema = CollectionSchema.construct_from_dict(c.describe_collection(name))
    connect = RemoteBulkWriter.S3ConnectParam(
        endpoint=s3_store.address, access_key=ACCESS_KEY, secret_key=SECRET_KEY, bucket_name=S3_BUCKET, secure=False,
    )
    writer = RemoteBulkWriter(schema=schema, remote_path=f"bulk/{name}", connect_param=connect,
                              file_type=BulkFileType.PARQUET, local_path=str(tmp_path / uuid.uuid4().hex))
    for i in ids:
        writer.append_row(row(i))
    writer.commit()
    return [f for batch in writer.batch_files for f in batch]


def server_jobs(uri: str, name: str) -> list:
    """The server's own list of import jobs of a collection (pymilvus's handler: MilvusClient has none)."""
    with milvus_client(uri) as c:
        return c._get_connection().list_bulk_insert_tasks(0, name)


# ---------------------------------------------------------------------- end to end on the bucket
@pytest.mark.usefixtures("variables_outside_a_task")
@pytest.mark.server
@pytest.mark.slow
def test_remote_bulk_writer_files_imported_by_key_then_rerun_skips(s3_milvus_server, s3_store, s3_conn, aws_conn, collection_name, tmp_path):
    uri = s3_milvus_server.uri
    make_collection(uri, collection_name, rows=0)
    keys = write_remote(uri, collection_name, s3_store, range(300), tmp_path) + write_remote(uri, collection_name, s3_store, range(300, 420), tmp_path)
    assert all(k.startswith(f"bulk/{collection_name}/") and k.endswith(".parquet") for k in keys)
    first = run_import(s3_conn, collection_name, keys, aws_conn_id=aws_conn)
    assert (first["rows"], first["skipped"], first["files"], len(first["job_ids"])) == (420, False, 2, 2)  # 2.3: a file per job
    # The server keeps its segments in the same bucket: this is Milvus on object storage.
    stored = s3_store.client().list_objects_v2(Bucket=S3_BUCKET, Prefix="files/insert_log/")
    assert stored.get("KeyCount", 0) > 0
    # Again, by s3:// URI this time: the same keys, the same size and ETag, so nothing to do.
    again = run_import(s3_conn, collection_name, [f"s3://{S3_BUCKET}/{k}" for k in keys], aws_conn_id=aws_conn)
    assert (again["rows"], again["skipped"], again["skipped_files"], again["job_ids"]) == (0, True, 2, first["job_ids"])
    assert ids_in(uri, collection_name) == list(range(420))  # nothing duplicated
    # A new file beside the imported ones: only it is imported.
    extra = write_remote(uri, collection_name, s3_store, range(420, 450), tmp_path)
    third = run_import(s3_conn, collection_name, [*keys, *extra], aws_conn_id=aws_conn)
    assert (third["rows"], third["skipped"], third["skipped_files"]) == (30, False, 2)
    assert row_count(uri, collection_name) == 450


@pytest.mark.usefixtures("variables_outside_a_task")
@pytest.mark.server
@pytest.mark.slow
def test_missing_key_and_bad_file_change_nothing(s3_milvus_server, s3_store, s3_conn, aws_conn, collection_name, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    uri = s3_milvus_server.uri
    make_collection(uri, collection_name, rows=20)
    good = write_remote(uri, collection_name, s3_store, range(100, 150), tmp_path)
    missing = f"bulk/{collection_name}/nope.parquet"
    with pytest.raises(MilvusInputError, match=rf"Import file s3://{S3_BUCKET}/{missing} does not exist .*{aws_conn}.*nothing was imported\. Fix the key"):
        run_import(s3_conn, collection_name, [*good, missing], aws_conn_id=aws_conn)
    bad = io.BytesIO()  # the schema of another collection: 4-dimensional vectors
    pq.write_table(pa.table({"id": [1, 2], "vec": [[0.1] * 4, [0.2] * 4], "year": [1, 2], "title": ["a", "b"]}), bad)
    bad_key = f"bulk/{collection_name}/bad.parquet"
    s3_store.client().put_object(Bucket=S3_BUCKET, Key=bad_key, Body=bad.getvalue())
    with pytest.raises(MilvusInputError, match=rf"s3://{S3_BUCKET}/{bad_key}: row 0 field 'vec': vector has dimension 4, the collection expects {DIM}.*Fix the file"):
        run_import(s3_conn, collection_name, [*good, bad_key], aws_conn_id=aws_conn)
    assert row_count(uri, collection_name) == 20  # checked before any job: the good file waited too
    assert server_jobs(uri, collection_name) == []
    # Unchecked, Milvus itself finds the key missing: its job fails with its reason and commits nothing.
    with pytest.raises(MilvusInputError, match=rf"failed to get file size of '{missing}'.*key does not exist.*committed none"):
        run_import(s3_conn, collection_name, [missing], aws_conn_id=aws_conn, validate_files=False)
    assert row_count(uri, collection_name) == 20
    assert run_import(s3_conn, collection_name, good, aws_conn_id=aws_conn)["rows"] == 50  # fixed input imports


# ---------------------------------------------------------------------- packing and bounded concurrency
@pytest.mark.usefixtures("variables_outside_a_task")
@pytest.mark.server
@pytest.mark.slow
def test_no_more_than_max_concurrent_jobs_run_at_once(s3_milvus_server, s3_store, s3_conn, aws_conn, collection_name, tmp_path, monkeypatch):
    """5 files, a limit of 2: whenever a job starts, the server's own job list shows at most 2 active."""
    from airflow_milvus.hooks.milvus import MilvusHook

    uri = s3_milvus_server.uri
    make_collection(uri, collection_name, rows=0)
    keys = [k for n in range(5) for k in write_remote(uri, collection_name, s3_store, range(n * 100, n * 100 + 100), tmp_path)]
    seen, start = [], MilvusHook.start_import_job

    def start_and_look(hook, *args, **kwargs):
        job_id = start(hook, *args, **kwargs)
        seen.append(sum(1 for job in server_jobs(uri, collection_name) if int(job.state) not in ENDED))
        return job_id

    monkeypatch.setattr(MilvusHook, "start_import_job", start_and_look)
    watching, stop = [], threading.Event()

    def watch():  # and between starts, from the server's job list
        while not stop.is_set():
            watching.append(sum(1 for job in server_jobs(uri, collection_name) if int(job.state) not in ENDED))
            stop.wait(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_import(s3_conn, collection_name, keys, aws_conn_id=aws_conn, max_concurrent_jobs="2", poll_interval=0.3)
    finally:
        stop.set()
        watcher.join()
    assert (result["rows"], len(result["job_ids"]), len(seen)) == (500, 5, 5)
    assert max(seen) <= 2 and max(watching) <= 2, (seen, watching)
    assert seen[:2] == [1, 2]  # the first two start together, the others as slots free up
    assert len(server_jobs(uri, collection_name)) == 5
    assert ids_in(uri, collection_name) == list(range(500))


@pytest.mark.usefixtures("variables_outside_a_task")
@pytest.mark.server
@pytest.mark.slow
def test_not_waiting_starts_only_the_limit_and_the_rerun_adopts_and_finishes(s3_milvus_server, s3_store, s3_conn, aws_conn, collection_name, tmp_path):
    uri = s3_milvus_server.uri
    make_collection(uri, collection_name, rows=0)
    keys = [k for n in range(3) for k in write_remote(uri, collection_name, s3_store, range(n * 50, n * 50 + 50), tmp_path)]
    started = run_import(s3_conn, collection_name, keys, aws_conn_id=aws_conn, max_concurrent_jobs=2, wait_for_completion=False)
    assert (len(started["job_ids"]), started["not_started_files"], started["rows"]) == (2, 1, 0)
    finished = run_import(s3_conn, collection_name, keys, aws_conn_id=aws_conn, max_concurrent_jobs=2)
    assert finished["job_ids"][:2] == started["job_ids"] and len(finished["job_ids"]) == 3  # adopted, then the third
    assert finished["rows"] == 150 and len(server_jobs(uri, collection_name)) == 3
    assert ids_in(uri, collection_name) == list(range(150))


@pytest.mark.server
@pytest.mark.slow
def test_deferrable_with_one_slot_in_a_dag_run(s3_milvus_server, s3_store, s3_conn, aws_conn, collection_name, tmp_path, capfd):
    """The trigger frees the task at each free slot; the task starts the next job and defers again."""
    from tests.dag_runner import run_dag, write_dag, xcom

    uri = s3_milvus_server.uri
    make_collection(uri, collection_name, rows=0)
    keys = [k for n in range(3) for k in write_remote(uri, collection_name, s3_store, range(n * 40, n * 40 + 40), tmp_path)]
    dag_id = write_dag(f"""
        import pendulum
        from airflow.sdk import DAG
        from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator

        with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
            MilvusBulkImportOperator(task_id="import", milvus_conn_id={s3_conn!r}, collection_name={collection_name!r},
                                     files={keys!r}, aws_conn_id={aws_conn!r}, max_concurrent_jobs="{{{{ params.slots }}}}",
                                     deferrable=True, poll_interval=0.3, params={{"slots": 1}})
    """)
    dr, tis = run_dag(dag_id)
    assert dr.state == "success", {k: str(v.state) for k, v in tis.items()}
    result = xcom(dr, "import")
    assert (result["rows"], len(result["job_ids"])) == (120, 3)
    assert "Import progress: job" in "".join(capfd.readouterr())  # waited on the triggerer
    assert ids_in(uri, collection_name) == list(range(120))


# ---------------------------------------------------------------------- pure rules
def test_pack_jobs_by_server_version():
    parquet, numpy = "parquet", "numpy"
    # Milvus 2.3: one JSON or Parquet file per job; a NumPy batch is one job.
    assert import_jobs.pack_jobs([parquet] * 3 + [numpy], "v2.3.5") == [[0], [1], [2], [3]]
    # 2.4+: up to 1,024 files per request; a NumPy batch alone (a request lists files flat).
    assert import_jobs.pack_jobs([parquet] * 3 + [numpy, "json", parquet], "v2.4.15") == [[0, 1, 2], [3], [4, 5]]
    assert [len(j) for j in import_jobs.pack_jobs([parquet] * 2500, "2.5.4")] == [1024, 1024, 452]
    assert [len(j) for j in import_jobs.pack_jobs([parquet] * 5, "v2.6.0", max_files=2)] == [2, 2, 1]
    assert import_jobs.pack_jobs([parquet] * 2, "milvus_lite-3.2.2") == [[0], [1]]  # unknown: the 2.3 rule
    assert import_jobs.files_per_job("v2.3.5-lite") == 1 and import_jobs.files_per_job("v2.4.0") == 1024


def test_max_concurrent_jobs_is_coerced_and_bounded():
    op = MilvusBulkImportOperator(task_id="t", collection_name="c", files=["a.parquet"], max_concurrent_jobs=" 3 ")
    op.coerce_rendered_fields()
    assert op.max_concurrent_jobs == 3
    for value in (0, 1025, "many", True):
        op = MilvusBulkImportOperator(task_id="t", collection_name="c", files=["a.parquet"], max_concurrent_jobs=value)
        with pytest.raises(MilvusInputError, match=r"t: max_concurrent_jobs=.*use a whole number between 1 and 1024"):
            op.coerce_rendered_fields()


def test_aws_connection_is_read_as_the_amazon_provider_writes_it(monkeypatch):
    from airflow.models.connection import Connection

    from airflow_milvus.imports import bucket as bucket_module

    conn = Connection(conn_id="minio", conn_type="aws", login="AK", password="very-secret", extra=json.dumps(
        {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1", "aws_session_token": "tok-secret"}))
    masked = []
    monkeypatch.setattr("airflow.sdk.log.mask_secret", masked.append)
    found = bucket_module.Bucket.from_connection(lambda conn_id: conn, "minio", "milvus-bucket")
    assert found.name == "milvus-bucket" and found.client_args == {
        "aws_access_key_id": "AK", "aws_secret_access_key": "very-secret", "aws_session_token": "tok-secret",
        "endpoint_url": "http://minio:9000", "region_name": "eu-west-1", "addressing_style": "path"}
    assert masked == ["very-secret", "tok-secret"]
    with pytest.raises(MilvusInputError, match=r"aws_conn_id='minio' names no bucket: give bucket_name"):
        bucket_module.Bucket.from_connection(lambda conn_id: conn, "minio", None)
    with pytest.raises(MilvusInputError, match=r"is in bucket 'other', but Milvus reads import files only from its own bucket 'milvus-bucket'"):
        from airflow_milvus.imports.files import split_key

        split_key("s3://other/k.parquet", "milvus-bucket")


@pytest.mark.usefixtures("variables_outside_a_task")
def test_lite_reads_bucket_keys_through_the_connection(s3_store, aws_conn, lite_uri, collection_name, monkeypatch):
    """Milvus Lite has no import jobs: the operator reads the keys itself, through the aws connection."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    conn_id = f"milvus_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_env_value(lite_uri))
    make_collection(lite_uri, collection_name, rows=0)
    client = s3_store.client()
    if S3_BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        s3_store.create_bucket(S3_BUCKET)
    keys = []
    for part, (bad, rows) in enumerate([(False, range(60)), (True, range(60, 70))]):
        body = io.BytesIO()
        table = [row(i) for i in rows]
        if bad:
            table[-1]["vec"] = [0.5] * 3
        pq.write_table(pa.Table.from_pylist(table), body)
        keys.append(f"lite/{collection_name}/{part}.parquet")
        client.put_object(Bucket=S3_BUCKET, Key=keys[-1], Body=body.getvalue())
    with pytest.raises(MilvusInputError, match=rf"s3://{S3_BUCKET}/{keys[1]}: row 9 field 'vec': vector has dimension 3, the collection expects {DIM}"):
        run_import(conn_id, collection_name, keys, aws_conn_id=aws_conn)
    assert row_count(lite_uri, collection_name) == 0
    result = run_import(conn_id, collection_name, keys[:1], aws_conn_id=aws_conn)
    assert (result["rows"], result["method"]) == (60, "insert")
    assert ids_in(lite_uri, collection_name) == list(range(60))
