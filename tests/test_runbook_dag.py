"""The ops runbook example DAGs: the plain runbook (dry run by default) and the approval runbook
through dag.test() on the real server and Milvus Lite, and the approval gate driven through the
REST API of a real Airflow deployment (approve and reject)."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.conftest import REPO, conn_env_value
from tests.dag_runner import dags_folder, load_dag, run_dag, xcom
from tests.helpers import (
    VECTOR_INDEX,
    index_summary,
    is_lite,
    load_state,
    make_collection,
    scalar_index,
)

DAG_ID = "milvus_index_runbook"
APPROVAL_DAG_ID = "milvus_index_runbook_approval"
DESTRUCTIVE = {"drop", "rebuild_drop", "rebuild_create"}
PARAMS = {"collection", "action", "field_name", "index_name", "drop_all", "index_type", "metric_type", "index_params"}


@pytest.fixture
def runbook(milvus_uri, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))

    def run(dag_id=DAG_ID, **conf):
        """One run; the approval task (if any) is marked success without running, as an approver would."""
        shutil.copy(REPO / "example_dags" / f"{dag_id}.py", dags_folder())
        dr = load_dag(dag_id).test(run_conf=conf, mark_success_pattern="approve")
        states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
        assert dr.state == "success", states
        return dr, states

    return run


def _load(dag_id: str):
    shutil.copy(REPO / "example_dags" / f"{dag_id}.py", dags_folder())
    return load_dag(dag_id)


def test_params_make_a_trigger_form_and_dry_run_is_the_default():
    dag = _load(DAG_ID)
    assert dag.schedule is None
    params = dag.params.dump()
    assert set(params) == PARAMS | {"dry_run"} and params["dry_run"] is True and params["action"] == "status"
    assert dag.params.get_param("action").schema["enum"] == ["status", "drop", "rebuild"]
    assert all(dag.params.get_param(p).description for p in params)
    assert {dag.get_task(t).dry_run for t in DESTRUCTIVE} == {"{{ params.dry_run }}"}


def test_every_destructive_step_of_the_approval_runbook_waits_for_approval():
    dag = _load(APPROVAL_DAG_ID)
    assert set(dag.params.dump()) == PARAMS
    approve = dag.get_task("approve")
    assert type(approve).__name__ == "ApprovalOperator" and approve.defaults == ["Reject"]
    assert DESTRUCTIVE <= approve.get_flat_relative_ids(upstream=False)
    assert dag.get_task("plan").dry_run is True and "approve" in dag.get_task("plan").get_flat_relative_ids(upstream=False)
    assert {dag.get_task(t).dry_run for t in DESTRUCTIVE} == {False}


def test_the_approval_wait_is_bounded_on_every_standard_provider():
    """compat.approval_timeout names the argument the installed standard provider takes."""
    import warnings
    from datetime import timedelta

    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from airflow_milvus.compat import approval_timeout

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        op = ApprovalOperator(task_id="a", subject="s", **approval_timeout(timedelta(hours=24)))
    assert timedelta(hours=24) in (getattr(op, "response_timeout", None), op.execution_timeout)


def test_status_runs_without_approval(runbook, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=50, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)), load=True)
    for dag_id in (DAG_ID, APPROVAL_DAG_ID):
        dr, states = runbook(dag_id, collection=collection_name)
        assert states["status"] == "success" and {states[t] for t in DESTRUCTIVE} == {"skipped"}
        if dag_id == APPROVAL_DAG_ID:
            assert states["plan"] == "skipped" and states["approve"] == "skipped"
        (report,) = xcom(dr, "status")
        assert report["collection_name"] == collection_name and report["load_state"] == "Loaded"
        assert report["row_count"] == 50
        by_field = {i["field_name"]: i for i in report["indexes"]}
        assert set(by_field) == {"vec", "year"}
        assert by_field["vec"]["index_type"] == "HNSW" and by_field["vec"]["metric_type"] == "L2"
        assert by_field["vec"]["build"]["state"] == "Finished" and by_field["vec"]["build"]["indexed_rows"] == 50


@pytest.mark.slow  # the runbook DAG, twice
def test_rebuild_with_a_new_type_restores_the_load_state_twice(runbook, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=80, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)), load=True)
    conf = {
        "collection": f"{collection_name[:-2]}*",  # a glob, as ops would type it
        "action": "rebuild",
        "field_name": "vec",
        "index_type": "IVF_FLAT",
        "metric_type": "IP",
        "index_params": {"nlist": 16},
    }
    hnsw = "HNSW L2" if is_lite(milvus_uri) else "HNSW L2 {'M': 8, 'efConstruction': 64}"  # Lite reports no params
    for attempt in range(2):  # the second run rebuilds the IVF_FLAT index it finds
        dr, states = runbook(APPROVAL_DAG_ID, **conf)
        assert states["rebuild_create"] == "success" and states["status"] == "skipped" and states["drop"] == "skipped"
        shown = xcom(dr, "describe_plan")
        vec = f"`vec` on `vec` ({hnsw})" if attempt == 0 else "`vec` on `vec` (IVF_FLAT IP {'nlist': 16})"
        assert f"| `{collection_name}` | yes | {vec} |" in shown, shown
        assert "Then rebuild IVF_FLAT IP {'nlist': 16}" in shown
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


def test_drop_is_a_dry_run_by_default_then_drops_only_the_named_index(runbook, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=20, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)))
    before = index_summary(milvus_uri, collection_name)
    dr, _ = runbook(collection=collection_name, action="drop", field_name="year")  # dry_run: on by default
    assert xcom(dr, "drop")["dry_run"] is True and [s["field_name"] for s in xcom(dr, "drop")["dropped"]] == ["year"]
    assert index_summary(milvus_uri, collection_name) == before
    dr, states = runbook(collection=collection_name, action="drop", field_name="year", dry_run=False)
    assert states["rebuild_drop"] == "skipped" and states["rebuild_create"] == "skipped"
    assert [s["field_name"] for s in xcom(dr, "drop")["dropped"]] == ["year"]
    assert [v[0] for v in index_summary(milvus_uri, collection_name).values()] == ["vec"]
    dr, _ = runbook(collection=collection_name, action="drop", field_name="year", dry_run=False)  # again: nothing left
    assert xcom(dr, "drop")["dropped"] == []


def test_an_unknown_action_is_refused_before_anything_runs(runbook, milvus_uri, collection_name):
    for dag_id in (DAG_ID, APPROVAL_DAG_ID):
        _load(dag_id)
        with pytest.raises(Exception, match="explode"):
            run_dag(dag_id, conf={"collection": collection_name, "action": "explode"})


# ------------------------------------------------------------------ the approval, for real


def respond(airflow, run_id: str, option: str) -> dict:
    """What a person does in Required Actions: read the request, then answer it (REST API)."""
    path = f"/api/v2/dags/{APPROVAL_DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
    ti = airflow.wait_for_task(APPROVAL_DAG_ID, run_id, "approve", {"awaiting_input", "deferred", "upstream_failed", "skipped"}, timeout=240)
    if ti["state"] not in ("awaiting_input", "deferred"):
        raise AssertionError(airflow.explain(airflow.wait_for_run(APPROVAL_DAG_ID, run_id)))
    # Airflow 3.3.2 races: an answer before the scheduler has seen the parked task's process
    # exit gets the task failed ("state changed externally"). A person is never that fast.
    parked = f"Received executor event with state success for task instance TaskInstanceKey(dag_id='{APPROVAL_DAG_ID}', task_id='approve', run_id='{run_id}'"
    deadline = time.monotonic() + 60
    while parked not in airflow.log_path("scheduler").read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.5)
    request = airflow.api("GET", path)
    answer = airflow.api("PATCH", path, {"chosen_options": [option], "params_input": {}})
    assert answer["chosen_options"] == [option]
    return request


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("option", ["Reject", "Approve"])
def test_a_person_approves_or_rejects_the_drop_through_the_rest_api(server_deployment, milvus_server, collection_name, option):
    uri = milvus_server.uri
    make_collection(uri, collection_name, rows=30, indexes=(VECTOR_INDEX, scalar_index(uri)), load=True)
    before = index_summary(uri, collection_name)

    run_id = server_deployment.trigger(APPROVAL_DAG_ID, {"collection": collection_name, "action": "drop", "field_name": "vec"})
    request = respond(server_deployment, run_id, option)
    assert request["options"] == ["Approve", "Reject"] and request["subject"] == f"Drop indexes of {collection_name}?"
    body = request["body"]  # the plan the person approved or rejected
    assert f"| `{collection_name}` | yes | `vec` on `vec` (HNSW L2 {{'M': 8, 'efConstruction': 64}}) |" in body, body
    assert "`year` on `year` (STL_SORT)" in body  # the snapshot: every index, kept ones too
    run = server_deployment.wait_for_run(APPROVAL_DAG_ID, run_id)
    assert run.state == "success", server_deployment.explain(run)
    states = {t: ti["state"] for t, ti in run.tasks.items()}
    assert states["approve"] == "success" and states["plan"] == "success"

    if option == "Reject":  # the run ends with nothing changed
        assert {states[t] for t in ("act", *DESTRUCTIVE)} == {"skipped"}
        assert index_summary(uri, collection_name) == before
        assert load_state(uri, collection_name) == "Loaded"
    else:
        assert states["drop"] == "success" and states["rebuild_drop"] == "skipped"
        assert index_summary(uri, collection_name) == {k: v for k, v in before.items() if v[0] == "year"}
        assert load_state(uri, collection_name) == "NotLoad"  # released for the drop, as the plan said
