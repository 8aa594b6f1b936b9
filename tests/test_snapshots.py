"""Snapshots persist in Airflow Variables, inside tasks (dag.test) and outside them (the CLI)."""

from __future__ import annotations

import uuid

from airflow_milvus import snapshots

VEC = {"collection_name": "books", "field_name": "vec", "index_name": "vec", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 8}}


def test_outside_a_task_snapshots_use_the_metadata_db():
    conn = f"c{uuid.uuid4().hex[:6]}"
    snapshots.remember(conn, [VEC])
    assert snapshots.load(conn, "books") == [VEC]
    newer = {**VEC, "index_type": "FLAT", "params": {}}
    snapshots.remember(conn, [newer])  # one entry per field, the newest wins
    assert snapshots.load(conn, "books") == [newer]
    snapshots.forget(conn, "books", {"vec"})
    assert snapshots.load(conn, "books") == []
    from airflow.models.variable import Variable

    assert Variable.get(f"airflow_milvus.snapshot.{conn}.books", default_var=None) is None


def test_build_record_fills_only_matching_unreported_params():
    conn = f"c{uuid.uuid4().hex[:6]}"
    snapshots.record_built(conn, [VEC])
    reported = {**VEC, "params": {}}
    assert snapshots.fill_unreported_params(conn, "books", [reported]) == [VEC]
    other_type = {**VEC, "index_type": "FLAT", "params": {}}
    assert snapshots.fill_unreported_params(conn, "books", [other_type]) == [other_type]
