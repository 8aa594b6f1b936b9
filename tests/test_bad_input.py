"""Bad input against the real server: every case is refused with an error that names the
object and the fix, and changes nothing (row counts and index definitions before == after).

Each case runs the real operator (or hook) against a shared collection with a vector and a
scalar index, and a second collection whose vector field has no index yet.
"""

from __future__ import annotations

import pytest

from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.operators.collection import MilvusLoadCollectionOperator
from airflow_milvus.operators.index import (
    MilvusCreateIndexOperator,
    MilvusDropIndexOperator,
)
from airflow_milvus.operators.ingest import MilvusIngestOperator
from tests.conftest import set_connection
from tests.dag_runner import write_dag
from tests.helpers import DIM, VECTOR_INDEX, make_collection, row_count, scalar_index
from tests.reliability import index_definitions, run_recorded

pytestmark = pytest.mark.server
FAST = {"retry_attempts": 2, "retry_max_wait": 2}
MAIN, BARE, OTHER = "bad_input_books", "bad_input_bare", "bad_input_other"


@pytest.fixture(scope="module")
def world(milvus_server):
    uri = milvus_server.uri
    make_collection(uri, MAIN, indexes=(VECTOR_INDEX, scalar_index(uri)), load=True)
    make_collection(uri, BARE, indexes=(scalar_index(uri),))
    make_collection(uri, OTHER, rows=10)
    return uri


@pytest.fixture
def conn(world, monkeypatch) -> str:
    return set_connection(monkeypatch, world, timeout=5)


def snapshot(uri):
    return {name: (row_count(uri, name), index_definitions(uri, name)) for name in (MAIN, BARE, OTHER)}


def drop(conn, **kw):
    return MilvusDropIndexOperator(task_id="drop", milvus_conn_id=conn, **FAST, **kw)


def create(conn, **kw):
    return MilvusCreateIndexOperator(task_id="create", milvus_conn_id=conn, poll_interval=0.5, timeout=60, **FAST, **kw)


def vec(**kw):
    return {"collection_name": BARE, "field_name": "vec", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 8}, **kw}


def row(i, **kw):
    return {"id": i, "vec": [0.1] * DIM, "year": 2000, "title": f"t{i}", **kw}


LONG = "b" * 300
# (case id, operator factory taking the conn id, words the error must contain: the object and the fix)
CASES = [
    # names
    ("empty_collection", lambda c: drop(c, collection_name=""), ["collection name is empty", "give the name"]),
    ("none_collection", lambda c: drop(c, collection_name=None), ["collection name is empty", "give the name"]),
    ("missing_collection", lambda c: drop(c, collection_name="no_such_books"), ["'no_such_books' does not exist", "Check the name"]),
    ("glob_matches_nothing", lambda c: drop(c, collection_name="no_such_*"), ["'no_such_*' matches no collection", "Fix the pattern"]),
    ("missing_field", lambda c: drop(c, collection_name=MAIN, field_name="isbn"), ["'isbn' does not exist", MAIN, "fix field_name"]),
    ("missing_index_name", lambda c: drop(c, collection_name=MAIN, index_name="by_isbn", missing_ok=False), ["no index named 'by_isbn'", "missing_ok=True"]),
    ("field_and_index_disagree", lambda c: drop(c, collection_name=MAIN, field_name="vec", index_name="year"), ["'year' is on field 'year', not on field 'vec'", "Give field_name or index_name alone."]),
    ("ambiguous_without_drop_all", lambda c: drop(c, collection_name=MAIN), [MAIN, "has 2 indexes", "drop_all=True"]),
    ("unicode_collection", lambda c: drop(c, collection_name="书籍"), ["'书籍' is not a valid Milvus name", "use letters, digits and underscores"]),
    ("overlong_collection", lambda c: drop(c, collection_name=LONG), ["300 characters long", "at most 255"]),
    ("quoted_collection", lambda c: drop(c, collection_name='books" or "1"="1'), ["is not a valid Milvus name", "use letters"]),
    ("expression_field", lambda c: drop(c, collection_name=MAIN, field_name="year > 5 or id != 0"), ["field name 'year > 5 or id != 0'", "use letters"]),
    ("expression_index_name", lambda c: create(c, index_specs=[vec(index_name="vec); drop(")]), ["index_name 'vec); drop('", "use letters"]),
    ("create_in_missing_collection", lambda c: create(c, collection_name="no_such_books", field_name="vec", index_type="HNSW", metric_type="L2"), ["'no_such_books' does not exist", "create it"]),
    # index definitions
    ("vector_index_on_scalar", lambda c: create(c, collection_name=BARE, field_name="title", index_type="HNSW", metric_type="L2"), ["'HNSW'", f"{BARE}.title is a scalar field", "Use a scalar index type"]),
    ("unknown_index_type", lambda c: create(c, index_specs=[vec(index_type="HNSWX")]), ["HNSWX", f"{BARE}.vec", "Fix index_type"]),
    ("metric_does_not_fit", lambda c: create(c, index_specs=[vec(metric_type="JACCARD")]), ["JACCARD", f"{BARE}.vec", "Fix index_type, metric_type"]),
    ("negative_M", lambda c: create(c, index_specs=[vec(params={"M": -4, "efConstruction": 64})]), ["-4", f"{BARE}.vec", "params"]),
    ("params_malformed_json", lambda c: create(c, collection_name=BARE, field_name="vec", index_type="HNSW", metric_type="L2", index_params='{"M": 8,'), ["is not valid JSON", "write it as a JSON object"]),
    ("params_not_an_object", lambda c: create(c, collection_name=BARE, field_name="vec", index_type="HNSW", metric_type="L2", index_params="[8, 64]"), ["must be a dict or a JSON object", "list"]),
    ("vector_without_metric", lambda c: create(c, collection_name=BARE, field_name="vec", index_type="HNSW"), [f"{BARE}.vec needs a metric_type", "L2, IP or COSINE"]),
    ("bad_if_exists", lambda c: create(c, index_specs=[vec()], if_exists="overwrite"), ["if_exists='overwrite'", "'skip', 'replace' or 'fail'"]),
    # specs and XComs
    ("specs_missing_keys", lambda c: create(c, index_specs=[{"collection_name": BARE}]), ["index_specs[0]", "lacks field_name, index_type", "drop operator's"]),
    ("specs_wrong_types", lambda c: create(c, index_specs=[vec(field_name=7)]), ["index_specs[0]: field_name must be a string, got int 7", "template or XCom"]),
    ("specs_metric_wrong_type", lambda c: create(c, index_specs=[vec(metric_type=["L2"])]), ["index_specs[0]: metric_type must be a string", "list"]),
    ("foreign_drop_result", lambda c: create(c, index_specs={"dropped": "vec", "collections": {}}), ["'dropped' is not a list", "drop operator's output unchanged"]),
    ("specs_not_json", lambda c: create(c, index_specs="vec:HNSW"), ["'vec:HNSW' is a string that is not JSON", "index_specs=drop.output"]),
    ("specs_wrong_container", lambda c: create(c, index_specs=42), ["index_specs must be a list of specs or a drop result", "int"]),
    ("second_spec_bad_changes_nothing", lambda c: create(c, index_specs=[vec(), {**vec(), "collection_name": MAIN, "field_name": "isbn"}]), ["'isbn' does not exist", MAIN, "fix field_name"]),
    # other
    ("load_without_vector_index", lambda c: MilvusLoadCollectionOperator(task_id="load", milvus_conn_id=c, collection_name=BARE, **FAST), [BARE, "vec have no index", "Create one first"]),
    ("release_refused_when_loaded", lambda c: drop(c, collection_name=MAIN, field_name="vec", release_if_loaded=False), [MAIN, "is Loaded", "release_if_loaded=True"]),
    ("ingest_wrong_dimension", lambda c: MilvusIngestOperator(task_id="ingest", milvus_conn_id=c, collection_name=OTHER, data=[row(1000), row(1001, vec=[0.1] * (DIM + 3))], **FAST), [OTHER, "row 1", "vec", "Fix the data"]),
    ("ingest_missing_primary_key", lambda c: MilvusIngestOperator(task_id="ingest", milvus_conn_id=c, collection_name=OTHER, data=[{k: v for k, v in row(0).items() if k != "id"}], **FAST), [OTHER, "lacks field(s) id", "Fix the data"]),
]


@pytest.mark.parametrize("factory,expected", [pytest.param(f, e, id=i) for i, f, e in CASES])
def test_bad_input_is_refused_and_changes_nothing(factory, expected, world, conn):
    before = snapshot(world)
    op = factory(conn)
    with pytest.raises(MilvusInputError) as err:
        op.execute({})
    message = str(err.value)
    for words in expected:
        assert words in message, f"{words!r} missing from: {message}"
    assert snapshot(world) == before


# ------------------------------------------------------------------ templates
def test_template_rendering_to_the_wrong_type(world, conn):
    """render_template_as_native_obj turns '{{ params.n }}' into an int: refused by name."""
    before = snapshot(world)
    dag_id = write_dag(
        f"""
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.index import MilvusDropIndexOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), params={{"n": 5}},
         render_template_as_native_obj=True):
    MilvusDropIndexOperator(task_id="drop", milvus_conn_id={conn!r}, collection_name="{{{{ params.n }}}}")
"""
    )
    dr, tis, errors = run_recorded(dag_id)
    assert dr.state == "failed"
    assert errors["drop"].startswith("MilvusInputError: collection name must be a string, got int 5")
    assert "check the template or XCom" in errors["drop"]
    assert snapshot(world) == before


# ------------------------------------------------------------------ connections
def _bad_connection(kind, world, monkeypatch, tmp_path):
    if kind == "bad_scheme":
        return set_connection(monkeypatch, "ftp://localhost:19530"), MilvusInputError, ["scheme 'ftp' is not supported", "use http:// or https://"]
    if kind == "tls_to_plain_server":
        return set_connection(monkeypatch, world.replace("http://", "https://"), timeout=2), MilvusProviderError, ["TLS"]
    if kind == "missing_ca_file":
        return set_connection(monkeypatch, world, secure=True, ca_pem_path=str(tmp_path / "nope.pem")), MilvusInputError, ["extra.ca_pem_path", "not a file", "fix the path"]
    if kind == "lite_dir_missing":
        path = str(tmp_path / "no" / "such" / "dir" / "books.db")
        return set_connection(monkeypatch, path), MilvusInputError, ["directory", "does not exist", "Create it"]
    if kind == "timeout_not_a_number":
        return set_connection(monkeypatch, world, timeout="soon"), MilvusInputError, ["extra.timeout = 'soon'", "number of seconds"]
    raise AssertionError(kind)


# An unreachable server is test_hook's (the retry bound); a wrong password is test_security's
# (never retried) and test_hook's (the connection test).
CONNECTION_CASES = ["bad_scheme", "tls_to_plain_server", "missing_ca_file", "lite_dir_missing", "timeout_not_a_number"]


@pytest.mark.parametrize("kind", CONNECTION_CASES)
def test_bad_connection_is_refused_clearly(kind, world, monkeypatch, tmp_path):
    before = snapshot(world)
    conn_id, error, expected = _bad_connection(kind, world, monkeypatch, tmp_path)
    with pytest.raises(error) as err:
        drop(conn_id, collection_name=MAIN, field_name="vec").execute({})
    message = str(err.value)
    for words in expected:
        assert words in message, f"{words!r} missing from: {message}"
    assert snapshot(world) == before
    # The hook's connection test tells the same story, without raising.
    ok, text = MilvusHook(conn_id, **FAST).test_connection() if error is not MilvusInputError else (False, "")
    assert not ok
