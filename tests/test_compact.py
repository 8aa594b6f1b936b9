"""MilvusCompactOperator in real DAG runs (dag.test): on the real Milvus 2.3.5 server, where a
compaction purges deleted rows and merges segments, and on Milvus Lite, which does not compact."""

from __future__ import annotations

import random
import time

import pytest

from tests.conftest import milvus_client, set_connection
from tests.dag_runner import run_dag, write_dag, xcom
from tests.helpers import VECTOR_INDEX, is_lite, make_collection

HEADER = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.collection import MilvusCompactOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
"""
BATCHES, BATCH_ROWS = 3, 1000
ROWS = BATCHES * BATCH_ROWS


def run(tasks: str, conn_id: str):
    body = f"CONN = {conn_id!r}\n" + HEADER + "\n".join("    " + line for line in tasks.strip().splitlines())
    dr, tis = run_dag(write_dag(body))
    return dr, tis


def half_deleted(uri: str, name: str) -> None:
    """``BATCHES`` flushed segments, every other row of them deleted (flushed too), the vector
    index built. The server's own compaction is off for the collection, so that what compacts
    it is the operator (2.3 compacts only indexed segments: the index comes after the deletes)."""
    make_collection(uri, name, rows=0, indexes=())
    rng = random.Random(3)
    with milvus_client(uri) as c:
        if not is_lite(uri):
            c.alter_collection_properties(name, {"collection.autocompaction.enabled": "false"})
        for b in range(BATCHES):
            c.insert(name, [{"id": b * BATCH_ROWS + i, "vec": [rng.random() for _ in range(8)], "year": 2000, "title": "t"}
                            for i in range(BATCH_ROWS)])  # fmt: skip
            c.flush(name)
        c.delete(name, ids=list(range(0, ROWS, 2)))
        c.flush(name)
        params = c.prepare_index_params()
        params.add_index("vec", index_type=VECTOR_INDEX["index_type"], metric_type="L2", index_name="vec", params=VECTOR_INDEX["params"])
        c.create_index(name, params)
        deadline = time.monotonic() + 120
        while not is_lite(uri) and c.describe_index(name, "vec").get("pending_index_rows", 1):
            assert time.monotonic() < deadline, "index build did not finish"
            time.sleep(0.3)


def segments(uri: str, name: str) -> dict[int, int]:
    """{segment id: rows} of the persisted segments, as the server reports them."""
    with milvus_client(uri) as c:
        return {s.segment_id: s.num_rows for s in c.list_persistent_segments(name)}


@pytest.mark.parametrize("deferrable", [False, True], ids=["on-worker", "deferred"])
def test_compaction_purges_deleted_rows_and_a_rerun_is_safe(deferrable, milvus_server, collection_name, monkeypatch, capfd):
    uri = milvus_server.uri
    conn = set_connection(monkeypatch, uri)
    half_deleted(uri, collection_name)
    before = segments(uri, collection_name)
    assert (len(before), sum(before.values())) == (BATCHES, ROWS)  # deleted rows stay until compacted
    # pymilvus's MilvusClient.compact(name) makes Milvus 2.3 compact every collection: this one must stay as it is.
    bystander = f"{collection_name}_bystander"
    half_deleted(uri, bystander)
    bystander_before = segments(uri, bystander)

    # poll_interval 0.2: the deferrable task watches 0.2 s on the worker, and a compaction takes seconds.
    dr, tis = run(
        f'''
first = MilvusCompactOperator(task_id="first", milvus_conn_id=CONN, collection_name="{collection_name}",
                              deferrable={deferrable}, poll_interval=0.2, timeout=300)
again = MilvusCompactOperator(task_id="again", milvus_conn_id=CONN, collection_name="{collection_name}", poll_interval=0.2)
first >> again''',
        conn,
    )
    out, err = capfd.readouterr()
    assert dr.state == "success", ({k: str(t.state) for k, t in tis.items()}, (out + err)[-6000:])
    assert ("Compaction finished (deferred wait)" in out + err) is deferrable, (out + err)[-4000:]

    first = xcom(dr, "first")
    assert first["state"] == "Completed" and first["compacted"] is True and first["plans"] >= 1, first
    assert (first["segments_before"], first["rows_before"]) == (BATCHES, ROWS), first
    assert first["rows_after"] == ROWS // 2 and first["segments_after"] < BATCHES, first

    # The server agrees, and the compaction the operator reported is the one that merged this collection's segments.
    after = segments(uri, collection_name)
    assert sum(after.values()) == ROWS // 2 and len(after) < BATCHES
    with milvus_client(uri) as c:
        assert int(c.get_collection_stats(collection_name)["row_count"]) == ROWS // 2
        [compaction_id] = first["compaction_ids"]
        assert c.get_compaction_state(compaction_id) == "Completed"
        merged = {s for plan in c.get_compaction_plans(compaction_id).plans for s in plan.sources}
    assert merged == set(before), (merged, before)
    assert segments(uri, bystander) == bystander_before

    # A re-run after the compaction finished changes no data (Milvus may still rewrite a segment).
    again = xcom(dr, "again")
    assert again["state"] == "Completed" and again["rows_before"] == again["rows_after"] == ROWS // 2, again
    assert sum(segments(uri, collection_name).values()) == ROWS // 2


def test_lite_has_nothing_to_compact_and_says_so(lite_uri, collection_name, monkeypatch):
    conn = set_connection(monkeypatch, lite_uri)
    half_deleted(lite_uri, collection_name)
    dr, tis = run(f'MilvusCompactOperator(task_id="compact", milvus_conn_id=CONN, collection_name="{collection_name}")', conn)
    assert dr.state == "success", {k: str(t.state) for k, t in tis.items()}
    result = xcom(dr, "compact")
    assert result["state"] == "Skipped" and result["compacted"] is False and result["compaction_ids"] == [], result
    assert "Milvus Lite does not compact" in result["note"]
    # Lite's count leaves deleted rows out at once: there was nothing to purge.
    assert result["rows_before"] == result["rows_after"] == ROWS // 2


def test_unindexed_collection_on_2_3_compacts_nothing_and_says_why(milvus_server, collection_name, monkeypatch):
    conn = set_connection(monkeypatch, milvus_server.uri)
    make_collection(milvus_server.uri, collection_name, rows=300, indexes=())
    with milvus_client(milvus_server.uri) as c:
        c.delete(collection_name, ids=list(range(0, 300, 2)))
    from airflow_milvus.operators.collection import MilvusCompactOperator

    result = MilvusCompactOperator(task_id="c", milvus_conn_id=conn, collection_name=collection_name, poll_interval=0.2).execute({})
    assert result["compacted"] is False and result["state"] == "Completed", result
    assert "compacts only segments whose vector index is built" in result["note"] and "vec has no index" in result["note"], result
    assert result["rows_before"] == result["rows_after"] == 300


def test_missing_collection_is_refused_before_anything_starts(flavour, milvus_uri, milvus_conn, collection_name):
    from airflow_milvus.errors import MilvusInputError
    from airflow_milvus.operators.collection import MilvusCompactOperator

    op = MilvusCompactOperator(task_id="c", milvus_conn_id=milvus_conn, collection_name=f"{collection_name}_missing")
    with pytest.raises(MilvusInputError, match=rf"Collection '{collection_name}_missing' does not exist .*nothing was compacted\. Check the name"):
        op.execute({})
    bad = MilvusCompactOperator(task_id="c", milvus_conn_id=milvus_conn, collection_name=collection_name, flush="maybe")
    with pytest.raises(MilvusInputError, match="flush"):
        bad.execute({})


def test_without_waiting_the_compaction_is_started_and_reported(milvus_server, collection_name, monkeypatch):
    conn = set_connection(monkeypatch, milvus_server.uri)
    half_deleted(milvus_server.uri, collection_name)
    from airflow_milvus.operators.collection import MilvusCompactOperator

    result = MilvusCompactOperator(task_id="c", milvus_conn_id=conn, collection_name=collection_name, wait_for_completion=False).execute({})
    assert result["state"] == "Executing" and "rows_after" not in result and result["rows_before"] == ROWS, result
    [compaction_id] = result["compaction_ids"]
    deadline = time.monotonic() + 120
    with milvus_client(milvus_server.uri) as c:  # it goes on in Milvus without the task
        while c.get_compaction_state(compaction_id) != "Completed":
            assert time.monotonic() < deadline, "compaction did not finish"
            time.sleep(0.5)
    assert sum(segments(milvus_server.uri, collection_name).values()) == ROWS // 2
