"""example_dags/milvus_reindex_import.py, twice in a row, on the real server (import jobs) and Milvus Lite."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import REPO, conn_env_value
from tests.dag_runner import dags_folder, run_dag, xcom
from tests.helpers import index_summary, live_rows, load_state


@pytest.mark.slow  # a whole example DAG, twice
def test_import_reindex_example_runs_twice(milvus_uri, monkeypatch, collection_name, flavour):
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DEFAULT", conn_env_value(milvus_uri))
    path = dags_folder() / "milvus_reindex_import.py"
    shutil.copy(REPO / "example_dags" / "milvus_reindex_import.py", path)
    conf = {"collection": collection_name, "rows": 1500}
    results = []
    for attempt in (1, 2):
        dr, tis = run_dag("milvus_reindex_import", path=path, conf=conf)
        assert dr.state == "success", (attempt, {k: str(v.state) for k, v in tis.items()})
        dropped = xcom(dr, "drop_indexes")["dropped"]
        assert [(s["field_name"], s["index_type"], s["metric_type"]) for s in dropped] == [("embedding", "HNSW", "L2")]
        assert [s["field_name"] for s in xcom(dr, "rebuild_indexes")["created"]] == ["embedding"]
        assert xcom(dr, "search")[0] == 7
        results.append(xcom(dr, "reload"))
    first, second = results
    assert (first["rows"], first["skipped"], first["method"]) == (1500, False, "import_job" if flavour == "server" else "insert")
    assert len(first["job_ids"]) == (1 if flavour == "server" else 0)
    assert (second["rows"], second["skipped"], second["job_ids"]) == (0, True, first["job_ids"])
    assert index_summary(milvus_uri, collection_name) == {"embedding": ("embedding", "HNSW", "L2")}
    assert live_rows(milvus_uri, collection_name) == 1500  # the re-run imported nothing twice
    assert load_state(milvus_uri, collection_name) == "Loaded"
