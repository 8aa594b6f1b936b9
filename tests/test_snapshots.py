"""Snapshots persist in Airflow Variables, inside tasks (dag.test: the Task SDK) and outside them
(the CLI: the metadata database, chosen by the caller, never guessed)."""

from __future__ import annotations

import json
import uuid

from airflow_milvus.lifecycle.snapshots import MetadataVariables, SnapshotStore


def store_for(conn: str) -> SnapshotStore:
    return SnapshotStore(conn, variables=MetadataVariables())

VEC = {"collection_name": "books", "field_name": "vec", "index_name": "vec", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 8}}


def test_outside_a_task_snapshots_use_the_metadata_db():
    conn = f"c{uuid.uuid4().hex[:6]}"
    store = store_for(conn)
    store.remember([VEC])
    assert store.load("books") == [VEC]
    newer = {**VEC, "index_type": "FLAT", "params": {}}
    store.remember([newer])  # one entry per field, the newest wins
    assert store.load("books") == [newer]
    store.forget("books", {"vec"})
    assert store.load("books") == []
    from airflow.models.variable import Variable

    assert Variable.get(f"airflow_milvus.snapshot.{conn}.books", default_var=None) is None


def test_snapshots_written_before_the_store_still_read():
    conn = f"c{uuid.uuid4().hex[:6]}"
    from airflow.models.variable import Variable

    Variable.set(f"airflow_milvus.snapshot.{conn}.books", json.dumps([VEC, "not a spec"]))
    assert store_for(conn).load("books") == [VEC]
    assert store_for(f"c{uuid.uuid4().hex[:6]}").load("books") == []  # keyed by connection


def test_build_records_of_earlier_versions_still_fill_unreported_params():
    conn = f"c{uuid.uuid4().hex[:6]}"
    store = store_for(conn)
    from airflow.models.variable import Variable

    Variable.set(f"airflow_milvus.snapshot.built.{conn}.books", json.dumps([VEC]))  # as 0.1 wrote them
    assert store.fill_unreported_params("books", [{**VEC, "params": None}]) == [VEC]
    # Built by someone else: unknown is null, not "no parameters"; a scalar index takes none.
    other_type = {**VEC, "index_type": "FLAT", "params": None}
    assert store.fill_unreported_params("books", [other_type]) == [other_type]
    scalar = {**VEC, "field_name": "year", "index_type": "INVERTED", "metric_type": None, "params": {}}
    assert store.fill_unreported_params("books", [scalar]) == [scalar]


def test_lite_build_params_are_kept_beside_the_db(tmp_path):
    """What the hook records of the indexes it builds on a .db (Lite reports none)."""
    from airflow_milvus.hooks import lite_params

    db = str(tmp_path / "milvus.db")

    def fill(db, collection, spec):
        (filled,) = lite_params.fill(db, collection, [spec])
        return filled

    reported = {**VEC, "params": {}}  # what Lite's DescribeIndex gives
    assert fill(db, "books", reported)["params"] is None  # nobody recorded it: unknown
    lite_params.record(db, VEC)
    assert fill(db, "books", reported) == VEC
    assert fill(None, "books", reported)["params"] is None  # a Lite server by URI: no file to read
    assert fill(db, "books", {**reported, "index_type": "FLAT"})["params"] is None  # another type
    assert fill(db, "other", reported)["params"] is None  # another collection
    flat = {**VEC, "field_name": "v2", "index_type": "FLAT", "params": {}}
    lite_params.record(db, flat)
    assert fill(db, "books", flat) == flat  # built without parameters: {} means none
    scalar = {**VEC, "field_name": "year", "index_type": "INVERTED", "metric_type": None, "params": {}}
    assert fill(db, "books", scalar) == scalar  # Lite's scalar indexes take none
    lite_params.forget(db, "books", "vec")
    assert fill(db, "books", reported)["params"] is None
    lite_params.forget(db, "books")
    assert fill(db, "books", flat)["params"] is None
