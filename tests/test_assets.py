"""The milvus:// asset URI scheme, and the asset events operators record in the metadata DB."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from airflow_milvus.assets import collection_asset_uri, normalize, uri_for
from airflow_milvus.errors import MilvusInputError
from tests.conftest import REPO, conn_env_value, milvus_client
from tests.dag_runner import dags_folder, run_dag, write_dag, xcom
from tests.helpers import VECTOR_INDEX, make_collection


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("milvus://milvus.internal/books", "milvus://milvus.internal:19530/default/books"),
        ("milvus://Milvus.INTERNAL:19531/prod/books", "milvus://milvus.internal:19531/prod/books"),
        ("MILVUS://host/books/", "milvus://host:19530/default/books"),
        ("milvus://root@host/books", "milvus://host:19530/default/books"),
        ("milvus://[::1]/books", "milvus://[::1]:19530/default/books"),
        ("milvus://lite/data/milvus/books.db/books", "milvus://lite/data/milvus/books.db/books"),
        ("milvus://LITE/data/my%20dir/x.db/books", "milvus://lite/data/my%20dir/x.db/books"),
    ],
)
def test_uri_normalization(given, normalized):
    assert normalize(given) == normalized
    assert normalize(normalized) == normalized  # a fixed point


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("milvus:///books", "has no host"),
        ("milvus://host", "needs a collection"),
        ("milvus://host/a/b/c", "needs a collection"),
        ("milvus://host//books", "needs a collection"),
        ("milvus://host/bad-name", "has a bad collection: collection name 'bad-name' is not a valid Milvus name"),
        ("milvus://host/9db/books", "has a bad database"),
        ("milvus://host:70000/books", "has a bad port"),
        ("milvus://host/books?consistency=strong", "has a query"),
        ("milvus://lite/data/books", "is not a Milvus Lite form"),
        ("milvus://lite:1/data/x.db/books", "is not a Milvus Lite form"),
        ("milvus://lite/data/x.db/default/books", "is not a Milvus Lite form"),
        ("http://host/books", "does not start with milvus://"),
    ],
)
def test_invalid_uris_are_refused_with_the_forms(given, message):
    with pytest.raises(MilvusInputError, match=message) as info:
        normalize(given)
    assert "Use milvus://host[:port]/[db_name/]collection, or milvus://lite/<path>.db/collection" in str(info.value)


def test_airflow_normalizes_through_the_registered_handler():
    from airflow.sdk import Asset

    assert Asset("milvus://Milvus.Internal/books").uri == "milvus://milvus.internal:19530/default/books"
    # Airflow drops the credentials and warns (3.1: "...auth info", later: "...a password").
    with pytest.warns(UserWarning, match="should not contain (a password|auth info)"):
        asset = Asset("milvus://root:secret@Host/books")
    assert asset.uri == "milvus://host:19530/default/books"
    with pytest.raises(ValueError, match="needs a collection") as info:
        Asset("milvus://user:secret@host/a/b/c")
    assert "secret" not in str(info.value)


def test_uri_of_a_collection_from_a_connection(monkeypatch, tmp_path, airflow_home):
    cases = {
        "srv": ({"conn_type": "milvus", "host": "Milvus.Internal", "port": 19531}, "milvus://milvus.internal:19531/default/books"),
        "cloud": ({"conn_type": "milvus", "extra": {"uri": "https://in03-x.zillizcloud.com", "db_name": "prod"}}, "milvus://in03-x.zillizcloud.com:443/prod/books"),
        "plain": ({"conn_type": "milvus", "extra": {"uri": "http://10.0.0.5"}}, "milvus://10.0.0.5:19530/default/books"),
        "lite": ({"conn_type": "milvus", "extra": {"uri": str(tmp_path / "b.db")}}, f"milvus://lite{tmp_path}/b.db/books"),
    }  # fmt: skip
    for conn_id, (conn, expected) in cases.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        assert collection_asset_uri("books", conn_id) == expected
    monkeypatch.delenv("AIRFLOW_CONN_MILVUS_DEFAULT", raising=False)
    assert collection_asset_uri("books") == f"milvus://lite{airflow_home}/milvus_lite.db/books"
    with pytest.raises(MilvusInputError, match="is not a valid Milvus name"):
        collection_asset_uri("bad name", "srv")
    with pytest.raises(MilvusInputError, match="only http\\(s\\) servers and Milvus Lite .* Set emit_asset_events=False and declare outlets yourself"):
        uri_for("unix:/tmp/milvus.sock", "books")


# ---------------------------------------------------------------- events in the metadata DB


def asset_events(dag_run) -> list[tuple[str, dict]]:
    """(asset uri, extra) of every asset event the run recorded, straight from the metadata DB."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(AssetEvent).filter_by(source_dag_id=dag_run.dag_id, source_run_id=dag_run.run_id).all()
        return sorted((row.asset.uri, dict(row.extra)) for row in rows)


SIGNALS_DAG = """
import pendulum
from airflow.sdk import DAG, Asset
from airflow_milvus.operators.alias import MilvusSwapAliasOperator
from airflow_milvus.operators.collection import MilvusLoadCollectionOperator
from airflow_milvus.operators.index import MilvusCreateIndexOperator

with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    index = dict(field_name="vec", index_type="HNSW", metric_type="L2", index_params={{"M": 8, "efConstruction": 64}})
    dry = MilvusCreateIndexOperator(task_id="dry", milvus_conn_id={conn!r}, collection_name={quiet!r}, dry_run=True, **index)
    silent = MilvusCreateIndexOperator(task_id="silent", milvus_conn_id={conn!r}, collection_name={quiet!r},
                                       emit_asset_events=False, load=True, **index)
    build = MilvusCreateIndexOperator(task_id="build", milvus_conn_id={conn!r}, collection_name={name!r}, load=True,
                                      asset_extra={{"recall": "{{{{ 0.5 + 0.47 }}}}"}}, **index)
    load = MilvusLoadCollectionOperator(task_id="load", milvus_conn_id={conn!r}, collection_name={name!r},
                                        outlets=[Asset("x-custom://books-ready")])
    swap = MilvusSwapAliasOperator(task_id="swap", milvus_conn_id={conn!r}, alias={alias!r}, collection_name={name!r})
    dry >> silent >> build >> load >> swap
"""


def test_each_changed_collection_gets_one_event_and_a_quiet_rerun_none(milvus_conn, milvus_uri, collection_name):
    quiet, alias = f"{collection_name}_q", f"{collection_name}_live"
    make_collection(milvus_uri, collection_name, rows=40, indexes=())
    make_collection(milvus_uri, quiet, rows=10, indexes=())
    dag_id = write_dag(SIGNALS_DAG.format(conn=milvus_conn, name=collection_name, quiet=quiet, alias=alias))
    books, live = (collection_asset_uri(n, milvus_conn) for n in (collection_name, alias))

    dr, tis = run_dag(dag_id)
    assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
    assert xcom(dr, "dry")["created"] and xcom(dr, "silent")["created"]  # both acted (or would have): no events
    events = asset_events(dr)
    assert [uri for uri, _ in events] == sorted([books, live, "x-custom://books-ready"])
    by_uri = dict(events)
    built = by_uri[books]
    assert built["action"] == "indexes_built" and built["loaded"] is True and built["row_count"] == 40
    assert [(s["field_name"], s["index_type"], s["metric_type"], s["params"]) for s in built["indexes"]] == [
        ("vec", "HNSW", "L2", {"M": 8, "efConstruction": 64})
    ]
    assert built["recall"] == "0.97"  # asset_extra, rendered
    assert by_uri[live]["action"] == "alias_swapped" and by_uri[live]["collection_name"] == collection_name
    assert by_uri[live]["previous_collection"] is None and by_uri[live]["row_count"] == 40
    assert by_uri["x-custom://books-ready"] == {}  # the user's own outlet: Airflow records it on success
    assert xcom(dr, "load")["was_loaded"] is True  # already loaded by build: no event of its own

    # Nothing to do on a re-run: identical index, loaded collection, alias in place. Only the
    # user's own outlet (recorded by Airflow on every success) fires again.
    dr, _ = run_dag(dag_id)
    assert dr.state == "success"
    assert xcom(dr, "build")["skipped"] and not xcom(dr, "build")["created"]
    assert asset_events(dr) == [("x-custom://books-ready", {})]


def test_a_load_that_loads_emits_and_opting_out_declares_nothing(milvus_conn, milvus_uri, collection_name):
    from airflow_milvus.operators.collection import MilvusLoadCollectionOperator

    make_collection(milvus_uri, collection_name, rows=12, indexes=(VECTOR_INDEX,))
    with milvus_client(milvus_uri) as c:
        c.release_collection(collection_name)  # Milvus Lite loads a collection when it builds an index
    dag_id = write_dag(
        f"""
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.collection import MilvusLoadCollectionOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    MilvusLoadCollectionOperator(task_id="load", milvus_conn_id={milvus_conn!r}, collection_name={collection_name!r})
"""
    )
    dr, _ = run_dag(dag_id)
    ((uri, extra),) = asset_events(dr)
    assert uri == collection_asset_uri(collection_name, milvus_conn)
    assert extra["action"] == "loaded" and extra["row_count"] == 12 and [s["field_name"] for s in extra["indexes"]] == ["vec"]

    quiet = MilvusLoadCollectionOperator(task_id="l", collection_name="x", emit_asset_events=False)
    assert quiet.outlets == []
    loud = MilvusLoadCollectionOperator(task_id="l2", collection_name="x")
    assert [type(o).__name__ for o in loud.outlets] == ["AssetAlias"] and loud.outlets[0].name == "milvus_collections"
    # Checked once rendered, not at parse time (tests/test_conformance.py): a template is accepted here.
    MilvusLoadCollectionOperator(task_id="l3", collection_name="x", asset_extra="{{ ti.xcom_pull('extra') }}")


@pytest.mark.slow
def test_reindex_example_queues_the_downstream_dag(milvus_uri, monkeypatch, collection_name, flavour):
    """One reindex run: one event for the collection, and the downstream DAG is queued to run."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))
    monkeypatch.setenv("MILVUS_DEMO_URI", milvus_uri)  # where the downstream example's asset points
    source = (REPO / "example_dags" / "milvus_downstream_on_reindex.py").read_text()
    downstream = "milvus_downstream_on_reindex"
    assert 'COLLECTION = "demo_books"' in source
    (dags_folder() / f"{downstream}.py").write_text(source.replace('"demo_books"', repr(collection_name)))
    shutil.copy(REPO / "example_dags" / "milvus_reindex.py", dags_folder() / "milvus_reindex.py")
    books = collection_asset_uri(collection_name)

    def queued() -> int:
        with create_session() as session:
            return session.query(AssetDagRunQueue).filter_by(target_dag_id=downstream).count()

    with create_session() as session:  # earlier tests' queue entries (the other flavour) do not count
        session.query(AssetDagRunQueue).filter_by(target_dag_id=downstream).delete()
    dr, tis = run_dag("milvus_reindex", conf={"collection": collection_name, "rows": 200})
    assert dr.state == "success", {t: ti.state for t, ti in tis.items()}
    ((uri, extra),) = asset_events(dr)
    assert uri == books and extra["action"] == "indexes_built" and extra["loaded"] is True
    assert [s["index_type"] for s in extra["indexes"]] == ["HNSW"] and extra["row_count"] >= 200
    assert queued() == 1

    # A re-run drops and rebuilds again (a real change): one more event, still one queued run.
    dr, _ = run_dag("milvus_reindex", conf={"collection": collection_name, "rows": 200})
    assert [u for u, _ in asset_events(dr)] == [books]
    assert queued() == 1


@pytest.mark.slow
@pytest.mark.server
def test_a_real_scheduler_runs_the_downstream_dag_after_a_reindex(server_deployment, milvus_server):
    """api-server, scheduler, dag-processor, triggerer: the reindex's event starts the downstream DAG
    (tests/server_deployment.py schedules a copy of the example on a collection of its own)."""
    from tests.conftest import drop_collections
    from tests.server_deployment import DOWNSTREAM_COLLECTION as collection
    from tests.server_deployment import DOWNSTREAM_DAG_ID as downstream

    airflow = server_deployment
    drop_collections(milvus_server.uri, prefix=collection)  # a rerun starts from nothing
    def downstream_runs() -> list[dict]:
        return airflow.api("GET", f"/api/v2/dags/{downstream}/dagRuns")["dag_runs"]

    earlier = {r["dag_run_id"] for r in downstream_runs()}  # a rerun finds the first attempt's
    try:
        run = airflow.run_dag("milvus_reindex", {"collection": collection, "rows": 200})
        assert run.state == "success", airflow.explain(run)

        deadline = time.monotonic() + 180
        while not (runs := [r for r in downstream_runs() if r["dag_run_id"] not in earlier]):
            assert time.monotonic() < deadline, "the downstream DAG was not started by the asset event"
            time.sleep(2)
        (started,) = runs
        assert started["run_type"] == "asset_triggered"
        done = airflow.wait_for_run(downstream, started["dag_run_id"])
        assert done.state == "success", airflow.explain(done)
        xcom = airflow.api("GET", f"/api/v2/dags/{downstream}/dagRuns/{started['dag_run_id']}/taskInstances/what_changed/xcomEntries/return_value")
        value = xcom["value"]
        (extra,) = json.loads(value) if isinstance(value, str) else value
        assert extra["action"] == "indexes_built" and [s["index_type"] for s in extra["indexes"]] == ["HNSW"]
        assert extra["loaded"] is True and extra["row_count"] >= 200
        warm = airflow.api("GET", f"/api/v2/dags/{downstream}/dagRuns/{started['dag_run_id']}/taskInstances/warm_up/xcomEntries/return_value")
        assert int(warm["value"]) == 200
    finally:
        drop_collections(milvus_server.uri, prefix=collection)


def test_an_unnameable_connection_logs_instead_of_failing_a_finished_change(monkeypatch, capfd):
    """A unix-socket connection has no asset URI: the change is done, so the task must not fail."""
    from airflow.sdk import AssetAlias
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_milvus.operators.collection import MilvusLoadCollectionOperator

    monkeypatch.setenv("AIRFLOW_CONN_SOCK", conn_env_value("unix:/tmp/milvus.sock"))
    monkeypatch.setenv("AIRFLOW_CONN_SRV", json.dumps({"conn_type": "milvus", "host": "Milvus.Internal"}))
    for conn_id, expected in (("sock", []), ("srv", ["milvus://milvus.internal:19530/default/books"])):
        events = OutletEventAccessors()
        op = MilvusLoadCollectionOperator(task_id="load", milvus_conn_id=conn_id, collection_name="books")
        op.announce({"books": {"action": "loaded"}}, {"outlet_events": events})
        alias_events = events[AssetAlias(name="milvus_collections")].asset_alias_events
        assert [e.dest_asset_key.uri for e in alias_events] == expected
    out, err = capfd.readouterr()
    assert "No asset event for books: Cannot name a Milvus asset for connection URI 'unix:/tmp/milvus.sock'" in out + err
