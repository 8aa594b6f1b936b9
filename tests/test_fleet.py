"""Fleets: example_dags/milvus_fleet_reindex.py, one mapped task group per collection, under
dag.test() on both flavours (the CeleryExecutor run is in tests/test_deployment.py)."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import REPO, conn_env_value, milvus_client
from tests.dag_runner import dags_folder, load_dag

FLEET = "milvus_fleet_reindex"
GROUP = "reindex_tenant"
SEEDED = {"field_name": "embedding", "index_name": "embedding", "index_type": "HNSW", "metric_type": "L2",
          "params": {"M": 16, "efConstruction": 64}}  # the example's DEMO_INDEX


def make_tenant(uri: str, name: str, *, dim: int = 32, index: bool = True) -> None:
    """A collection with the example's schema (id, embedding) and, optionally, its index."""
    from pymilvus import DataType

    with milvus_client(uri) as c:
        if c.has_collection(name):
            c.drop_collection(name)
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
        c.create_collection(name, schema=schema)
        if c.get_load_state(name)["state"].name == "Loaded":
            c.release_collection(name)  # Lite reports new collections as Loaded
    if index:  # through the provider's hook, as the example seeds its tenants: Lite then knows the params
        from airflow_milvus.hooks.milvus import MilvusHook

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AIRFLOW_CONN_FLEET_TENANT", conn_env_value(uri))
            with MilvusHook("fleet_tenant") as hook:
                hook.create_index({"collection_name": name, **SEEDED})


def index_specs(uri: str, name: str) -> list[dict]:
    """The collection's indexes as the provider's hook reads them back (params included)."""
    from airflow_milvus.hooks.milvus import MilvusHook

    with MilvusHook("fleet_check") as hook:
        return [{k: spec[k] for k in SEEDED} for spec in hook.list_index_specs(name)]


def mapped_states(dag_run) -> dict[str, dict[int, str]]:
    """``{task_id: {map_index: state}}`` of a run."""
    states: dict[str, dict[int, str]] = {}
    for ti in dag_run.get_task_instances():
        states.setdefault(ti.task_id, {})[ti.map_index] = str(ti.state)
    return states


def mapped_xcom(dag_run, task_id: str, key: str = "return_value") -> dict[int, object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id,
                                                  key=key).all()
        return {row.map_index: XComModel.deserialize_value(row) for row in rows}


@pytest.mark.slow  # a whole mapped example DAG
def test_fleet_example_reindexes_each_tenant_and_a_broken_one_fails_alone(milvus_uri, monkeypatch, collection_name, flavour):
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))
    monkeypatch.setenv("AIRFLOW_CONN_FLEET_CHECK", conn_env_value(milvus_uri))
    path = dags_folder() / f"{FLEET}.py"
    shutil.copy(REPO / "example_dags" / f"{FLEET}.py", path)
    broken = f"{collection_name}_bad"
    make_tenant(milvus_uri, broken, dim=8)  # its rows (dim 32) cannot be written: a broken tenant
    conf = {"pattern": f"{collection_name}_*", "demo_tenants": 3, "rows": 200}

    dag_run = load_dag(FLEET, path).test(run_conf=conf)

    names = [f"{collection_name}_{n:03d}" for n in range(3)] + [broken]  # the listing's order: the map indexes
    states = mapped_states(dag_run)
    assert states[f"{GROUP}.drop_indexes"] == dict.fromkeys(range(4), "success"), states
    assert states[f"{GROUP}.reload"] == {0: "success", 1: "success", 2: "success", 3: "failed"}, states
    for later in ("rebuild_indexes", "check_recall"):
        assert states[f"{GROUP}.{later}"] == {0: "success", 1: "success", 2: "success", 3: "upstream_failed"}, states
    assert states["summarize"] == {-1: "failed"} and dag_run.state == "failed"  # the run tells

    # Each rebuild got exactly its own drop's snapshot, and left its tenant as it was.
    drops, rebuilds = mapped_xcom(dag_run, f"{GROUP}.drop_indexes"), mapped_xcom(dag_run, f"{GROUP}.rebuild_indexes")
    for index, name in enumerate(names[:3]):
        assert [s["collection_name"] for s in drops[index]["dropped"]] == [name]
        assert [s["collection_name"] for s in rebuilds[index]["created"]] == [name]
        assert index_specs(milvus_uri, name) == [SEEDED], name
    assert 3 not in rebuilds and index_specs(milvus_uri, broken) == []  # dropped, then its reload failed

    summary = mapped_xcom(dag_run, "summarize", "outcome")[-1]
    assert set(summary) == set(names)
    assert summary[broken] == f"FAILED: see map index 3 of {GROUP}"
    assert all(summary[name].startswith("reindexed, recall@10 ") for name in names[:3]), summary


def test_fleet_example_bounds_each_step_and_refuses_a_pattern_too_wide(milvus_uri, monkeypatch, collection_name):
    """Statically: every step of the group is mapped and bounded per DAG; at run time the
    listing refuses more tenants than ``max_tenants`` before anything is mapped."""
    from airflow_milvus.errors import MilvusInputError
    from airflow_milvus.operators.listing import MilvusListCollectionsOperator

    path = dags_folder() / f"{FLEET}.py"
    shutil.copy(REPO / "example_dags" / f"{FLEET}.py", path)
    dag = load_dag(FLEET, path)
    group_tasks = {t.task_id: t for t in dag.tasks if t.task_id.startswith(f"{GROUP}.")}
    assert set(group_tasks) == {f"{GROUP}.{t}" for t in ("drop_indexes", "reload", "rebuild_indexes", "check_recall")}
    assert {t.max_active_tis_per_dag for t in group_tasks.values()} == {4}
    assert {t.pool for t in dag.tasks} == {"default_pool"}  # runs in a fresh Airflow

    monkeypatch.setenv("AIRFLOW_CONN_FLEET_LIST", conn_env_value(milvus_uri))
    for n in range(3):
        make_tenant(milvus_uri, f"{collection_name}_{n}", index=False)
    listing = MilvusListCollectionsOperator(task_id="list", milvus_conn_id="fleet_list", collection_name=f"{collection_name}_*")
    assert listing.execute({}) == [f"{collection_name}_{n}" for n in range(3)]
    listing.limit = 2
    with pytest.raises(MilvusInputError, match=r"matches 3 collections, more than limit=2 .*Narrow the pattern, or raise limit"):
        listing.execute({})
    missing = MilvusListCollectionsOperator(task_id="list", milvus_conn_id="fleet_list", collection_name=f"{collection_name}_none_*")
    with pytest.raises(MilvusInputError, match="matches no collection"):
        missing.execute({})
    missing.missing_ok = True
    assert missing.execute({}) == []


def test_partial_expand_feeds_each_rebuild_its_own_drops_result(lite_uri, monkeypatch, collection_name):
    """Without a task group: drop mapped over collections, the rebuild mapped over the drop's
    results (``.expand(index_specs=drop.output)``): one rebuild per drop map index, each
    rebuilding exactly what its own drop removed."""
    from tests.dag_runner import run_dag, write_dag

    monkeypatch.setenv("AIRFLOW_CONN_FLEET_CHECK", conn_env_value(lite_uri))
    names = [f"{collection_name}_{n}" for n in range(3)]
    for number, name in enumerate(names):
        make_tenant(lite_uri, name, dim=8 + 8 * number)  # each its own, told apart by the dimension
    dag_id = write_dag(f"""
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    drop = MilvusDropIndexOperator.partial(task_id="drop", milvus_conn_id="fleet_check", drop_all=True).expand(
        collection_name={names!r})
    MilvusCreateIndexOperator.partial(task_id="rebuild", milvus_conn_id="fleet_check").expand(index_specs=drop.output)
""")
    dag_run, _ = run_dag(dag_id)
    assert dag_run.state == "success", mapped_states(dag_run)
    drops, rebuilds = mapped_xcom(dag_run, "drop"), mapped_xcom(dag_run, "rebuild")
    assert sorted(rebuilds) == [0, 1, 2]
    for index, name in enumerate(names):
        assert [s["collection_name"] for s in drops[index]["dropped"]] == [name]
        assert [s["collection_name"] for s in rebuilds[index]["created"]] == [name]
        assert index_specs(lite_uri, name) == [SEEDED]
