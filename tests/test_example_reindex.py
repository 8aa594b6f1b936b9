"""The main job: example_dags/milvus_reindex.py, twice in a row, on Milvus Lite and the real server."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import REPO, conn_env_value
from tests.dag_runner import dags_folder, run_dag, xcom
from tests.helpers import index_summary, live_rows, load_state


@pytest.mark.slow  # a whole example DAG, twice; the matrix runs it on Lite as the demo
def test_reindex_example_runs_twice(milvus_uri, monkeypatch, collection_name, flavour):
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))
    path = dags_folder() / "milvus_reindex.py"
    shutil.copy(REPO / "example_dags" / "milvus_reindex.py", path)
    conf = {"collection": collection_name, "rows": 1200}
    for attempt in (1, 2):
        dr, tis = run_dag("milvus_reindex", path=path, conf=conf)
        assert dr.state == "success", (attempt, {k: str(v.state) for k, v in tis.items()})
        dropped = xcom(dr, "drop_indexes")["dropped"]
        assert [(s["field_name"], s["index_type"], s["metric_type"]) for s in dropped] == [("embedding", "HNSW", "L2")]
        rebuilt = xcom(dr, "rebuild_indexes")
        assert [s["field_name"] for s in rebuilt["created"]] == ["embedding"]
        assert xcom(dr, "search")[0] == 7
        recall = xcom(dr, "check_recall")  # measured only: no min_recall by default
        assert (recall["min_recall"], recall["passed"], recall["rows"], recall["queries"]) == (None, True, 1200, 100)
        assert (recall["index"]["index_type"], recall["metric_type"], recall["search_params"]) == ("HNSW", "L2", {"params": {"ef": 64}})
        assert recall["recall"] >= 0.9 and recall["latency_ms"]["p95"] > 0
    assert index_summary(milvus_uri, collection_name) == {"embedding": ("embedding", "HNSW", "L2")}
    assert live_rows(milvus_uri, collection_name) == 1200  # upsert: the re-run did not duplicate rows
    assert load_state(milvus_uri, collection_name) == "Loaded"


def test_reindex_example_serializes_runs():
    from tests.dag_runner import load_dag

    path = dags_folder() / "milvus_reindex.py"
    shutil.copy(REPO / "example_dags" / "milvus_reindex.py", path)
    dag = load_dag("milvus_reindex", path)
    assert dag.max_active_runs == 1
    # No pool of its own: a pool nothing created would keep a fresh Airflow from starting the tasks.
    assert {t.pool for t in dag.tasks} == {"default_pool"}
