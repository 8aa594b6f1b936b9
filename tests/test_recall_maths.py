"""The recall gate's benchmark numbers against independent numpy (no Milvus): VectorDBBench's
nDCG@k, ann-benchmarks' k-nn recall with ties, latency percentiles and QPS."""

from __future__ import annotations

import numpy as np
import pytest

from airflow_milvus.quality.metrics import (
    benchmark_distances,
    knn_recall_with_ties,
    latency_summary,
    ndcg_at_k,
    queries_per_second,
)
from airflow_milvus.quality.recall import StreamingGroundTruth


def brute_force(data, queries, metric):
    """(queries, rows) distances as each benchmark measures them, computed directly."""
    if metric == "L2":
        return np.sqrt(((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1))
    if metric == "COSINE":
        unit = data / np.linalg.norm(data, axis=1, keepdims=True)
        return 1.0 - (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    return -(queries @ data.T)


def test_ndcg_is_vectordbbench_calc_ndcg():
    ideal = sum(1 / np.log2(i + 2) for i in range(4))
    assert ndcg_at_k([1, 2, 3, 4], [4, 3, 2, 1], 4) == pytest.approx(1.0)  # order of the answer does not matter
    assert ndcg_at_k([1, 2, 3, 4], [1, 9, 9, 9], 4) == pytest.approx(1 / ideal)  # a repeated id counts once
    assert ndcg_at_k([1, 2, 3, 4], [4, 8, 7, 6], 4) == pytest.approx((1 / np.log2(5)) / ideal)  # rank in the truth
    assert ndcg_at_k([1, 2, 3, 4], [], 4) == 0.0


def test_knn_recall_with_ties_is_ann_benchmarks_threshold():
    true_kth = np.array([1.0, 2.0])
    found = np.array([[0.5, 1.0009, 1.002], [2.0, np.inf, 0.1]])  # inf: a missing result
    assert knn_recall_with_ties(true_kth, found, 3) == [pytest.approx(2 / 3), pytest.approx(2 / 3)]
    assert knn_recall_with_ties(true_kth, found, 3, epsilon=0.01) == [1.0, pytest.approx(2 / 3)]
    keys = np.array([4.0, -0.25])
    assert benchmark_distances(keys, "L2").tolist() == [2.0, 0.0]  # squared L2 -> Euclidean
    assert benchmark_distances(keys, "COSINE").tolist() == [5.0, 0.75]
    assert benchmark_distances(keys, "IP").tolist() == [4.0, -0.25]


@pytest.mark.parametrize("metric", ["L2", "IP", "COSINE"])
def test_streamed_ndcg_and_ties_equal_brute_force(metric):
    rng = np.random.default_rng(7)
    data = rng.normal(size=(400, 6))
    data[17] = data[5]  # a duplicate: a tie wherever row 5 is a neighbour
    picked = [5, 40, 399]
    queries, k = data[picked], 8
    dist = brute_force(data, queries, metric)
    exact = np.argsort(dist, axis=1, kind="stable")[:, :k]
    # A poor "ANN" answer: some true neighbours, some far rows, one short list.
    ann = [exact[0][[0, 2, 5]].tolist() + [300, 301], exact[1][:k].tolist()[::-1], exact[2][3:].tolist()]
    truth = StreamingGroundTruth(queries, k, metric, ann)
    for start in range(0, len(data), 64):
        truth.add(np.arange(start, min(len(data), start + 64)), data[start : start + 64])

    ideal = sum(1 / np.log2(i + 2) for i in range(k))
    for q in range(len(picked)):
        # Ties may order the truth differently at equal distances: compare through distances.
        assert np.allclose(np.sort(dist[q][truth.neighbours()[q]]), np.sort(dist[q][exact[q]]))
        rank = {pk: i for i, pk in enumerate(truth.neighbours()[q])}
        assert truth.ndcgs()[q] == pytest.approx(sum(1 / np.log2(rank[pk] + 2) for pk in set(ann[q]) if pk in rank) / ideal)
        kth = np.sort(dist[q])[k - 1]
        assert truth.recalls_with_ties()[q] == pytest.approx(sum(dist[q][pk] <= kth + 1e-3 for pk in ann[q]) / k)
    assert truth.ndcgs()[1] == pytest.approx(1.0) and truth.recalls_with_ties()[1] == 1.0


def test_latency_percentiles_and_qps():
    seconds = np.random.default_rng(1).exponential(0.005, size=500)
    summary = latency_summary(seconds)
    for p in (50, 95, 99):
        assert summary[f"p{p}"] == pytest.approx(np.percentile(seconds * 1000, p), abs=1e-3)
    assert summary["max"] == pytest.approx(seconds.max() * 1000, abs=1e-3)
    assert queries_per_second(seconds) == pytest.approx(500 / seconds.sum(), abs=1e-3)
    assert queries_per_second([]) == 0.0
