"""Ops runbook: inspect, drop or rebuild indexes by hand from the Trigger form.

Trigger it with a config (the UI shows every Param as a form field):

- ``status``: log and return each index with its build progress, and the load state;
- ``drop``: drop the index of ``field_name`` / ``index_name`` (or all with ``drop_all``),
  releasing a loaded collection first;
- ``rebuild``: drop, then build again, either as it was or with ``index_type``,
  ``metric_type`` and ``index_params``; a collection that was loaded is loaded again.

``drop`` and ``rebuild`` first plan (a dry run that changes nothing), then wait for a person's
approval in Airflow's Required Actions (human-in-the-loop, Airflow >= 3.1): the approver sees
what would be released and dropped, every index as it is now (the snapshot) and the load state.
Approve runs the destructive steps; Reject ends the run with nothing changed. Where the
standard provider has no HITL operators, the runbook falls back to a ``dry_run`` Param, on by
default (the run logs what it would do; turn it off to act). ``collection`` takes a glob
(``books_*``) to act on several collections. See docs/assets_and_approval.md.
"""

from __future__ import annotations

import inspect
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.index import (
    MilvusCreateIndexOperator,
    MilvusDropIndexOperator,
)
from airflow_milvus.operators.status import MilvusIndexStatusOperator
from airflow_milvus.planning.rules import needs_release

try:  # the standard provider's human-in-the-loop operators need Airflow >= 3.1
    from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
except Exception:  # ImportError, or AirflowOptionalProviderFeatureException before 3.1
    ApprovalOperator = None

CONN_ID = "milvus_default"
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
HITL = ApprovalOperator is not None
# How long a human may take: response_timeout in newer standard providers; the ones of Airflow
# 3.1 and 3.2 take execution_timeout (newer ones still accept it, with a deprecation warning).
WAIT_ARG = (
    "response_timeout" if HITL and "response_timeout" in inspect.signature(HITLOperator.__init__).parameters
    else "execution_timeout"
)  # fmt: skip

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
if not HITL:
    PARAMS["dry_run"] = Param(True, type="boolean", description="Only log what would change (no approval step on this Airflow)")


def _specs(specs: list[dict]) -> str:
    def one(s: dict) -> str:
        how = " ".join(str(x) for x in (s["index_type"], s.get("metric_type"), s.get("params")) if x)
        return f"`{s['index_name']}` on `{s['field_name']}` ({how})"

    return ", ".join(one(s) for s in specs) or "none"


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
    status = MilvusIndexStatusOperator(task_id="status", **target)
    drop_args = {**target, "index_name": "{{ params.index_name }}", "drop_all": "{{ params.drop_all }}"}
    dry_run = False if HITL else "{{ params.dry_run }}"
    drop = MilvusDropIndexOperator(task_id="drop", dry_run=dry_run, **drop_args)
    rebuild_drop = MilvusDropIndexOperator(task_id="rebuild_drop", dry_run=dry_run, **drop_args)

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

    rebuild = MilvusCreateIndexOperator(
        task_id="rebuild_create",
        milvus_conn_id=CONN_ID,
        index_specs=rebuild_specs(rebuild_drop.output),
        if_exists="replace",
        restore_load_state=True,
        dry_run=dry_run,
        poll_interval=2,
    )
    rebuild_drop >> rebuild

    if not HITL:  # the fallback: act at once, or only log with dry_run
        branches = {"status": status, "drop": drop, "rebuild": rebuild_drop}
    else:
        plan = MilvusDropIndexOperator(task_id="plan", dry_run=True, **drop_args)
        branches = {"status": status, "drop": plan, "rebuild": plan}

        @task
        def describe_plan(plan: dict, params=None) -> str:
            """The approver's view (Markdown): what would be released and dropped, the snapshot, the load state."""
            lines = [
                f"**{params['action'].capitalize()}** on `{params['collection']}`: {len(plan['collections'])} collection(s).",
                "",
                "| collection | load state | released first | would drop | indexes now (snapshot) |",
                "| --- | --- | --- | --- | --- |",
            ]
            with MilvusHook(CONN_ID) as hook:
                for name in plan["collections"]:
                    targets = [s for s in plan["dropped"] if s["collection_name"] == name]
                    state = hook.get_load_state(name)
                    release = "yes" if needs_release(targets, state, hook.server_version) else "no"
                    lines.append(f"| `{name}` | {state} | {release} | {_specs(targets)} | {_specs(plan['snapshot'][name])} |")
            if plan["pending_rebuild"]:
                lines += ["", f"Left without a rebuild by earlier runs: {_specs(plan['pending_rebuild'])}."]
            if params["action"] == "rebuild":
                how = f"{params['index_type']} {params['metric_type'] or ''} {params['index_params'] or {}}" if params["index_type"] else "as it was"
                lines += ["", f"Then rebuild {how}, and load again what was loaded."]
            lines += ["", "**Approve** to run this now; **Reject** ends the run with nothing changed."]
            return "\n".join(lines)

        approve = ApprovalOperator(
            task_id="approve",
            subject="{{ params.action | capitalize }} indexes of {{ params.collection }}?",
            body="{{ ti.xcom_pull(task_ids='describe_plan') }}",
            defaults="Reject",  # what a timeout decides
            **{WAIT_ARG: timedelta(hours=24)},
        )

        @task.branch
        def act(params=None) -> str:
            return "drop" if params["action"] == "drop" else "rebuild_drop"

        plan >> describe_plan(plan.output) >> approve >> act() >> [drop, rebuild_drop]

    @task.branch
    def choose(params=None) -> str:
        return branches[params["action"]].task_id

    choose() >> list({t.task_id: t for t in branches.values()}.values())


milvus_index_runbook()
