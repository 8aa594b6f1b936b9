"""The recall gate's numbers in the benchmarks' own definitions (pure numpy, no Milvus).

- ``ndcg``: VectorDBBench's ``calc_ndcg`` (vectordb_bench/metric.py): each returned id found in
  the exact top-k adds ``1 / log2(rank + 2)``, its rank being its place in the exact top-k;
  divided by the ideal ``sum(1 / log2(i + 2) for i < k)``.
- ``recall_ties``: ann-benchmarks' k-nn recall (ann_benchmarks/plotting/metrics.py,
  ``knn_threshold``): a returned result is a hit when its distance is within ``1e-3`` of the
  k-th true neighbour's distance, in the metric's own distance (Euclidean, not squared; cosine
  distance ``1 - cos``; minus the inner product for IP).
- ``latency_ms`` p50/p95/p99 of serial searches (VectorDBBench reports ``serial_latency_p99``),
  and ``qps`` as ann-benchmarks counts it for one client: queries / total search time.

numpy is imported inside functions only (DAG files import the operator).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ANN_BENCHMARKS_EPSILON = 1e-3


def ideal_dcg(k: int) -> float:
    import numpy as np

    return float((1.0 / np.log2(np.arange(k) + 2.0)).sum())


def ndcg_at_k(truth: Sequence[Hashable], got: Sequence[Hashable], k: int) -> float:
    """nDCG@k of one query: ``truth`` the exact top-k ids nearest first, ``got`` the returned ids."""
    import numpy as np

    rank = {pk: i for i, pk in enumerate(list(truth)[:k])}
    gain = sum(1.0 / np.log2(rank[pk] + 2.0) for pk in set(got) if pk in rank)  # a repeated id counts once
    return float(gain / ideal_dcg(k))


def benchmark_distances(keys: Any, metric: str) -> np.ndarray:
    """The ground truth's keys (squared L2, -IP, -cosine) as ann-benchmarks' distances."""
    import numpy as np

    keys = np.asarray(keys, dtype=np.float64)
    if metric == "L2":
        return np.sqrt(np.maximum(keys, 0.0))
    if metric == "COSINE":
        return 1.0 + keys
    return keys  # IP: -<q, x>, lower is nearer (ann-benchmarks' "dot")


def knn_recall_with_ties(true_kth: Any, found: Any, k: int, epsilon: float = ANN_BENCHMARKS_EPSILON) -> list[float]:
    """ann-benchmarks' k-nn recall per query: ``found`` (queries, k) distances of the returned
    results (inf for a missing one), ``true_kth`` the k-th true distance of each query."""
    import numpy as np

    found = np.asarray(found, dtype=np.float64)[:, :k]
    limit = np.asarray(true_kth, dtype=np.float64) + epsilon
    return [float(h) / k for h in (found <= limit[:, None]).sum(axis=1)]


def summarize_recalls(recalls: Sequence[float]) -> dict[str, float]:
    """Mean recall, its standard error over the queries, and the worst query."""
    import numpy as np

    values = np.asarray(recalls, dtype=np.float64)
    stderr = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return {"recall": float(values.mean()), "recall_stderr": stderr, "recall_min": float(values.min())}


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of per-search latencies, in milliseconds."""
    import numpy as np

    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    summary = {f"p{p}": round(float(np.percentile(ms, p)), 3) for p in (50, 95, 99)}
    return {**summary, "max": round(float(ms.max()), 3)}


def queries_per_second(seconds: Sequence[float]) -> float:
    """Serial throughput of one client: searches per second of search time."""
    total = float(sum(seconds))
    return round(len(seconds) / total, 3) if total > 0 else 0.0
