"""The index lifecycle operators in real DAG runs (dag.test), on Milvus Lite and the real server."""

from __future__ import annotations

import pytest

from tests.conftest import milvus_client
from tests.dag_runner import run_dag, write_dag, xcom
from tests.helpers import (
    VECTOR_INDEX,
    index_summary,
    is_lite,
    load_state,
    make_collection,
    scalar_index,
)

HEADER = """
import pendulum
from airflow.sdk import DAG, Param
from airflow_milvus.operators.index import MilvusDropIndexOperator, MilvusCreateIndexOperator
from airflow_milvus.operators.collection import MilvusLoadCollectionOperator, MilvusReleaseCollectionOperator
from airflow_milvus.sensors.index import MilvusIndexBuiltSensor
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1), params=PARAMS, default_args=DEFAULT_ARGS):
"""


def dag_of(tasks: str, conn_id: str, params: dict | None = None, default_args: dict | None = None) -> str:
    body = f"CONN = {conn_id!r}\nPARAMS = {params or {}!r}\nDEFAULT_ARGS = {default_args or {}!r}\n" + HEADER + "\n".join("    " + line for line in tasks.strip().splitlines())
    return write_dag(body)


def run(tasks: str, conn_id: str, **kw):
    dag_id = dag_of(tasks, conn_id, kw.pop("params", None), kw.pop("default_args", None))
    dr, tis = run_dag(dag_id, **kw)
    return dag_id, dr, tis


def drop_then_rebuild(collection_name: str, drop_args: str = "") -> str:
    """Tasks of the reindex core: drop, then rebuild from the drop's XCom."""
    return f'''
drop = MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}"{drop_args})
rebuild = MilvusCreateIndexOperator(task_id="rebuild", milvus_conn_id=CONN, index_specs=drop.output, poll_interval=0.5)
drop >> rebuild'''


def states(tis) -> dict[str, str]:
    return {k: str(v.state) for k, v in tis.items()}


# ------------------------------------------------------------------ the seed page's forms
@pytest.mark.parametrize("form", ["collection_only", "field_name", "index_name"])
def test_each_seed_form_drops_the_index(form, milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name)
    arg = {"collection_only": "", "field_name": ', field_name="vec"', "index_name": ', index_name="vec"'}[form]
    _, dr, tis = run(f'MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}"{arg})', milvus_conn)
    assert dr.state == "success", states(tis)
    result = xcom(dr, "drop")
    assert [(s["field_name"], s["index_type"], s["metric_type"]) for s in result["dropped"]] == [("vec", "HNSW", "L2")]
    assert result["dry_run"] is False
    assert index_summary(milvus_uri, collection_name) == {}


def test_only_the_named_index_is_dropped(milvus_uri, milvus_conn, collection_name, flavour):
    scalar = scalar_index(milvus_uri)
    make_collection(milvus_uri, collection_name, indexes=(VECTOR_INDEX, scalar))
    _, dr, tis = run(f'MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}", field_name="year")', milvus_conn)
    assert dr.state == "success", states(tis)
    assert [s["field_name"] for s in xcom(dr, "drop")["dropped"]] == ["year"]
    assert index_summary(milvus_uri, collection_name) == {"vec": ("vec", "HNSW", "L2")}


def test_ambiguous_drop_is_refused_without_drop_all(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)))
    before = index_summary(milvus_uri, collection_name)
    _, dr, tis = run(f'MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}")', milvus_conn)
    assert dr.state == "failed" and str(tis["drop"].state) == "failed"
    assert index_summary(milvus_uri, collection_name) == before
    _, dr, tis = run(f'MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}", drop_all=True)', milvus_conn)
    assert dr.state == "success"
    assert {s["field_name"] for s in xcom(dr, "drop")["dropped"]} == {"vec", "year"}
    assert index_summary(milvus_uri, collection_name) == {}


# ------------------------------------------------------------------ load state
def test_loaded_collection_is_released_then_restored(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name, load=True)
    _, dr, tis = run(
        drop_then_rebuild(collection_name),
        milvus_conn,
    )
    assert dr.state == "success", states(tis)
    assert xcom(dr, "drop")["collections"] == {collection_name: {"was_loaded": True, "released": True}}
    rebuilt = xcom(dr, "rebuild")
    assert [s["field_name"] for s in rebuilt["created"]] == ["vec"] and rebuilt["loaded"] == [collection_name]
    assert load_state(milvus_uri, collection_name) == "Loaded"
    assert index_summary(milvus_uri, collection_name) == {"vec": ("vec", "HNSW", "L2")}


def test_release_if_loaded_false_refuses_and_changes_nothing(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name, load=True)
    _, dr, tis = run(f'MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}", release_if_loaded=False)', milvus_conn)
    assert dr.state == "failed"
    assert load_state(milvus_uri, collection_name) == "Loaded"
    assert index_summary(milvus_uri, collection_name) == {"vec": ("vec", "HNSW", "L2")}


def test_released_collection_stays_released(milvus_uri, milvus_conn, collection_name, flavour):
    make_collection(milvus_uri, collection_name)
    with milvus_client(milvus_uri) as c:
        c.release_collection(collection_name)
    _, dr, tis = run(
        drop_then_rebuild(collection_name),
        milvus_conn,
    )
    assert dr.state == "success", states(tis)
    assert xcom(dr, "drop")["collections"][collection_name] == {"was_loaded": False, "released": False}
    assert xcom(dr, "rebuild")["loaded"] == []
    if flavour == "server":  # Lite reports every collection with an index as Loaded
        assert load_state(milvus_uri, collection_name) == "NotLoad"


# ------------------------------------------------------------------ idempotency and snapshots
def test_rebuild_reproduces_type_metric_params(milvus_uri, milvus_conn, collection_name, flavour):
    spec = {**VECTOR_INDEX, "index_type": "IVF_FLAT", "metric_type": "IP", "params": {"nlist": 32}}
    make_collection(milvus_uri, collection_name, indexes=(spec, scalar_index(milvus_uri)))
    before = index_summary(milvus_uri, collection_name)
    _, dr, tis = run(
        drop_then_rebuild(collection_name, ", drop_all=True"),
        milvus_conn,
    )
    assert dr.state == "success", states(tis)
    assert index_summary(milvus_uri, collection_name) == before
    if flavour == "server":  # Lite reports no params
        with milvus_client(milvus_uri) as c:
            assert c.describe_index(collection_name, "vec")["nlist"] == "32"
        assert xcom(dr, "drop")["snapshot"][collection_name][0]["params"] in ({"nlist": 32}, {})


def test_rerun_is_idempotent_and_pending_rebuild_survives(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name)
    drop_only = f'MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}")'
    _, dr1, _ = run(drop_only, milvus_conn)
    assert len(xcom(dr1, "drop")["dropped"]) == 1
    # A failed run's re-run: the index is gone, XCom is fresh; the snapshot must still be known.
    _, dr2, tis = run(
        drop_then_rebuild(collection_name),
        milvus_conn,
    )
    assert dr2.state == "success", states(tis)
    second = xcom(dr2, "drop")
    assert second["dropped"] == []
    assert [(s["field_name"], s["index_type"]) for s in second["pending_rebuild"]] == [("vec", "HNSW")]
    assert [s["field_name"] for s in xcom(dr2, "rebuild")["created"]] == ["vec"]
    assert index_summary(milvus_uri, collection_name) == {"vec": ("vec", "HNSW", "L2")}
    # Once rebuilt, the snapshot is cleared: a third run neither drops nor rebuilds anything stale.
    _, dr3, _ = run(f'MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}", dry_run=True)', milvus_conn)
    assert xcom(dr3, "drop")["pending_rebuild"] == []


def test_dry_run_changes_nothing(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)), load=True)
    before = index_summary(milvus_uri, collection_name)
    _, dr, tis = run(
        f'''
drop = MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}", drop_all=True, dry_run=True)
create = MilvusCreateIndexOperator(task_id="create", milvus_conn_id=CONN, collection_name="{collection_name}", field_name="vec",
                                   index_type="FLAT", metric_type="L2", if_exists="replace", dry_run=True)
drop >> create''',
        milvus_conn,
    )
    assert dr.state == "success", states(tis)
    result = xcom(dr, "drop")
    assert result["dry_run"] is True and len(result["dropped"]) == 2
    assert result["collections"][collection_name] == {"was_loaded": True, "released": False}
    assert [s["index_type"] for s in xcom(dr, "create")["created"]] == ["FLAT"]
    assert index_summary(milvus_uri, collection_name) == before
    assert load_state(milvus_uri, collection_name) == "Loaded"


def test_glob_and_list_of_collections(milvus_uri, milvus_conn, collection_name):
    names = [f"{collection_name}_a", f"{collection_name}_b", f"{collection_name}_c"]
    for name in names:
        make_collection(milvus_uri, name, rows=20)
    _, dr, tis = run(
        f'''
glob = MilvusDropIndexOperator(task_id="glob", milvus_conn_id=CONN, collection_name="{collection_name}_[ab]")
lst = MilvusDropIndexOperator(task_id="lst", milvus_conn_id=CONN, collection_name={[names[2], "missing_x"]!r}, missing_collection_ok=True)
glob >> lst''',
        milvus_conn,
    )
    assert dr.state == "success", states(tis)
    assert sorted(s["collection_name"] for s in xcom(dr, "glob")["dropped"]) == names[:2]
    assert [s["collection_name"] for s in xcom(dr, "lst")["dropped"]] == [names[2]]
    assert all(index_summary(milvus_uri, n) == {} for n in names)


def test_templated_names_from_params(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name)
    _, dr, tis = run(
        'MilvusDropIndexOperator(task_id="drop", milvus_conn_id="{{ params.conn }}", collection_name="{{ params.coll }}", field_name="{{ params.field }}")',
        milvus_conn,
        params={"conn": milvus_conn, "coll": collection_name, "field": "vec"},
    )
    assert dr.state == "success", states(tis)
    assert xcom(dr, "drop")["dropped"][0]["collection_name"] == collection_name


# ------------------------------------------------------------------ conflicts
@pytest.mark.parametrize("if_exists", ["skip", "replace", "fail"])
def test_conflicting_index(if_exists, milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name, load=True)
    _, dr, tis = run(
        f'MilvusCreateIndexOperator(task_id="create", milvus_conn_id=CONN, collection_name="{collection_name}", field_name="vec", '
        f'index_type="FLAT", metric_type="L2", if_exists="{if_exists}", poll_interval=0.5)',
        milvus_conn,
    )
    summary = index_summary(milvus_uri, collection_name)
    if if_exists == "fail":
        assert dr.state == "failed"
        assert summary == {"vec": ("vec", "HNSW", "L2")}
        return
    assert dr.state == "success", states(tis)
    result = xcom(dr, "create")
    if if_exists == "skip":
        assert result["created"] == [] and result["skipped"][0]["index_type"] == "HNSW"
        assert summary == {"vec": ("vec", "HNSW", "L2")}
    else:
        assert [s["index_type"] for s in result["created"]] == ["FLAT"]
        assert list(summary.values()) == [("vec", "FLAT", "L2")]
        assert result["loaded"] == [collection_name]  # it was loaded before the replace
        assert load_state(milvus_uri, collection_name) == "Loaded"


def test_identical_index_is_success_without_work(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name)
    _, dr, tis = run(
        f'MilvusCreateIndexOperator(task_id="create", milvus_conn_id=CONN, collection_name="{collection_name}", field_name="vec", '
        'index_type="HNSW", metric_type="L2", index_params={"M": 8, "efConstruction": 64}, if_exists="fail")',
        milvus_conn,
    )
    assert dr.state == "success", states(tis)  # Lite would raise code 35 on a second create
    assert xcom(dr, "create")["created"] == [] and len(xcom(dr, "create")["skipped"]) == 1


# ------------------------------------------------------------------ waiting, loading, releasing
@pytest.mark.parametrize("poll_interval", [0.2, 30], ids=["check-shorter-than-build", "check-for-one-poll"])
def test_deferrable_create_defers_only_when_it_pays(poll_interval, flavour, milvus_uri, milvus_conn, collection_name, capfd):
    # The server builds 3,000 rows of dim 64 for a few seconds: longer than a 0.2 s check, shorter
    # than the 10 s one. Milvus Lite builds inside create_index, so it never has a build to wait for.
    make_collection(milvus_uri, collection_name, rows=3000, indexes=(), dim=64)
    _, dr, tis = run(
        f'MilvusCreateIndexOperator(task_id="create", milvus_conn_id=CONN, collection_name="{collection_name}", field_name="vec", '
        f'index_type="HNSW", metric_type="L2", index_params={{"M": 16, "efConstruction": 200}}, deferrable=True, load=True, poll_interval={poll_interval})',
        milvus_conn,
    )
    out, err = capfd.readouterr()
    assert dr.state == "success", (states(tis), (out + err)[-8000:])
    # execute_complete logs "(deferred wait)" only after the trigger ran.
    deferred = flavour == "server" and poll_interval < 1
    assert ("Index builds finished (deferred wait)" in out + err) is deferred, (out + err)[-4000:]
    assert xcom(dr, "create")["loaded"] == [collection_name]
    assert load_state(milvus_uri, collection_name) == "Loaded"


def test_sensor_waits_and_fails_on_missing_index(milvus_uri, milvus_conn, collection_name, capfd):
    make_collection(milvus_uri, collection_name)
    # The connection and retry settings come from default_args, as for the operators.
    _, dr, tis = run(
        f'''
MilvusIndexBuiltSensor(task_id="by_field", collection_name="{collection_name}", field_name="vec", poke_interval=0.5, timeout=60)
MilvusIndexBuiltSensor(task_id="deferred", collection_name="{collection_name}", index_name="vec", deferrable=True, poke_interval=0.5, timeout=60)
MilvusIndexBuiltSensor(task_id="missing", collection_name="{collection_name}", index_name="nope", poke_interval=0.5, timeout=30)''',
        milvus_conn,
        default_args={"milvus_conn_id": milvus_conn, "retry_attempts": 2},
    )
    out, err = capfd.readouterr()
    errors = [line for line in (out + err).splitlines() if "error" in line.lower() or "Traceback" in line]
    assert str(tis["by_field"].state) == "success" and str(tis["deferred"].state) == "success", (states(tis), errors[-40:])
    assert xcom(dr, "by_field")["state"] == "Finished"
    assert str(tis["missing"].state) == "failed"


def test_load_and_release_are_idempotent(milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name)
    _, dr, tis = run(
        f'''
r1 = MilvusReleaseCollectionOperator(task_id="r1", milvus_conn_id=CONN, collection_name="{collection_name}")
r2 = MilvusReleaseCollectionOperator(task_id="r2", milvus_conn_id=CONN, collection_name="{collection_name}")
l1 = MilvusLoadCollectionOperator(task_id="l1", milvus_conn_id=CONN, collection_name="{collection_name}")
l2 = MilvusLoadCollectionOperator(task_id="l2", milvus_conn_id=CONN, collection_name="{collection_name}")
r1 >> r2 >> l1 >> l2''',
        milvus_conn,
    )
    assert dr.state == "success", states(tis)
    assert xcom(dr, "r2") == {"collection_name": collection_name, "was_loaded": False}
    assert xcom(dr, "l1")["was_loaded"] is False and xcom(dr, "l2")["was_loaded"] is True
    assert load_state(milvus_uri, collection_name) == "Loaded"


def test_load_without_vector_index_explains_the_fix(milvus_uri, milvus_conn, collection_name, flavour):
    if flavour == "lite":
        pytest.skip("Milvus Lite keeps every collection Loaded and searches without an index")
    make_collection(milvus_uri, collection_name, indexes=())
    with milvus_client(milvus_uri) as c:
        c.release_collection(collection_name)
    from airflow_milvus.errors import MilvusInputError
    from airflow_milvus.operators.collection import MilvusLoadCollectionOperator

    op = MilvusLoadCollectionOperator(task_id="load", milvus_conn_id=milvus_conn, collection_name=collection_name)
    with pytest.raises(MilvusInputError, match="vec have no index. Create one first"):
        op.execute({})
    assert load_state(milvus_uri, collection_name) == "NotLoad"


def test_snapshot_keeps_params_on_both_flavours(milvus_uri, milvus_conn, collection_name):
    """Milvus Lite does not report build params; those the create operator used are remembered."""
    make_collection(milvus_uri, collection_name, indexes=())
    _, dr, tis = run(
        f'''
create = MilvusCreateIndexOperator(task_id="create", milvus_conn_id=CONN, collection_name="{collection_name}", field_name="vec",
                                   index_type="IVF_FLAT", metric_type="COSINE", index_params={{"nlist": 24}}, poll_interval=0.5)
drop = MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}")
create >> drop''',
        milvus_conn,
    )
    assert dr.state == "success", states(tis)
    [spec] = xcom(dr, "drop")["dropped"]
    assert (spec["index_type"], spec["metric_type"], spec["params"]) == ("IVF_FLAT", "COSINE", {"nlist": 24})


def test_templated_booleans_render_to_real_booleans(milvus_uri, milvus_conn, collection_name):
    """Jinja renders False as the text "False", which is truthy; the operators coerce it."""
    make_collection(milvus_uri, collection_name, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)))
    before = index_summary(milvus_uri, collection_name)
    _, dr, tis = run(
        f'''
bad = MilvusDropIndexOperator(task_id="bad", milvus_conn_id=CONN, collection_name="{collection_name}", drop_all="{{{{ params.maybe }}}}")
ok = MilvusDropIndexOperator(task_id="ok", milvus_conn_id=CONN, collection_name="{collection_name}", field_name="year",
                             dry_run="{{{{ params.dry }}}}", drop_all="{{{{ params.dry }}}}")''',
        milvus_conn,
        params={"dry": False, "maybe": "perhaps"},
    )
    assert str(tis["bad"].state) == "failed"
    assert str(tis["ok"].state) == "success"
    assert xcom(dr, "ok")["dry_run"] is False  # "False" did not turn into a dry run
    assert set(index_summary(milvus_uri, collection_name)) == set(before) - {"year"}


def test_load_without_waiting_starts_the_load(milvus_uri, milvus_conn, collection_name, flavour):
    make_collection(milvus_uri, collection_name)
    with milvus_client(milvus_uri) as c:
        c.release_collection(collection_name)
    from airflow_milvus.operators.collection import MilvusLoadCollectionOperator

    op = MilvusLoadCollectionOperator(task_id="load", milvus_conn_id=milvus_conn, collection_name=collection_name,
                                      wait_for_completion="false")
    result = op.execute({})
    assert result["was_loaded"] is False
    assert isinstance(result["loaded"], bool)
    from airflow_milvus.hooks.milvus import MilvusHook

    with MilvusHook(milvus_conn) as hook:  # the load was started: it reaches Loaded by itself
        for _ in range(120):
            if hook.get_load_state(collection_name) == "Loaded":
                break
            import time

            time.sleep(0.5)
        assert hook.get_load_state(collection_name) == "Loaded"


def test_replace_refused_by_milvus_restores_the_old_index(milvus_uri, milvus_conn, collection_name, flavour):
    if flavour == "lite":
        pytest.skip("Milvus Lite accepts nlist=-7; no refusal to recover from")
    make_collection(milvus_uri, collection_name, load=True)
    from airflow_milvus.errors import MilvusInputError
    from airflow_milvus.operators.index import MilvusCreateIndexOperator

    op = MilvusCreateIndexOperator(task_id="c", milvus_conn_id=milvus_conn, collection_name=collection_name, field_name="vec",
                                   index_type="IVF_FLAT", metric_type="L2", index_params={"nlist": -7}, if_exists="replace")
    with pytest.raises(MilvusInputError, match="previous index was restored"):
        op.execute({})
    assert index_summary(milvus_uri, collection_name) == {"vec": ("vec", "HNSW", "L2")}
    assert load_state(milvus_uri, collection_name) == "Loaded"



def flavour_of(uri: str) -> str:
    return "lite" if is_lite(uri) else "server"


def test_rerun_after_failure_restores_the_load_state(milvus_uri, milvus_conn, collection_name):
    """The first run released and dropped, then died; the re-run must still load the collection again."""
    make_collection(milvus_uri, collection_name, load=True)
    drop_only = f'MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}")'
    _, dr1, _ = run(drop_only, milvus_conn)
    assert xcom(dr1, "drop")["collections"][collection_name]["released"] is True
    _, dr2, tis = run(
        drop_then_rebuild(collection_name),
        milvus_conn,
    )
    assert dr2.state == "success", states(tis)
    assert xcom(dr2, "drop")["collections"][collection_name]["was_loaded"] is True
    # The spec keys, and on a server the pairs as stored (the rebuild sends them back in that layout).
    keys = {"collection_name", "field_name", "index_name", "index_type", "metric_type", "params"}
    assert set(xcom(dr2, "drop")["pending_rebuild"][0]) == keys | ({"stored_params"} if flavour_of(milvus_uri) == "server" else set())
    assert xcom(dr2, "rebuild")["loaded"] == [collection_name]
    assert load_state(milvus_uri, collection_name) == "Loaded"
