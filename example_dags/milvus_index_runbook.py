"""Ops runbook: inspect, drop or rebuild indexes by hand from the Trigger form.

Trigger it with a config (the UI shows every Param as a form field):

- ``status``: log and return each index with its build progress, and the load state;
- ``drop``: drop the index of ``field_name`` / ``index_name`` (or all with ``drop_all``),
  releasing a loaded collection first;
- ``rebuild``: drop, then build again, either as it was or with ``index_type``,
  ``metric_type`` and ``index_params``; a collection that was loaded is loaded again.

``dry_run`` is on by default: the run logs and returns what ``drop`` and ``rebuild`` would do
and changes nothing; turn it off to act. ``collection`` takes a glob (``books_*``) to act on
several collections. To have a person approve each destructive run instead, see
``milvus_index_runbook_approval.py``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator
from airflow_milvus.operators.status import MilvusIndexStatusOperator

CONN_ID = "milvus_default"
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

PARAMS = {
    "collection": Param("demo_books", type="string", minLength=1, description="Collection name or glob, e.g. books_*"),
    "action": Param("status", type="string", enum=["status", "drop", "rebuild"], description="What to do"),
    "field_name": Param(None, type=["null", "string"], pattern=NAME, description="Field whose index to drop or rebuild"),
    "index_name": Param(None, type=["null", "string"], pattern=NAME, description="Or: name of the index"),
    "drop_all": Param(False, type="boolean", description="Without field or index name: act on every index"),
    "index_type": Param(
        None, type=["null", "string"], description="Rebuild with this type (HNSW, IVF_FLAT, AUTOINDEX, INVERTED...); empty: as it was"
    ),
    "metric_type": Param(None, type=["null", "string"], enum=[None, "L2", "IP", "COSINE"], description="Rebuild with this metric"),
    "index_params": Param({}, type="object", description='Build parameters for the rebuild, e.g. {"M": 16}'),
    "dry_run": Param(True, type="boolean", description="Only log and return what would change; turn off to act"),
}


@task
def rebuild_specs(dropped: dict, params=None) -> dict:
    """What to build: the dropped indexes, with the type, metric and params asked for."""
    if not params["index_type"]:
        return dropped
    new = {"index_type": params["index_type"], "params": params["index_params"] or {}}
    if params["metric_type"]:
        new["metric_type"] = params["metric_type"]
    specs = [{**spec, **new} for spec in dropped["dropped"] + dropped["pending_rebuild"]]
    field = params["field_name"]
    if field:  # a field without an index yet: create one
        have = {s["collection_name"] for s in specs}
        specs += [
            {"collection_name": c, "field_name": field, "index_name": params["index_name"], "metric_type": None, **new}
            for c in dropped["collections"]
            if c not in have
        ]
    return {**dropped, "dropped": specs, "pending_rebuild": []}


@dag(
    dag_id="milvus_index_runbook",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # booleans and dicts reach the operators as such
    tags=["milvus", "runbook"],
    params=PARAMS,
)
def milvus_index_runbook():
    target = {
        "milvus_conn_id": CONN_ID,
        "collection_name": "{{ params.collection }}",
        "field_name": "{{ params.field_name }}",
    }
    drop_args = {**target, "index_name": "{{ params.index_name }}", "drop_all": "{{ params.drop_all }}"}

    status = MilvusIndexStatusOperator(task_id="status", **target)
    drop = MilvusDropIndexOperator(task_id="drop", dry_run="{{ params.dry_run }}", **drop_args)
    rebuild_drop = MilvusDropIndexOperator(task_id="rebuild_drop", dry_run="{{ params.dry_run }}", **drop_args)
    rebuild_create = MilvusCreateIndexOperator(  # builds what rebuild_drop dropped
        task_id="rebuild_create",
        milvus_conn_id=CONN_ID,
        index_specs=rebuild_specs(rebuild_drop.output),
        if_exists="replace",
        restore_load_state=True,
        dry_run="{{ params.dry_run }}",
        poll_interval=2,
    )

    @task.branch
    def choose(params=None) -> str:
        return {"status": "status", "drop": "drop", "rebuild": "rebuild_drop"}[params["action"]]

    choose() >> [status, drop, rebuild_drop]
    rebuild_drop >> rebuild_create


milvus_index_runbook()
