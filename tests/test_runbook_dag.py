"""The ops runbook example DAG, run with dag.test() against the real server and Milvus Lite."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import REPO, conn_env_value
from tests.dag_runner import dags_folder, load_dag, run_dag, xcom
from tests.helpers import VECTOR_INDEX, index_summary, load_state, make_collection, scalar_index

DAG_ID = "milvus_index_runbook"


@pytest.fixture
def runbook(milvus_uri, monkeypatch):
    shutil.copy(REPO / "example_dags" / f"{DAG_ID}.py", dags_folder())
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))

    def run(**conf):
        dr, tis = run_dag(DAG_ID, conf=conf)
        assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
        return dr, {t: ti.state for t, ti in tis.items()}

    return run


def test_params_make_a_trigger_form_with_safe_defaults():
    shutil.copy(REPO / "example_dags" / f"{DAG_ID}.py", dags_folder())
    dag = load_dag(DAG_ID)
    assert dag.schedule is None
    params = dag.params.dump()
    assert set(params) == {
        "collection", "action", "field_name", "index_name", "drop_all",
        "index_type", "metric_type", "index_params", "dry_run",
    }  # fmt: skip
    assert params["dry_run"] is True and params["action"] == "status"
    schema = dag.params.get_param("action").schema
    assert schema["enum"] == ["status", "drop", "rebuild"]
    assert all(dag.params.get_param(p).description for p in params)


def test_status_then_dry_run_drop_changes_nothing(runbook, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=50, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)), load=True)
    before = index_summary(milvus_uri, collection_name)

    for _ in range(2):
        dr, states = runbook(collection=collection_name)
        assert states == {"choose": "success", "status": "success", "drop": "skipped", "rebuild_drop": "skipped",
                          "rebuild_specs": "skipped", "rebuild_create": "skipped"}  # fmt: skip
        (report,) = xcom(dr, "status")
        assert report["collection_name"] == collection_name and report["load_state"] == "Loaded"
        assert report["row_count"] == 50
        by_field = {i["field_name"]: i for i in report["indexes"]}
        assert set(by_field) == {"vec", "year"}
        assert by_field["vec"]["index_type"] == "HNSW" and by_field["vec"]["metric_type"] == "L2"
        assert by_field["vec"]["build"]["state"] == "Finished" and by_field["vec"]["build"]["indexed_rows"] == 50

    dr, states = runbook(collection=collection_name, action="drop", field_name="vec")  # dry_run defaults to True
    result = xcom(dr, "drop")
    assert result["dry_run"] is True and [s["field_name"] for s in result["dropped"]] == ["vec"]
    assert index_summary(milvus_uri, collection_name) == before
    assert load_state(milvus_uri, collection_name) == "Loaded"


def test_rebuild_with_a_new_type_restores_the_load_state_twice(runbook, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=80, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)), load=True)
    conf = {
        "collection": f"{collection_name[:-2]}*",  # a glob, as ops would type it
        "action": "rebuild",
        "field_name": "vec",
        "index_type": "IVF_FLAT",
        "metric_type": "IP",
        "index_params": {"nlist": 16},
        "dry_run": False,
    }
    for _ in range(2):  # the second run rebuilds the IVF_FLAT index it finds
        dr, states = runbook(**conf)
        assert states["rebuild_create"] == "success" and states["status"] == "skipped"
        created = xcom(dr, "rebuild_create")
        assert [(s["collection_name"], s["index_type"], s["metric_type"]) for s in created["created"]] == [
            (collection_name, "IVF_FLAT", "IP")
        ]
        assert created["loaded"] == [collection_name]
        summary = index_summary(milvus_uri, collection_name)
        assert {v[0]: v[1:] for v in summary.values()} == {
            "vec": ("IVF_FLAT", "IP"),
            "year": (scalar_index(milvus_uri)["index_type"], None),
        }
        assert load_state(milvus_uri, collection_name) == "Loaded"


def test_drop_for_real_drops_only_the_named_index(runbook, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=20, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)))
    dr, _ = runbook(collection=collection_name, action="drop", field_name="year", dry_run=False)
    assert [s["field_name"] for s in xcom(dr, "drop")["dropped"]] == ["year"]
    assert [v[0] for v in index_summary(milvus_uri, collection_name).values()] == ["vec"]
    dr, _ = runbook(collection=collection_name, action="drop", field_name="year", dry_run=False)  # again: nothing left
    assert xcom(dr, "drop")["dropped"] == []


def test_an_unknown_action_is_refused_before_anything_runs(runbook, milvus_uri, collection_name):
    with pytest.raises(Exception, match="explode"):
        run_dag(DAG_ID, conf={"collection": collection_name, "action": "explode"})
