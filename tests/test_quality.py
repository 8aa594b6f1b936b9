"""The recall gate: streaming ground truth (pure numpy), and the operator on both flavours."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.operators.quality import (
    MilvusRecallBelowThresholdError,
    MilvusRecallCheckOperator,
)
from airflow_milvus.quality.recall import (
    StreamingGroundTruth,
    check_metric,
    check_sample,
    choose_metric,
    choose_vector_field,
    index_text,
    latency_summary,
    summarize_recalls,
)
from tests.conftest import milvus_client
from tests.dag_runner import run_dag, write_dag
from tests.helpers import is_lite

N, DIM = 3000, 16
FLAT = {"index_type": "FLAT", "params": {}}
# Many lists, one probed: far from exact on both flavours (Milvus Lite ignores nlist, and its
# own IVF with nprobe 1 measures about 0.3 here).
POOR = {"index_type": "IVF_FLAT", "params": {"nlist": 1024}}
NPROBE_1 = {"params": {"nprobe": 1}}


def vectors(n=N, dim=DIM, seed=3):
    return np.random.default_rng(seed).random((n, dim), dtype=np.float32)


def make_vector_collection(uri, name, data, *, index=FLAT, metric="L2", load=True, text_ids=False):
    """id / vec / year, rows inserted before the index is built, as a reindex does (Milvus
    Lite builds an index created before the data in the background, and a search that runs
    before that build finishes is exact)."""
    from pymilvus import DataType

    with milvus_client(uri) as c:
        schema = c.create_schema(auto_id=False)
        if text_ids:
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=16)
        else:
            schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=data.shape[1])
        schema.add_field("year", DataType.INT64)
        c.create_collection(name, schema=schema)
        for start in range(0, len(data), 1000):
            c.insert(name, [
                {"id": f"r{i}" if text_ids else i, "vec": data[i].tolist(), "year": i % 50}
                for i in range(start, min(len(data), start + 1000))
            ])  # fmt: skip
        c.flush(name)
        if c.get_load_state(name)["state"].name == "Loaded":
            c.release_collection(name)  # Lite reports new collections as Loaded
        params = c.prepare_index_params()
        params.add_index("vec", index_name="vec", index_type=index["index_type"], metric_type=metric, params=index["params"])
        c.create_index(name, params)
        if load:
            c.load_collection(name)
        else:
            c.release_collection(name)  # Milvus Lite loads a collection when it builds an index
    return name


def make_unsupported_vector_collection(uri, name) -> str:
    """A loaded collection with a vector field ``other`` the check refuses; returns its type.

    Milvus Lite has no binary vectors and server 2.3.5 neither sparse vectors nor two vector
    fields: on Lite, ``other`` is sparse beside a dense ``vec``; on the server, binary alone."""
    from pymilvus import DataType

    lite = is_lite(uri)
    with milvus_client(uri) as c:
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        params = c.prepare_index_params()
        if lite:
            schema.add_field("vec", DataType.FLOAT_VECTOR, dim=4)
            schema.add_field("other", DataType.SPARSE_FLOAT_VECTOR)
            params.add_index("vec", index_type="FLAT", metric_type="L2", params={})
            params.add_index("other", index_type="SPARSE_INVERTED_INDEX", metric_type="IP", params={})
            rows = [{"id": i, "vec": [float(i)] * 4, "other": {i % 7: 1.0}} for i in range(20)]
        else:
            schema.add_field("other", DataType.BINARY_VECTOR, dim=8)
            params.add_index("other", index_type="BIN_FLAT", metric_type="HAMMING", params={})
            rows = [{"id": i, "other": bytes([i])} for i in range(20)]
        c.create_collection(name, schema=schema)
        c.insert(name, rows)
        c.flush(name)
        if c.get_load_state(name)["state"].name == "Loaded":
            c.release_collection(name)
        c.create_index(name, params)
        c.load_collection(name)
    return "SPARSE_FLOAT_VECTOR" if lite else "BINARY_VECTOR"


def check(conn_id, name, **kwargs) -> dict:
    return MilvusRecallCheckOperator(task_id="recall", milvus_conn_id=conn_id, collection_name=name, **kwargs).execute({})


def numpy_recall(data, uri, name, query_ids, k, search_params, metric="L2"):
    """recall, ndcg and recall_ties computed independently: exact distances by plain numpy
    over the inserted array, ANN neighbours from pymilvus searches of the same query vectors."""
    data = data.astype(np.float64)
    if metric == "L2":
        distances = [np.sqrt(((data - data[q]) ** 2).sum(1)) for q in query_ids]  # ann-benchmarks: Euclidean
    else:
        unit = data / np.linalg.norm(data, axis=1, keepdims=True) if metric == "COSINE" else data
        distances = [(1.0 if metric == "COSINE" else 0.0) - unit @ unit[q] for q in query_ids]
    exact = [np.argsort(d, kind="stable")[:k] for d in distances]
    with milvus_client(uri) as c:
        found = [
            [h["id"] for h in c.search(name, data=[data[q].tolist()], limit=k, anns_field="vec", search_params=search_params)[0]]
            for q in query_ids
        ]
    ideal = sum(1 / np.log2(i + 2) for i in range(k))
    recall, ndcg, ties = [], [], []
    for truth, got, dist in zip(exact, found, distances):
        truth = truth.tolist()
        recall.append(len(set(got) & set(truth)) / k)
        ndcg.append(sum(1 / np.log2(truth.index(pk) + 2) for pk in set(got) if pk in truth) / ideal)
        ties.append(sum(dist[pk] <= dist[truth[-1]] + 1e-3 for pk in got[:k]) / k)
    return float(np.mean(recall)), float(np.mean(ndcg)), float(np.mean(ties))


# ---------------------------------------------------------------------- pure maths
@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_streaming_ground_truth_equals_one_shot_numpy(metric):
    data = np.random.default_rng(0).normal(size=(500, 8))
    queries = data[[3, 50, 499]]
    if metric == "L2":
        keys = ((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1)
    elif metric == "IP":
        keys = -(queries @ data.T)
    else:
        unit = data / np.linalg.norm(data, axis=1, keepdims=True)
        keys = -(unit[[3, 50, 499]] @ unit.T)
    exact = np.argsort(keys, axis=1)[:, :5].tolist()
    for batch in (1, 7, 500):
        truth = StreamingGroundTruth(queries, 5, metric, ann_ids=exact)
        for start in range(0, len(data), batch):
            truth.add(list(range(start, min(len(data), start + batch))), data[start : start + batch])
        assert truth.neighbours() == exact
        assert truth.recalls() == [1.0, 1.0, 1.0]


def test_recall_counts_misses_short_answers_and_ties():
    data = np.array([[0.0], [1.0], [2.0], [2.0], [5.0], [9.0]])  # rows 2 and 3 are duplicates
    truth = StreamingGroundTruth(data[[0]], 3, "L2", ann_ids=[["a", "b", "d"]])
    truth.add(["a", "b", "c", "d"], data[:4])
    truth.add(["e", "f"], data[4:])
    # d ties with c at the 3rd place: a hit although the exact top 3 is a, b, c.
    assert truth.recalls() == [1.0]
    assert truth.neighbours()[0][:2] == ["a", "b"]

    for ann, expected in ((["a", "e", "f"], 1 / 3), (["a", "b"], 2 / 3), (["x", "y", "z"], 0.0)):
        truth = StreamingGroundTruth(data[[0]], 3, "L2", ann_ids=[ann])
        truth.add(list("abcdef"), data)
        assert truth.recalls() == [pytest.approx(expected)]


def test_recall_summaries_and_metric_names():
    assert summarize_recalls([1.0, 0.5]) == {"recall": 0.75, "recall_stderr": pytest.approx(0.25), "recall_min": 0.5}
    assert latency_summary([0.001, 0.002, 0.010]) == {"p50": 2.0, "p95": 9.2, "p99": 9.84, "max": 10.0}
    assert check_metric("cosine") == "COSINE"
    with pytest.raises(MilvusInputError, match=r"'HAMMING' is not supported by the recall check.*L2, IP, COSINE"):
        check_metric("HAMMING")


def description(*fields):
    """A collection description as describe_collection gives it: id (primary) plus ``fields``."""
    from pymilvus import DataType

    return {"fields": [{"name": "id", "type": DataType.INT64, "is_primary": True}]
            + [{"name": n, "type": getattr(DataType, t), "params": {}} for n, t in fields]}  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "anns_field", "outcome"),
    [
        ([("vec", "FLOAT_VECTOR"), ("year", "INT64")], None, ("id", "vec")),
        ([("vec", "FLOAT_VECTOR"), ("bits", "BINARY_VECTOR")], "vec", ("id", "vec")),
        ([("vec", "FLOAT_VECTOR"), ("bits", "BINARY_VECTOR")], None, r"has 2 vector fields \(vec, bits\); set anns_field"),
        ([("year", "INT64")], None, r"has 0 vector fields \(none\); set anns_field"),
        ([("vec", "FLOAT_VECTOR"), ("year", "INT64")], "year", r"Field 'year' of 'c' is INT64: it is not a vector field"),
        ([("bits", "BINARY_VECTOR")], None, r"Field 'bits' of 'c' is BINARY_VECTOR: it is not a dense float vector field"),
        ([("vec", "FLOAT_VECTOR")], "nope", r"'c' has no field 'nope'; its fields are id, vec\."),
        ([("vec", "FLOAT_VECTOR")], "bad name", r"anns_field 'bad name' is not a valid Milvus name"),
    ],
)
def test_choose_vector_field(fields, anns_field, outcome):
    if isinstance(outcome, tuple):
        assert choose_vector_field("c", description(*fields), anns_field) == outcome
    else:
        with pytest.raises(MilvusInputError, match=outcome):
            choose_vector_field("c", description(*fields), anns_field)


@pytest.mark.parametrize(
    ("index", "asked", "outcome"),
    [
        ({"metric_type": "IP"}, None, "IP"),
        ({"metric_type": "COSINE"}, "cosine", "COSINE"),
        (None, "l2", "L2"),  # no index: the search says which metric
        ({}, "IP", "IP"),
        ({"metric_type": "L2"}, "IP", r"search_params metric_type 'IP' differs from the index on c.vec, built for 'L2'"),
        (None, None, r"c.vec has no index reporting a metric; set search_params=\{'metric_type': ...\} \(L2, IP, COSINE\)"),
        ({"metric_type": "HAMMING"}, None, r"metric_type of c.vec 'HAMMING' is not supported by the recall check"),
        (None, "MANHATTAN", r"search_params metric_type 'MANHATTAN' is not supported"),
    ],
)
def test_choose_metric(index, asked, outcome):
    if outcome in {"L2", "IP", "COSINE"}:
        assert choose_metric("c.vec", index, asked) == outcome
    else:
        with pytest.raises(MilvusInputError, match=outcome):
            choose_metric("c.vec", index, asked)


@pytest.mark.parametrize(
    ("rows", "sizes", "message"),
    [
        (100, {"sample_size": 100, "top_k": 100, "max_rows": 100}, None),
        (101, {"sample_size": 10, "top_k": 10, "max_rows": 100}, r"'c' has 101 rows, more than max_rows=100.*Raise max_rows"),
        (50, {"sample_size": 51, "top_k": 10, "max_rows": 100}, r"sample_size=51 is larger than collection 'c' \(50 rows\); use at most 50"),
        (50, {"sample_size": 5, "top_k": 51, "max_rows": 100}, r"top_k=51 is larger than collection 'c' \(50 rows\)"),
    ],
)
def test_check_sample(rows, sizes, message):
    if message is None:
        assert check_sample("c", rows, **sizes) is None
    else:
        with pytest.raises(MilvusInputError, match=message):
            check_sample("c", rows, **sizes)


def test_index_text():
    assert index_text(None) == "no index"
    assert index_text({"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 8}}) == 'IVF_FLAT L2 {"nlist": 8}'
    assert index_text({"index_type": "FLAT", "metric_type": None}) == "FLAT {}"


# ---------------------------------------------------------------------- the operator
@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_flat_index_measures_recall_one(milvus_conn, milvus_uri, collection_name, metric):
    make_vector_collection(milvus_uri, collection_name, vectors(), metric=metric)
    result = check(milvus_conn, collection_name)

    assert json.loads(json.dumps(result)) == result  # JSON-safe XCom
    assert (result["recall"], result["recall_min"], result["passed"]) == (1.0, 1.0, True)
    assert (result["top_k"], result["queries"], result["rows"], result["metric_type"]) == (10, 100, N, metric)
    assert (result["index"]["index_type"], result["index"]["field_name"], result["anns_field"]) == ("FLAT", "vec", "vec")
    assert (result["ndcg"], result["recall_ties"]) == (1.0, 1.0)
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert 1000 / latency["max"] <= result["qps"] <= 2000 / latency["p50"] * 1.001  # half the searches took >= p50
    assert result["ground_truth_seconds"] > 0 and result["min_recall"] is None
    assert len(set(result["query_ids"])) == 100
    if metric != "L2":
        return
    # Seeded: the same seed samples the same queries, another seed others.
    again = check(milvus_conn, collection_name, sample_size=5, top_k=3, seed=0)
    other = check(milvus_conn, collection_name, sample_size=5, top_k=3, seed=1)
    assert again["query_ids"] == check(milvus_conn, collection_name, sample_size=5, top_k=3, seed=0)["query_ids"]
    assert other["query_ids"] != again["query_ids"]


def test_poor_index_matches_recall_computed_by_numpy(milvus_conn, milvus_uri, collection_name):
    data = vectors()
    make_vector_collection(milvus_uri, collection_name, data, index=POOR)
    result = check(milvus_conn, collection_name, search_params=NPROBE_1, sample_size=50)

    recall, ndcg, ties = numpy_recall(data, milvus_uri, collection_name, result["query_ids"], 10, NPROBE_1)
    assert result["recall"] < 0.8 and result["recall_min"] < result["recall"]
    assert result["recall"] == pytest.approx(recall, abs=0.005)
    assert result["ndcg"] == pytest.approx(ndcg, abs=0.005) and result["ndcg"] != pytest.approx(result["recall"], abs=0.01)
    assert result["recall_ties"] == pytest.approx(ties, abs=0.005)
    assert result["passed"] is True  # no min_recall: measured only
    assert result["search_params"] == NPROBE_1
    assert result["index"]["index_type"] == "IVF_FLAT"
    # Probing every list makes the same index exact.
    assert check(milvus_conn, collection_name, search_params={"params": {"nprobe": 1024}}, sample_size=20)["recall"] == 1.0


def test_gate_fails_the_task_with_recall_threshold_index_and_params(milvus_conn, milvus_uri, collection_name):
    make_vector_collection(milvus_uri, collection_name, vectors(), index=POOR)
    with pytest.raises(MilvusRecallBelowThresholdError) as failure:
        check(milvus_conn, collection_name, search_params=json.dumps(NPROBE_1), sample_size=30, min_recall="0.95")
    message = str(failure.value)
    assert f"Recall@10 of {collection_name}.vec is 0." in message and "below min_recall=0.95" in message
    assert "IVF_FLAT" in message and '"nprobe": 1' in message
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # Airflow 3.1
        from airflow.exceptions import AirflowFailException

    assert isinstance(failure.value, AirflowFailException)  # a re-try would measure the same
    # The same index passes a threshold it meets.
    assert check(milvus_conn, collection_name, search_params=NPROBE_1, sample_size=30, min_recall=0.05)["passed"] is True


def test_checks_through_an_alias_with_text_primary_keys(milvus_conn, milvus_uri, collection_name):
    make_vector_collection(milvus_uri, collection_name, vectors(n=500), text_ids=True)
    with milvus_client(milvus_uri) as c:
        c.create_alias(collection_name, f"{collection_name}_live")
    result = check(milvus_conn, f"{collection_name}_live", sample_size=10, batch_size=64)  # 8 pages of text keys
    assert (result["collection_name"], result["alias"], result["recall"]) == (collection_name, f"{collection_name}_live", 1.0)
    assert all(isinstance(pk, str) and pk.startswith("r") for pk in result["query_ids"])


@pytest.mark.parametrize("text_ids", [False, True])
def test_hook_streams_every_vector_once_in_bounded_pages(milvus_conn, milvus_uri, collection_name, text_ids):
    from airflow_milvus.hooks.milvus import MilvusHook

    data = vectors(n=700)
    make_vector_collection(milvus_uri, collection_name, data, text_ids=text_ids)
    with MilvusHook(milvus_conn) as hook:
        for prefetch in (True, False):
            pages = list(hook.iterate_vectors(collection_name, primary="id", field="vec", batch_size=256, prefetch=prefetch))
            assert [len(ids) for ids, _ in pages] == [256, 256, 188]
            ids = [pk for page, _ in pages for pk in page]
            rows = [int(pk[1:]) for pk in ids] if text_ids else [int(pk) for pk in ids]
            assert sorted(rows) == list(range(700)) and ids == sorted(ids)  # each row once, in key order
            matrix = np.concatenate([v for _, v in pages])
            assert matrix.dtype == np.float32 and np.array_equal(matrix, data[rows])
        # A consumer that stops early leaves no page thread behind.
        first = next(iter(hook.iterate_vectors(collection_name, primary="id", field=None, batch_size=100)))
        assert len(first[0]) == 100 and first[1] is None
        assert "milvus-pages" not in [t.name for t in threading.enumerate()]
        assert hook.count_rows(collection_name) == 700


def test_hook_streams_every_row_of_a_collection_in_several_segments(milvus_conn, milvus_uri, collection_name):
    """Keys interleaved over three sealed segments: a server ends a page where one segment runs
    out (short pages mid-stream); the stream must go on to the end, each row once."""
    from pymilvus import DataType

    from airflow_milvus.hooks.milvus import MilvusHook

    data = vectors(n=900)
    with milvus_client(milvus_uri) as c:
        schema = c.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=data.shape[1])
        c.create_collection(collection_name, schema=schema)
        for segment in range(3):  # each flush seals a segment
            c.insert(collection_name, [{"id": i, "vec": data[i].tolist()} for i in range(segment, 900, 3)])
            c.flush(collection_name)
        params = c.prepare_index_params()
        params.add_index("vec", index_name="vec", index_type="FLAT", metric_type="L2")
        c.create_index(collection_name, params)
        c.load_collection(collection_name)
    with MilvusHook(milvus_conn) as hook:
        pages = list(hook.iterate_vectors(collection_name, primary="id", field="vec", batch_size=128, prefetch=False))
    ids = [int(pk) for page, _ in pages for pk in page]
    assert sorted(ids) == list(range(900)) and len(ids) == 900, f"{len(ids)} rows in pages {[len(p) for p, _ in pages]}"
    assert np.array_equal(np.concatenate([v for _, v in pages]), data[ids])


def test_bad_input_gets_clear_errors_and_changes_nothing(milvus_conn, milvus_uri, collection_name):
    make_vector_collection(milvus_uri, collection_name, vectors(n=200))
    unloaded = make_vector_collection(milvus_uri, f"{collection_name}_u", vectors(n=50), load=False)
    odd = f"{collection_name}_odd"
    odd_type = make_unsupported_vector_collection(milvus_uri, odd)
    cases = [
        ({"sample_size": 201}, r"sample_size=201 is larger than collection .* \(200 rows\); use at most 200"),
        ({"anns_field": "year"}, r"Field 'year' of .* is INT64: it is not a vector field"),
        ({"anns_field": "nope"}, r"has no field 'nope'; its fields are id, vec, year\."),
        ({"collection_name": odd, "anns_field": "other"}, rf"Field 'other' .* is {odd_type}: it is not a dense float vector field"),
        ({"max_rows": 150}, r"has 200 rows, more than max_rows=150.*Raise max_rows"),
        ({"search_params": {"metric_type": "MANHATTAN"}}, r"search_params metric_type 'MANHATTAN' is not supported.*L2, IP, COSINE"),
        ({"search_params": {"metric_type": "IP"}}, r"differs from the index .* built for 'L2'"),
        ({"search_params": "{nprobe: 1}"}, r"search_params '\{nprobe: 1\}' is not valid JSON"),
        ({"min_recall": 1.5}, r"min_recall = 1.5 is outside \[0, 1\]"),
        ({"top_k": 0}, r"top_k = 0 must be between 1 and 16384"),
        ({"collection_name": unloaded}, rf"'{unloaded}' is NotLoad: Milvus searches only loaded collections. Load it first"),
        ({"collection_name": f"{collection_name}_x"}, r"does not exist; check the name or alias"),
    ]
    if is_lite(milvus_uri):  # the only flavour here with two vector fields in one collection
        cases.append(({"collection_name": odd, "anns_field": None}, r"has 2 vector fields \(vec, other\); set anns_field"))
    for case, message in cases:
        kwargs = {"anns_field": "vec", **case}
        name = kwargs.pop("collection_name", collection_name)
        with pytest.raises(MilvusInputError, match=message):
            check(milvus_conn, name, **kwargs)
    with milvus_client(milvus_uri) as c:
        assert c.get_load_state(unloaded)["state"].name == "NotLoad"  # the check loads nothing
        assert c.get_load_state(collection_name)["state"].name == "Loaded"


def test_templated_gate_fails_the_dag_task_and_stops_downstream(milvus_conn, milvus_uri, collection_name):
    make_vector_collection(milvus_uri, collection_name, vectors(), index=POOR)
    dag_id = write_dag(
        f"""
        import pendulum
        from airflow.sdk import dag, task
        from airflow_milvus.operators.quality import MilvusRecallCheckOperator

        @dag(dag_id=DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1), params={{"floor": 0.9}})
        def d():
            gate = MilvusRecallCheckOperator(
                task_id="recall", milvus_conn_id={milvus_conn!r}, collection_name={collection_name!r},
                sample_size="{{{{ 20 }}}}", top_k="{{{{ 5 }}}}", min_recall="{{{{ params.floor }}}}",
                search_params='{{"params": {{"nprobe": 1}}}}',
            )

            @task
            def serve():
                return "swapped"

            gate >> serve()

        d()
        """
    )
    dr, tis = run_dag(dag_id)
    assert (tis["recall"].state, tis["serve"].state) == ("failed", "upstream_failed")
    dr, tis = run_dag(dag_id, conf={"floor": 0.0})
    assert (tis["recall"].state, tis["serve"].state) == ("success", "success")
