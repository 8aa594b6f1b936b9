"""The plain lifecycle layer on its own: a hook and a snapshot store, no operator, no task.

What the operators and the CLI share (airflow_milvus/lifecycle/): read and plan without
changing anything, apply exactly the plan, wait, finish with the load state restored.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.lifecycle import collections, create, drop
from airflow_milvus.lifecycle.snapshots import MetadataVariables, SnapshotStore
from airflow_milvus.planning.create import wanted_specs
from tests.helpers import VECTOR_INDEX, index_summary, load_state, make_collection, scalar_index


@pytest.fixture
def store(milvus_conn) -> SnapshotStore:
    return SnapshotStore(milvus_conn, variables=MetadataVariables())


def test_plan_changes_nothing_and_apply_then_rebuild_restores_everything(milvus_uri, milvus_conn, store, collection_name):
    make_collection(milvus_uri, collection_name, rows=50, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)), load=True)
    before = index_summary(milvus_uri, collection_name)
    with MilvusHook(milvus_conn) as hook:
        plan = drop.plan_drop(hook, store, collection_name=collection_name, drop_all=True)
        assert index_summary(milvus_uri, collection_name) == before and load_state(milvus_uri, collection_name) == "Loaded"
        shown = plan.to_xcom(dry_run=True)
        assert {s["field_name"] for s in shown["dropped"]} == {"vec", "year"}
        assert shown["collections"] == {collection_name: {"was_loaded": True, "released": False}}

        drop.apply_drop(hook, store, plan)
        dropped = plan.to_xcom(dry_run=False)
        assert index_summary(milvus_uri, collection_name) == {}
        assert dropped["collections"][collection_name]["released"] is True
        # Remembered outside any task, in the metadata database, until a rebuild.
        assert {s["field_name"] for s in store.load(collection_name)} == {"vec", "year"}

        wanted = wanted_specs(collection_name=None, field_name=None, index_type=None, metric_type=None,
                              index_params=None, index_name=None, index_specs=dropped)  # fmt: skip
        steps = create.plan_indexes(hook, wanted, if_exists="fail")
        assert [s.action for s in steps.steps] == ["create", "create"]
        outcome = create.apply_create(hook, store, steps, index_specs=dropped)
        create.wait_for_builds(hook, outcome, timeout=120, poll_interval=0.5)
        result = create.finish_create(hook, outcome, states=dict(steps.states), load=False, restore_load_state=True,
                                      index_specs=dropped, timeout=120)  # fmt: skip
    assert result["loaded"] == [collection_name] and result["released"] == []
    assert index_summary(milvus_uri, collection_name) == before
    assert load_state(milvus_uri, collection_name) == "Loaded"
    assert store.load(collection_name) == []  # rebuilt: nothing pending any more


def test_identical_index_is_planned_as_nothing_to_do(milvus_uri, milvus_conn, store, collection_name):
    make_collection(milvus_uri, collection_name, rows=20)
    with MilvusHook(milvus_conn) as hook:
        wanted = wanted_specs(collection_name=collection_name, field_name="vec", index_type="HNSW", metric_type="L2",
                              index_params={"M": 8, "efConstruction": 64}, index_name=None, index_specs=None)  # fmt: skip
        plan = create.plan_indexes(hook, wanted, if_exists="fail")
        assert [s.action for s in plan.steps] == ["identical"]
        outcome = create.apply_create(hook, store, plan)
    assert outcome.created == [] and [s["field_name"] for s in outcome.skipped] == ["vec"]


def test_bad_input_is_refused_before_anything_changes(milvus_uri, milvus_conn, store, collection_name):
    make_collection(milvus_uri, collection_name, rows=20, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)), load=True)
    before = index_summary(milvus_uri, collection_name)
    with MilvusHook(milvus_conn) as hook:
        with pytest.raises(MilvusInputError, match="has 2 indexes"):
            drop.plan_drop(hook, store, collection_name=collection_name)
        with pytest.raises(MilvusInputError, match="if_exists='sometimes'"):
            create.plan_indexes(hook, [], if_exists="sometimes")
        with pytest.raises(MilvusInputError, match="does not exist"):
            collections.ensure_loaded(hook, f"{collection_name}_missing")
        with pytest.raises(MilvusInputError, match="does not exist"):
            collections.ensure_released(hook, f"{collection_name}_missing")
    assert index_summary(milvus_uri, collection_name) == before
    assert load_state(milvus_uri, collection_name) == "Loaded"


def test_load_release_and_status_are_idempotent(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name, rows=20)
    with MilvusHook(milvus_conn) as hook:
        collections.ensure_released(hook, collection_name)  # Milvus Lite loads with the index build
        assert collections.ensure_loaded(hook, collection_name, timeout=60) is True
        assert collections.ensure_loaded(hook, collection_name, timeout=60) is False
        (report,) = collections.status_report(hook, collection_name)
        assert report["load_state"] == "Loaded" and report["row_count"] == 20
        assert [i["build"]["state"] for i in report["indexes"]] == ["Finished"]
        assert collections.ensure_released(hook, collection_name) is True
        assert collections.ensure_released(hook, collection_name) is False
    assert load_state(milvus_uri, collection_name) == "NotLoad"


def test_lite_params_of_another_clients_index_are_unknown_and_said(lite_uri, monkeypatch, caplog):
    """Milvus Lite reports no build params: an index pymilvus built is snapshotted as params None,
    with a warning naming it; one the hook built keeps its params."""
    from tests.conftest import conn_env_value

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = f"lite_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn.upper()}", conn_env_value(lite_uri))
    make_collection(lite_uri, name, rows=20)  # HNSW M=8 built by pymilvus, not by this provider
    store = SnapshotStore(conn, variables=MetadataVariables())
    with MilvusHook(conn) as hook, caplog.at_level(logging.WARNING):
        (vec,) = drop.plan_drop(hook, store, collection_name=name).collections[0].snapshot
        assert vec["params"] is None
        assert f"index vec on {name}.vec" in caplog.text and "params null" in caplog.text
        collections.ensure_released(hook, name)  # Milvus Lite loads with the index build
        hook.drop_index(name, "vec")
        hook.create_index({**VECTOR_INDEX, "collection_name": name, "index_name": "vec"})
        (vec,) = hook.list_index_specs(name)
    assert vec["params"] == VECTOR_INDEX["params"]
