"""Issue 18, items 5-7: a rebuild ends as the synchronous path and the pre-drop state say.

5. A deferred create resumes (execute_complete) with the values execute saw: templated
   booleans, seconds and whole numbers are coerced right after rendering, not only inside execute.
6. Milvus Lite loads a collection on create_index: a rebuild puts back the pre-drop load state.
7. Milvus Lite reports no build parameters: an index this package did not build is snapshotted
   with params null (and a warning); one it built keeps its parameters.
"""

from __future__ import annotations

import pytest

from airflow_milvus.errors import MilvusInputError
from tests.conftest import milvus_client
from tests.dag_runner import run_dag, write_dag, xcom
from tests.helpers import index_summary, load_state, make_collection

HEADER = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.index import MilvusDropIndexOperator, MilvusCreateIndexOperator
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
"""

DEFERRED_WAIT = "Index builds finished (deferred wait)"
DEFAULTS_WARNING = "rebuilding it with Milvus's defaults"


def run(tasks: str, conn_id: str):
    body = f"CONN = {conn_id!r}\n" + HEADER + "\n".join("    " + line for line in tasks.strip().splitlines())
    dr, tis = run_dag(write_dag(body))
    return dr, tis


def states(tis) -> dict[str, str]:
    return {k: str(v.state) for k, v in tis.items()}


def drop_then_rebuild(collection_name: str) -> str:
    return f'''
drop = MilvusDropIndexOperator(task_id="drop", milvus_conn_id=CONN, collection_name="{collection_name}")
rebuild = MilvusCreateIndexOperator(task_id="rebuild", milvus_conn_id=CONN, index_specs=drop.output, poll_interval=0.5)
drop >> rebuild'''


# ------------------------------------------------------------------ 5. rendered values, coerced once
TEMPLATED = dict(
    load="{{ 'False' }}",
    restore_load_state="{{ 'False' }}",
    wait_for_completion="{{ 'true' }}",
    dry_run="{{ 'False' }}",
    timeout="{{ '300' }}",
    poll_interval="{{ '0.2' }}",
)


def test_rendered_create_fields_are_coerced_before_execute():
    """No Milvus: what a resume sees is what render_template_fields leaves (execute never runs then)."""
    from airflow_milvus.operators.index import MilvusCreateIndexOperator

    op = MilvusCreateIndexOperator(
        task_id="create", collection_name="c", field_name="vec", index_type="HNSW", metric_type="L2", **TEMPLATED
    )
    op.render_template_fields({})
    assert (op.load, op.restore_load_state, op.wait_for_completion, op.dry_run) == (False, False, True, False)
    assert all(type(getattr(op, f)) is bool for f in op.bool_fields)
    assert (op.timeout, op.poll_interval) == (300.0, 0.2)
    assert all(type(getattr(op, f)) is float for f in op.seconds_fields)


def test_rendered_bulk_import_fields_are_coerced_before_execute():
    """The other deferrable operator with such fields: its resume must not see text either."""
    from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator

    op = MilvusBulkImportOperator(
        task_id="imp", collection_name="c", files=["/x.json"], wait_for_completion="{{ 'False' }}",
        validate_files="{{ 'false' }}", timeout="{{ '300' }}", poll_interval="{{ '1' }}",
    )  # fmt: skip
    op.render_template_fields({})
    assert (op.wait_for_completion, op.validate_files) == (False, False)
    assert (op.timeout, op.poll_interval) == (300.0, 1.0)


def _whole_number_operators(value) -> dict:
    """Each operator with int_fields, every one of them templated as ``value``."""
    from airflow_milvus.operators.bulk_import import MilvusBulkImportOperator
    from airflow_milvus.operators.ingest import MilvusIngestOperator
    from airflow_milvus.operators.listing import MilvusListCollectionsOperator
    from airflow_milvus.operators.quality import MilvusRecallCheckOperator
    from airflow_milvus.operators.search import MilvusQueryOperator, MilvusSearchOperator

    return {
        "list": MilvusListCollectionsOperator(task_id="list", collection_name="c_*", limit=value),
        "search": MilvusSearchOperator(task_id="search", collection_name="c", data=[[0.1]], limit=value, max_result_bytes=value),
        "query": MilvusQueryOperator(task_id="query", collection_name="c", limit=value, max_result_bytes=value),
        "recall": MilvusRecallCheckOperator(
            task_id="recall", collection_name="c", top_k=value, sample_size=value, seed=value, max_rows=value, batch_size=value,
        ),
        "imp": MilvusBulkImportOperator(
            task_id="imp", collection_name="c", files=["/x.json"], validate_rows=value, batch_size=value,
            max_concurrent_jobs=value,
        ),
        "ingest": MilvusIngestOperator(task_id="ingest", collection_name="c", data=[], batch_size=value),
    }


def test_rendered_whole_numbers_are_coerced_before_execute():
    for op in _whole_number_operators("{{ '5' }}").values():
        assert op.int_fields and all(getattr(op, f) == "{{ '5' }}" for f in op.int_fields)  # __init__ keeps them
        op.render_template_fields({})
        assert {f: (type(getattr(op, f)), getattr(op, f)) for f in op.int_fields} == {f: (int, 5) for f in op.int_fields}
        op.coerce_rendered_fields()  # execute and execute_complete coerce again: a no-op
        assert all(getattr(op, f) == 5 for f in op.int_fields)


@pytest.mark.parametrize("unset", ["{{ None }}", "{{ '' }}", None])
def test_unset_optional_whole_numbers_are_none(unset):
    ops = _whole_number_operators(unset)
    ops["query"].max_result_bytes = 100
    for task_id in ("list", "query"):
        ops[task_id].render_template_fields({})
        assert ops[task_id].limit is None
    with pytest.raises(MilvusInputError, match=r"query: max_result_bytes = .* is not a whole number"):  # required
        _whole_number_operators(unset)["query"].render_template_fields({})
    ops["search"].max_result_bytes = 100
    with pytest.raises(MilvusInputError, match=r"limit=.* is not a whole number"):  # search's limit is required
        ops["search"].render_template_fields({})


@pytest.mark.parametrize(
    "task_id, field, message",
    [
        ("list", "limit", r"list: limit = '0' must be at least 1\."),
        ("search", "limit", r"limit='0' must be between 1 and 16384 \(Milvus's bound\)"),
        ("query", "limit", r"limit='0' must be between 1 and 16384 \(Milvus's bound\)"),
        ("search", "max_result_bytes", r"search: max_result_bytes = '0' must be at least 1\."),
        ("query", "max_result_bytes", r"query: max_result_bytes = '0' must be at least 1\."),
        ("recall", "top_k", r"recall: top_k = '0' must be between 1 and 16384\."),
        ("recall", "sample_size", r"recall: sample_size = '0' must be at least 1\."),
        ("recall", "max_rows", r"recall: max_rows = '0' must be at least 1\."),
        ("recall", "batch_size", r"recall: batch_size = '0' must be between 1 and 16384\."),
        ("imp", "validate_rows", r"imp: validate_rows='0': use a whole number >= 1\."),
        ("imp", "batch_size", r"imp: batch_size='0': use a whole number >= 1\."),
        ("imp", "max_concurrent_jobs", r"imp: max_concurrent_jobs='0': use a whole number between 1 and 1024\."),
        ("ingest", "batch_size", r"ingest: batch_size='0': use a whole number of rows >= 1\."),
    ],
)
def test_a_rendered_whole_number_below_its_minimum_is_refused(task_id, field, message):
    op = _whole_number_operators("{{ '5' }}")[task_id]
    setattr(op, field, "{{ '0' }}")
    with pytest.raises(MilvusInputError, match=message):
        op.render_template_fields({})


def test_sensor_has_no_fields_to_coerce():
    """The sensor templates names only; if it ever templates a boolean, seconds or a number it must coerce them."""
    from airflow_milvus.sensors.index import MilvusIndexBuiltSensor

    sensor = MilvusIndexBuiltSensor
    templated = set(sensor.template_fields) - {"milvus_conn_id", "collection_name", "index_name", "field_name"}
    assert templated <= set(sensor.bool_fields) | set(sensor.seconds_fields) | set(sensor.int_fields), templated


@pytest.mark.parametrize("flavour", ["server"])
def test_deferred_create_resumes_with_executes_values(milvus_uri, milvus_conn, collection_name, capfd):
    """load renders "False": the deferred path must end NOT loaded, as the synchronous one does."""
    # 3,000 rows of dim 64 with efConstruction=200 take the server a second or more to build (its index
    # scheduler alone ticks once a second): longer than the worker check, min(poll_interval, 10 s) =
    # 0.2 s, so the task defers, the trigger runs in dag.test()'s process, and execute_complete resumes.
    make_collection(milvus_uri, collection_name, rows=3000, indexes=(), dim=64)
    assert load_state(milvus_uri, collection_name) == "NotLoad"
    args = ", ".join(f'{k}="{v}"' for k, v in TEMPLATED.items())
    dr, tis = run(
        f'MilvusCreateIndexOperator(task_id="create", milvus_conn_id=CONN, collection_name="{collection_name}", '
        f'field_name="vec", index_type="HNSW", metric_type="L2", index_params={{"M": 16, "efConstruction": 200}}, '
        f"deferrable=True, {args})",
        milvus_conn,
    )
    out, err = capfd.readouterr()
    log = out + err
    assert dr.state == "success", (states(tis), log[-8000:])
    assert DEFERRED_WAIT in log, "the build ended within the worker check: nothing was resumed\n" + log[-4000:]
    result = xcom(dr, "create")
    assert [s["field_name"] for s in result["created"]] == ["vec"]
    assert result["loaded"] == [] and result["released"] == []
    assert load_state(milvus_uri, collection_name) == "NotLoad"
    assert index_summary(milvus_uri, collection_name) == {"vec": ("vec", "HNSW", "L2")}


# ------------------------------------------------------------------ 6. the pre-drop load state
@pytest.mark.parametrize("was_loaded", [False, True], ids=["not-loaded", "loaded"])
def test_rebuild_restores_the_pre_drop_load_state(was_loaded, flavour, milvus_uri, milvus_conn, collection_name):
    make_collection(milvus_uri, collection_name, load=was_loaded)
    if not was_loaded:  # Milvus Lite loaded it with make_collection's create_index
        with milvus_client(milvus_uri) as c:
            c.release_collection(collection_name)
    assert load_state(milvus_uri, collection_name) == ("Loaded" if was_loaded else "NotLoad")
    dr, tis = run(drop_then_rebuild(collection_name), milvus_conn)
    assert dr.state == "success", states(tis)
    assert xcom(dr, "drop")["collections"][collection_name]["was_loaded"] is was_loaded
    rebuilt = xcom(dr, "rebuild")
    assert [s["field_name"] for s in rebuilt["created"]] == ["vec"]
    assert rebuilt["loaded"] == ([collection_name] if was_loaded else [])
    # Milvus Lite 3.2.2 loads the collection with create_index; the server does not.
    assert rebuilt["released"] == ([collection_name] if flavour == "lite" and not was_loaded else [])
    assert load_state(milvus_uri, collection_name) == ("Loaded" if was_loaded else "NotLoad")
    assert index_summary(milvus_uri, collection_name) == {"vec": ("vec", "HNSW", "L2")}


# ------------------------------------------------------------------ 7. unreported parameters
@pytest.mark.parametrize("flavour", ["lite"])
def test_unknown_lite_params_are_null_with_a_warning(milvus_uri, milvus_conn, collection_name, capfd):
    make_collection(milvus_uri, collection_name)  # pymilvus builds HNSW M=8, efConstruction=64
    dr, tis = run(drop_then_rebuild(collection_name), milvus_conn)
    out, err = capfd.readouterr()
    log = out + err
    assert dr.state == "success", (states(tis), log[-8000:])
    drop = xcom(dr, "drop")
    [dropped] = drop["dropped"]
    [snapshotted] = drop["snapshot"][collection_name]
    assert (dropped["index_name"], dropped["index_type"], dropped["params"]) == ("vec", "HNSW", None)
    assert snapshotted["params"] is None
    warnings = [line for line in log.splitlines() if "does not report the build parameters of index vec" in line]
    assert warnings and collection_name in warnings[0], log[-4000:]
    defaults = [line for line in log.splitlines() if DEFAULTS_WARNING in line]
    assert defaults and f"{collection_name}.vec" in defaults[0], log[-4000:]
    assert index_summary(milvus_uri, collection_name) == {"vec": ("vec", "HNSW", "L2")}


@pytest.mark.parametrize("flavour", ["lite"])
def test_lite_params_this_package_built_are_kept(milvus_uri, milvus_conn, collection_name, capfd):
    make_collection(milvus_uri, collection_name, indexes=())
    dr, tis = run(
        f'''
create = MilvusCreateIndexOperator(task_id="create", milvus_conn_id=CONN, collection_name="{collection_name}", field_name="vec",
                                   index_type="HNSW", metric_type="L2", index_params={{"M": 8, "efConstruction": 64}}, poll_interval=0.5)
{drop_then_rebuild(collection_name)}
create >> drop''',
        milvus_conn,
    )
    out, err = capfd.readouterr()
    log = out + err
    assert dr.state == "success", (states(tis), log[-8000:])
    drop = xcom(dr, "drop")
    [dropped] = drop["dropped"]
    assert (dropped["index_type"], dropped["params"]) == ("HNSW", {"M": 8, "efConstruction": 64})
    assert drop["snapshot"][collection_name][0]["params"] == {"M": 8, "efConstruction": 64}
    assert [s["params"] for s in xcom(dr, "rebuild")["created"]] == [{"M": 8, "efConstruction": 64}]
    assert "does not report the build parameters" not in log and DEFAULTS_WARNING not in log
