"""Exact nearest neighbours over a stream of vector batches, and recall@k against them.

Pure numpy, no Milvus calls: the recall check feeds it the batches a query iterator returns,
so the collection never has to fit in memory. numpy is imported inside functions only
(this module is imported when a DAG file is parsed).

Every metric is turned into a *key* where lower is nearer: squared L2 distance as Milvus
reports it, minus the inner product (IP), minus the cosine similarity (COSINE). Keys are
computed in float64, so the ground truth does not depend on float32 rounding.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.quality.metrics import (  # noqa: F401  (public here too)
    ANN_BENCHMARKS_EPSILON,
    latency_summary,
    queries_per_second,
    summarize_recalls,
)

if TYPE_CHECKING:
    import numpy as np

METRICS = ("L2", "IP", "COSINE")
# A result counts as a true neighbour when its exact key is within float32 rounding of the
# k-th exact key: Milvus computes in float32, so an exact index may order near-ties (and
# duplicate vectors) differently, and that is no loss of recall.
RELATIVE_TOLERANCE = 1e-6


def check_metric(metric: Any, where: str = "metric_type") -> str:
    """The metric in upper case, or a clear error for one the check cannot compute."""
    name = str(metric or "").strip().upper()
    if name not in METRICS:
        raise MilvusInputError(
            f"{where} {metric!r} is not supported by the recall check: it computes exact neighbours "
            f"for dense float vectors with {', '.join(METRICS)}. Binary (HAMMING, JACCARD) and sparse "
            "(IP on sparse vectors, BM25) fields cannot be checked."
        )
    return name


def choose_vector_field(collection: str, description: Mapping[str, Any], anns_field: str | None) -> tuple[str, str]:
    """(primary key field, vector field to check) from the collection's description.

    ``anns_field`` None picks the only vector field; the field must be a dense float vector."""
    from airflow_milvus.imports.rows import field_kind
    from airflow_milvus.planning.validation import validate_name

    fields = description["fields"]
    types = {f["name"]: field_kind(f) for f in fields}
    primary = next(f["name"] for f in fields if f.get("is_primary"))
    vectors = [n for n, t in types.items() if "VECTOR" in t]
    field = anns_field
    if field in (None, ""):
        if len(vectors) != 1:
            raise MilvusInputError(
                f"Collection {collection!r} has {len(vectors)} vector fields ({', '.join(vectors) or 'none'}); "
                "set anns_field to the one to check."
            )
        field = vectors[0]
    field = validate_name(field, "anns_field")
    if field not in types:
        raise MilvusInputError(f"Collection {collection!r} has no field {field!r}; its fields are {', '.join(types)}.")
    if types[field] != "FLOAT_VECTOR":
        kind = "is not a vector field" if field not in vectors else "is not a dense float vector field"
        raise MilvusInputError(
            f"Field {field!r} of {collection!r} is {types[field]}: it {kind}. The recall check supports "
            f"FLOAT_VECTOR fields ({', '.join(vectors) or 'none here'} are the vector fields)."
        )
    return primary, field


def choose_metric(where: str, index: Mapping[str, Any] | None, asked: Any) -> str:
    """The metric to compute exact neighbours with: the index's, or ``asked`` (the search's
    ``metric_type``) when the field has no index reporting one. ``where`` is ``collection.field``."""
    indexed = (index or {}).get("metric_type")
    if asked:
        asked = check_metric(asked, "search_params metric_type")
    if asked and indexed and str(asked).upper() != str(indexed).upper():
        raise MilvusInputError(
            f"search_params metric_type {asked!r} differs from the index on {where}, built for "
            f"{indexed!r}; drop metric_type from search_params or rebuild the index."
        )
    if not (asked or indexed):
        raise MilvusInputError(f"{where} has no index reporting a metric; set search_params={{'metric_type': ...}} ({', '.join(METRICS)}).")
    return check_metric(indexed or asked, f"metric_type of {where}")


def check_sample(collection: str, rows: int, *, sample_size: int, top_k: int, max_rows: int) -> None:
    """Refuse a check the collection's size cannot serve (too big to stream, too small to sample)."""
    if rows > max_rows:
        raise MilvusInputError(
            f"Collection {collection!r} has {rows} rows, more than max_rows={max_rows}: the ground truth reads "
            "every vector (see docs/recall.md for its cost). Raise max_rows if the time is acceptable."
        )
    if sample_size > rows:
        raise MilvusInputError(f"sample_size={sample_size} is larger than collection {collection!r} ({rows} rows); use at most {rows} queries.")
    if top_k > rows:
        raise MilvusInputError(f"top_k={top_k} is larger than collection {collection!r} ({rows} rows).")


def index_text(index: Mapping[str, Any] | None) -> str:
    """One line for logs and errors: ``IVF_FLAT L2 {"nlist": 1024}``."""
    import json

    if not index:
        return "no index"
    return f"{index.get('index_type')} {index.get('metric_type') or ''} {json.dumps(index.get('params') or {})}".replace("  ", " ")


def as_matrix(vectors: Any, what: str = "vectors") -> np.ndarray:
    """A 2-D float64 array from lists of floats (what pymilvus returns) or an array."""
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise MilvusInputError(f"{what} must be a list of equally long float vectors, got shape {matrix.shape}.")
    return matrix


def metric_keys(queries: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """Keys (lower is nearer) of every vector for every query: shape (queries, vectors)."""
    import numpy as np

    if metric == "L2":
        # |q - x|^2 expanded: one matrix product instead of a (queries, vectors, dim) array.
        keys = (queries**2).sum(1)[:, None] + (vectors**2).sum(1)[None, :] - 2.0 * (queries @ vectors.T)
        return np.maximum(keys, 0.0)
    if metric == "IP":
        return -(queries @ vectors.T)
    if metric == "COSINE":
        return -(_unit(queries) @ _unit(vectors).T)
    raise MilvusInputError(f"metric {metric!r} is not one of {METRICS}")


def _unit(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0.0, 1.0, norms)  # a zero vector stays zero


class StreamingGroundTruth:
    """Exact top-k of a few queries over batches of (ids, vectors), in bounded memory.

    Memory is the queries, a (queries, k) table of the best keys and ids so far, and one
    batch at a time. The ANN results to score are given up front, so their exact keys are
    picked up as their vectors stream past (no second fetch).

    :param queries: (q, dim) query vectors.
    :param top_k: k of recall@k.
    :param metric: ``L2``, ``IP`` or ``COSINE``.
    :param ann_ids: per query, the ids the ANN search returned (may be fewer than k).
    """

    def __init__(self, queries: Any, top_k: int, metric: str, ann_ids: Sequence[Sequence[Hashable]]) -> None:
        import numpy as np

        self.queries = as_matrix(queries, "queries")
        self.metric = check_metric(metric)
        self.top_k = int(top_k)
        n = len(self.queries)
        if len(ann_ids) != n:
            raise ValueError(f"{len(ann_ids)} ANN result lists for {n} queries")
        self.best_keys = np.full((n, self.top_k), np.inf)
        self.best_ids = np.full((n, self.top_k), None, dtype=object)
        # Exact key of each ANN result; inf until its vector is seen (a missing slot is a miss).
        self.ann_keys = np.full((n, self.top_k), np.inf)
        self.ann_ids = [list(ids)[: self.top_k] for ids in ann_ids]
        self._slots: dict[Hashable, list[tuple[int, int]]] = {}
        for query, ids in enumerate(self.ann_ids):
            for slot, pk in enumerate(ids):
                self._slots.setdefault(pk, []).append((query, slot))
        self.rows = 0

    def add(self, ids: Sequence[Hashable], vectors: Any) -> None:
        """Fold one batch into the running top-k."""
        import numpy as np

        if not len(ids):
            return
        ids = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)  # plain ints: JSON-safe, hashable
        batch = as_matrix(vectors, "batch vectors")
        if len(batch) != len(ids):
            raise ValueError(f"{len(ids)} ids for {len(batch)} vectors")
        keys = metric_keys(self.queries, batch, self.metric)
        if self._slots:
            for column, pk in enumerate(ids):
                for query, slot in self._slots.get(pk, ()):
                    self.ann_keys[query, slot] = keys[query, column]
        self.rows += len(ids)
        # Only columns that beat some query's k-th best so far can enter a top-k: after the
        # first batches that is a handful, so the merge stays small.
        columns = np.flatnonzero((keys < self.best_keys.max(axis=1)[:, None]).any(axis=0))
        if not len(columns):
            return
        keys = keys[:, columns]
        batch_ids = np.empty(len(columns), dtype=object)
        batch_ids[:] = [ids[c] for c in columns]
        merged_keys = np.concatenate([self.best_keys, keys], axis=1)
        merged_ids = np.concatenate([self.best_ids, np.broadcast_to(batch_ids, keys.shape)], axis=1)
        keep = np.argpartition(merged_keys, self.top_k - 1, axis=1)[:, : self.top_k]
        self.best_keys = np.take_along_axis(merged_keys, keep, axis=1)
        self.best_ids = np.take_along_axis(merged_ids, keep, axis=1)

    def neighbours(self) -> list[list[Hashable]]:
        """The exact top-k ids of each query, nearest first."""
        import numpy as np

        order = np.argsort(self.best_keys, axis=1, kind="stable")
        ids = np.take_along_axis(self.best_ids, order, axis=1)
        keys = np.take_along_axis(self.best_keys, order, axis=1)
        return [[pk for pk, key in zip(row, krow) if np.isfinite(key)] for row, krow in zip(ids, keys)]

    def recalls(self) -> list[float]:
        """recall@k of each query: the share of its k ANN results that are true neighbours."""
        import numpy as np

        if self.rows < self.top_k:
            raise ValueError(f"only {self.rows} vectors streamed, fewer than top_k={self.top_k}")
        kth = self.best_keys.max(axis=1)
        scale = np.abs(kth) + (self.queries**2).sum(1) if self.metric != "COSINE" else np.abs(kth) + 1.0
        limit = kth + RELATIVE_TOLERANCE * scale
        hits = (self.ann_keys <= limit[:, None]).sum(axis=1)
        return [float(h) / self.top_k for h in hits]

    def ndcgs(self) -> list[float]:
        """VectorDBBench's nDCG@k of each query (see :mod:`airflow_milvus.quality.metrics`)."""
        from airflow_milvus.quality.metrics import ndcg_at_k

        return [ndcg_at_k(truth, got, self.top_k) for truth, got in zip(self.neighbours(), self.ann_ids)]

    def recalls_with_ties(self, epsilon: float = ANN_BENCHMARKS_EPSILON) -> list[float]:
        """ann-benchmarks' k-nn recall of each query: within ``epsilon`` of the k-th true distance."""
        from airflow_milvus.quality.metrics import (
            benchmark_distances,
            knn_recall_with_ties,
        )

        kth = benchmark_distances(self.best_keys.max(axis=1), self.metric)
        return knn_recall_with_ties(kth, benchmark_distances(self.ann_keys, self.metric), self.top_k, epsilon)
