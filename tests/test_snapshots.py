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


def test_build_record_fills_only_matching_unreported_params():
    store = store_for(f"c{uuid.uuid4().hex[:6]}")
    store.record_built([VEC])
    reported = {**VEC, "params": {}}
    assert store.fill_unreported_params("books", [reported]) == [VEC]
    # Built by someone else: unknown is null, not "no parameters"; a scalar index takes none.
    other_type = {**VEC, "index_type": "FLAT", "params": {}}
    assert store.fill_unreported_params("books", [other_type]) == [{**other_type, "params": None}]
    scalar = {**VEC, "field_name": "year", "index_type": "INVERTED", "metric_type": None, "params": {}}
    assert store.fill_unreported_params("books", [scalar]) == [scalar]


def test_an_index_built_without_params_is_recorded_as_none():
    store = store_for(f"c{uuid.uuid4().hex[:6]}")
    flat = {**VEC, "index_type": "FLAT", "params": {}}
    store.record_built([flat])
    assert store.fill_unreported_params("books", [flat]) == [flat]
