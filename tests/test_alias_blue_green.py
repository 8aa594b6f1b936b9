"""Alias swap operator, schema cloning, and the blue-green example DAG with live queries."""

from __future__ import annotations

import shutil

import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.alias import MilvusSwapAliasOperator
from tests.conftest import REPO, conn_env_value, milvus_client
from tests.dag_runner import dags_folder, run_dag, xcom
from tests.helpers import make_collection


def swap(conn_id, alias, target, **kwargs) -> dict:
    return MilvusSwapAliasOperator(task_id="swap", milvus_conn_id=conn_id, alias=alias, collection_name=target, **kwargs).execute({})


def alias_target(uri, alias):
    with milvus_client(uri) as c:
        return c.describe_alias(alias)["collection_name"]


def test_swap_creates_then_switches_and_reruns_as_success(milvus_conn, milvus_uri, collection_name):
    blue, green, alias = f"{collection_name}_blue", f"{collection_name}_green", f"{collection_name}_live"
    make_collection(milvus_uri, blue, rows=20, load=True)
    make_collection(milvus_uri, green, rows=30, load=True)

    assert swap(milvus_conn, alias, blue) == {"alias": alias, "collection_name": blue, "previous_collection": None, "swapped": True}
    assert swap(milvus_conn, alias, green) == {"alias": alias, "collection_name": green, "previous_collection": blue, "swapped": True}
    assert alias_target(milvus_uri, alias) == green
    # The re-run after a swap: nothing to do, success.
    assert swap(milvus_conn, alias, green) == {"alias": alias, "collection_name": green, "previous_collection": green, "swapped": False}
    with milvus_client(milvus_uri) as c:
        assert len(c.query(alias, filter="id >= 0", output_fields=["id"], limit=100)) == 30


def test_swap_refuses_what_would_break_clients_and_changes_nothing(milvus_conn, milvus_uri, collection_name):
    live, alias = f"{collection_name}_a", f"{collection_name}_live"
    unloaded, other_dim = f"{collection_name}_b", f"{collection_name}_c"
    make_collection(milvus_uri, live, rows=10, load=True)
    make_collection(milvus_uri, unloaded, rows=10, load=False)
    make_collection(milvus_uri, other_dim, rows=10, load=True, dim=4)
    with milvus_client(milvus_uri) as c:
        c.release_collection(unloaded)  # Milvus Lite loads a collection when it builds an index
    swap(milvus_conn, alias, live)

    cases = [
        ({"target": unloaded}, f"Collection '{unloaded}' is NotLoad: queries through '{alias}' would fail.* Set require_loaded=False"),
        ({"target": other_dim}, r"has fields id:INT64, vec:FLOAT_VECTOR\(4\).*clients may break\. Set allow_schema_change=True"),
        ({"target": f"{collection_name}_nope"}, "does not exist; create and load it"),
        ({"target": alias}, "alias and collection_name are both"),
        ({"target": live, "alias": unloaded}, f"'{unloaded}' is a collection, not an alias"),
        ({"target": alias, "alias": f"{collection_name}_other"}, f"'{alias}' is an alias of '{live}'"),
        ({"target": "bad-name"}, "is not a valid Milvus name"),
    ]
    for case, message in cases:
        with pytest.raises(MilvusInputError, match=message):
            swap(milvus_conn, case.get("alias", alias), case["target"])
        assert alias_target(milvus_uri, alias) == live
    # Said explicitly, the same swaps go through.
    assert swap(milvus_conn, alias, unloaded, require_loaded=False)["swapped"] is True
    assert swap(milvus_conn, alias, other_dim, allow_schema_change=True)["previous_collection"] == unloaded
    with pytest.raises(MilvusInputError, match="does not exist; create it first. Set create_if_missing=True to create it with the swap"):
        swap(milvus_conn, f"{collection_name}_new", live, create_if_missing=False)


def test_clone_collection_schema_is_idempotent(milvus_conn, milvus_uri, collection_name):
    source, target = f"{collection_name}_src", f"{collection_name}_dst"
    make_collection(milvus_uri, source, rows=5)
    with MilvusHook(milvus_conn) as hook:
        assert hook.clone_collection_schema(source, target) is True
        assert hook.collection_fields(target) == hook.collection_fields(source)
        assert hook.row_count(target) == 0
        assert hook.list_index_specs(target) == []
        assert hook.clone_collection_schema(source, target) is False
    make_collection(milvus_uri, target, rows=0, dim=4)
    with MilvusHook(milvus_conn) as hook, pytest.raises(MilvusInputError, match="exists with a schema different"):
        hook.clone_collection_schema(source, target)


class AliasProbe:
    """Query through the alias, recording which collection answered or what failed."""

    def __init__(self, client, alias: str) -> None:
        self.client, self.alias = client, alias
        self.answers: list[str] = []  # the alias target behind each good answer
        self.failures: list[str] = []

    def __call__(self) -> None:
        c = self.client
        try:
            target = c.describe_alias(self.alias)["collection_name"]
            rows = c.query(self.alias, filter="id == 7", output_fields=["title"], consistency_level="Strong")
            hits = c.search(self.alias, data=[[0.5] * 32], limit=3, anns_field="embedding")
            if [r["title"] for r in rows] != ["book 7"] or len(hits[0]) != 3:
                self.failures.append(f"{target}: query {rows}, search {hits}")
            else:
                self.answers.append(target)
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")


@pytest.mark.slow  # a whole example DAG, twice
def test_blue_green_example_keeps_answering_through_the_alias(milvus_uri, collection_name, monkeypatch):
    shutil.copy(REPO / "example_dags" / "milvus_blue_green_reindex.py", dags_folder())
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))
    alias = f"{collection_name}_live"
    conf = {"alias": alias, "rows": 300}

    dr, tis = run_dag("milvus_blue_green_reindex", conf=conf)  # first run: bootstraps generation 1
    assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
    assert xcom(dr, "swap_alias") == {"alias": alias, "collection_name": f"{alias}_v1", "previous_collection": None, "swapped": True}

    # Probe the alias before the Milvus calls the run makes (tasks run in this process with
    # dag.test()), and once after it: every step of the run is covered, without timing. A run
    # of identical calls (the recall check's 100 searches) is probed once, before its first.
    with milvus_client(milvus_uri) as client:
        probe = AliasProbe(client, alias)
        original = MilvusHook.call
        previous = [None]

        def probing(self, what, fn):
            if what != previous[0]:
                probe()
            previous[0] = what
            return original(self, what, fn)

        monkeypatch.setattr(MilvusHook, "call", probing)
        dr, tis = run_dag("milvus_blue_green_reindex", conf=conf)  # second run: v2 replaces v1 while serving
        monkeypatch.setattr(MilvusHook, "call", original)
        probe()  # after the run: v1 is gone, the alias still answers
    assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
    assert probe.failures == []
    v1, v2 = f"{alias}_v1", f"{alias}_v2"
    assert probe.answers.count(v1) > 10 and probe.answers.count(v2) >= 2  # probes span the swap
    assert probe.answers == sorted(probe.answers)  # v1 until the swap, v2 from then on
    assert xcom(dr, "swap_alias")["previous_collection"] == f"{alias}_v1"
    assert xcom(dr, "drop_previous") == [f"{alias}_v1"]
    assert xcom(dr, "build_indexes")["created"][0]["collection_name"] == f"{alias}_v2"
    with milvus_client(milvus_uri) as c:
        assert sorted(n for n in c.list_collections() if n.startswith(alias)) == [f"{alias}_v2"]
        assert c.get_load_state(f"{alias}_v2")["state"].name == "Loaded"


@pytest.mark.slow  # a whole example DAG, twice
def test_blue_green_gate_keeps_the_alias_on_the_old_generation_when_the_new_index_is_poor(milvus_uri, collection_name, monkeypatch):
    shutil.copy(REPO / "example_dags" / "milvus_blue_green_reindex.py", dags_folder())
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))
    alias = f"{collection_name}_live"
    v1, v2 = f"{alias}_v1", f"{alias}_v2"
    # 3000 rows: the server searches segments under 1024 rows exactly, whatever the index.
    base = {"alias": alias, "rows": 3000}
    dr, tis = run_dag("milvus_blue_green_reindex", conf=base)
    assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
    assert xcom(dr, "check_recall")["recall"] >= 0.9

    # Many IVF lists searched with nprobe 1: far below the gate's 0.9.
    poor = {**base, "index": {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 1024}},
            "search_params": {"params": {"nprobe": 1}}}
    dr, tis = run_dag("milvus_blue_green_reindex", conf=poor)
    states = {t: ti.state for t, ti in tis.items()}
    assert dr.state == "failed"
    assert (states["load"], states["check_recall"], states["swap_alias"], states["drop_previous"]) == (
        "success", "failed", "upstream_failed", "upstream_failed")
    assert alias_target(milvus_uri, alias) == v1  # still serving the old generation
    with milvus_client(milvus_uri) as c:
        assert c.search(alias, data=[[0.5] * 32], limit=3, anns_field="embedding")[0]
        assert {n for n in c.list_collections() if n.startswith(alias)} == {v1, v2}  # v2 kept for inspection
        assert c.describe_index(v2, "embedding")["index_type"] == "IVF_FLAT"

    # Re-run with the served settings: v2 is rebuilt with v1's index, passes, and serves.
    dr, tis = run_dag("milvus_blue_green_reindex", conf=base)
    assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
    assert xcom(dr, "check_recall")["index"]["index_type"] == "HNSW" and xcom(dr, "check_recall")["passed"] is True
    assert xcom(dr, "swap_alias") == {"alias": alias, "collection_name": v2, "previous_collection": v1, "swapped": True}
    assert alias_target(milvus_uri, alias) == v2
