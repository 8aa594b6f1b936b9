"""Ops runbook with an approval gate: a person approves each drop or rebuild first.

The same Trigger form as ``milvus_index_runbook`` (without ``dry_run``). ``status`` runs at once;
``drop`` and ``rebuild`` first plan (a dry run that changes nothing), then wait in Airflow's
Required Actions (human-in-the-loop, from the standard provider) for a person who sees what
would be dropped, every index as it is now (the snapshot) and whether the collection is loaded.
**Approve** runs the destructive steps; **Reject**, or no answer within 24 hours, ends the run
with nothing changed. See docs/assets_and_approval.md.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, task

from airflow_milvus.compat import approval_timeout
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
}


def _specs(specs: list[dict]) -> str:
    def one(s: dict) -> str:
        how = " ".join(str(x) for x in (s["index_type"], s.get("metric_type"), s.get("params")) if x)
        return f"`{s['index_name']}` on `{s['field_name']}` ({how})"

    return ", ".join(one(s) for s in specs) or "none"


@task
def describe_plan(plan: dict, params=None) -> str:
    """The approver's view (Markdown): what would be dropped, the snapshot, the load state."""
    lines = [
        f"**{params['action'].capitalize()}** on `{params['collection']}`: {len(plan['collections'])} collection(s).",
        "",
        "| collection | loaded | would drop | indexes now (snapshot) |",
        "| --- | --- | --- | --- |",
    ]
    for name, state in plan["collections"].items():
        targets = [s for s in plan["dropped"] if s["collection_name"] == name]
        loaded = "yes" if state["was_loaded"] else "no"
        lines.append(f"| `{name}` | {loaded} | {_specs(targets)} | {_specs(plan['snapshot'][name])} |")
    if plan["pending_rebuild"]:
        lines += ["", f"Left without a rebuild by earlier runs: {_specs(plan['pending_rebuild'])}."]
    lines += ["", "A loaded collection is released first where Milvus needs it for the drop."]
    if params["action"] == "rebuild":
        how = f"{params['index_type']} {params['metric_type'] or ''} {params['index_params'] or {}}" if params["index_type"] else "as it was"
        lines += ["", f"Then rebuild {how}, and load again what was loaded."]
    lines += ["", "**Approve** to run this now; **Reject** ends the run with nothing changed."]
    return "\n".join(lines)


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
    dag_id="milvus_index_runbook_approval",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # booleans and dicts reach the operators as such
    tags=["milvus", "runbook"],
    params=PARAMS,
)
def milvus_index_runbook_approval():
    target = {
        "milvus_conn_id": CONN_ID,
        "collection_name": "{{ params.collection }}",
        "field_name": "{{ params.field_name }}",
    }
    drop_args = {**target, "index_name": "{{ params.index_name }}", "drop_all": "{{ params.drop_all }}"}

    status = MilvusIndexStatusOperator(task_id="status", **target)
    plan = MilvusDropIndexOperator(task_id="plan", dry_run=True, **drop_args)
    approve = ApprovalOperator(
        task_id="approve",
        subject="{{ params.action | capitalize }} indexes of {{ params.collection }}?",
        body="{{ ti.xcom_pull(task_ids='describe_plan') }}",
        defaults="Reject",  # what a timeout decides
        **approval_timeout(timedelta(hours=24)),  # the argument's name differs between standard providers
    )
    drop = MilvusDropIndexOperator(task_id="drop", **drop_args)
    rebuild_drop = MilvusDropIndexOperator(task_id="rebuild_drop", **drop_args)
    rebuild_create = MilvusCreateIndexOperator(  # builds what rebuild_drop dropped
        task_id="rebuild_create",
        milvus_conn_id=CONN_ID,
        index_specs=rebuild_specs(rebuild_drop.output),
        if_exists="replace",
        restore_load_state=True,
        poll_interval=2,
    )

    @task.branch
    def choose(params=None) -> str:
        return "status" if params["action"] == "status" else "plan"

    @task.branch
    def act(params=None) -> str:
        return "drop" if params["action"] == "drop" else "rebuild_drop"

    choose() >> [status, plan]
    plan >> describe_plan(plan.output) >> approve >> act() >> [drop, rebuild_drop]
    rebuild_drop >> rebuild_create


milvus_index_runbook_approval()
