"""Recall gate: measure an index against exact search before it serves."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from airflow_milvus.compat import AirflowFailException
from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.operators.base import MilvusBaseOperator
from airflow_milvus.planning.validation import is_unset, parse_params, validate_name
from airflow_milvus.quality.recall import (
    check_sample,
    choose_metric,
    choose_vector_field,
    index_text,
    latency_summary,
    queries_per_second,
    summarize_recalls,
)

DEFAULT_MAX_ROWS = 1_000_000
MAX_TOP_K = 16384  # Milvus's limit on a search's topk


class MilvusRecallBelowThresholdError(MilvusProviderError, AirflowFailException):
    """Measured recall is below ``min_recall``. Not retried: a re-run measures the same."""


class MilvusRecallCheckOperator(MilvusBaseOperator):
    """Measure recall@k of a collection's vector index against exact brute-force search.

    Queries are ``sample_size`` vectors sampled (seeded) from the collection itself. Each is
    searched on its own through the index with ``search_params``, timed. The ground truth
    streams every vector of the collection page by page and keeps a running exact top-k per
    query (numpy), so memory stays at a page or two plus the queries. A result counts as a
    true neighbour when its exact distance is no worse than the k-th exact distance (within
    float32 rounding), so ties and duplicate vectors do not count as misses. ``ndcg`` and
    ``recall_ties`` are the same measurement in VectorDBBench's and ann-benchmarks' terms.

    The collection must be Loaded (Milvus searches only loaded collections); the check
    changes nothing, so it does not load it for you. Supports dense float vector fields
    with the L2, IP and COSINE metrics.

    :param collection_name: the collection, or an alias of it (templated).
    :param anns_field: the vector field; default the collection's only vector field (templated).
    :param top_k: k of recall@k (templated).
    :param sample_size: number of query vectors (templated). 100 queries give recall within
        about ±0.02 (one standard error) at recall 0.9; see docs/recall.md.
    :param search_params: as passed to ``MilvusClient.search``, e.g.
        ``{"params": {"ef": 64}}`` or ``{"metric_type": "L2", "params": {"nprobe": 16}}``;
        a dict or a JSON object string (templated).
    :param seed: seed of the query sample; the same seed on the same data picks the same
        queries (templated).
    :param min_recall: fail the task when recall is below it; None only measures (templated).
    :param max_rows: refuse collections with more rows than this, as the ground truth
        reads every vector (templated).
    :param batch_size: rows per query page while streaming the ground truth, at most 16384 (templated).
    :return: ``{"collection_name", "alias", "anns_field", "recall", "recall_stderr",
        "recall_min", "ndcg", "recall_ties", "passed", "min_recall", "top_k", "queries", "rows",
        "metric_type", "index", "search_params", "latency_ms": {"p50", "p95", "p99", "max"},
        "qps", "ground_truth_seconds", "seconds", "seed", "query_ids"}``. ``passed`` is True
        when there is no ``min_recall``; it gates on ``recall``. See docs/recall.md for which
        benchmark each number matches.
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id",
        "collection_name",
        "anns_field",
        "top_k",
        "sample_size",
        "search_params",
        "seed",
        "min_recall",
        "max_rows",
        "batch_size",
    )
    int_fields = {"top_k": (1, MAX_TOP_K), "sample_size": 1, "seed": 0, "max_rows": 1, "batch_size": (1, 16384)}
    template_fields_renderers = {"search_params": "json"}
    ui_color = "#e8f5e0"

    def __init__(
        self,
        *,
        collection_name: str,
        anns_field: str | None = None,
        top_k: int = 10,
        sample_size: int = 100,
        search_params: dict[str, Any] | str | None = None,
        seed: int = 0,
        min_recall: float | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        batch_size: int = 4096,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.anns_field = anns_field
        self.top_k = top_k
        self.sample_size = sample_size
        self.search_params = search_params
        self.seed = seed
        self.min_recall = min_recall
        self.max_rows = max_rows
        self.batch_size = batch_size

    # ------------------------------------------------------------------ inputs
    def coerce_rendered_fields(self) -> None:
        super().coerce_rendered_fields()
        if is_unset(self.min_recall):
            self.min_recall = None
            return
        try:
            self.min_recall = float(self.min_recall)
        except (TypeError, ValueError):
            raise MilvusInputError(f"{self.task_id}: min_recall = {self.min_recall!r} is not a number; give a value between 0 and 1, or None to only measure.") from None
        if not 0.0 <= self.min_recall <= 1.0:
            raise MilvusInputError(f"{self.task_id}: min_recall = {self.min_recall!r} is outside [0, 1]; recall@k is a share of the true top-k.")

    # ------------------------------------------------------------------ the check
    def run(self, context) -> dict[str, Any]:
        started = time.perf_counter()
        self.search_params = _parse_search_params(self.search_params)
        hook = self.hook
        given = validate_name(self.collection_name, "collection name")
        name = given if hook.has_collection(given) else hook.describe_alias(given)
        if name is None:
            raise MilvusInputError(f"Collection {given!r} does not exist; check the name or alias.")
        description = hook.describe_collection(name)
        name = description.get("collection_name") or name  # the collection behind an alias
        primary, field = choose_vector_field(name, description, self.anns_field)
        state = hook.get_load_state(name)
        if state != "Loaded":
            raise MilvusInputError(
                f"Collection {name!r} is {state}: Milvus searches only loaded collections. Load it first "
                "(MilvusLoadCollectionOperator or MilvusCreateIndexOperator(load=True)); the check changes nothing."
            )
        specs = hook.list_index_specs(name, field_name=field)
        index = specs[0] if specs else None
        if index:
            # Rows not indexed yet are searched exactly: the measurement would flatter the index.
            build = hook.index_build_status(name, index["index_name"])
            if build["state"] != "Finished" or build["pending_index_rows"]:
                raise MilvusInputError(
                    f"Index {index['index_name']!r} of {name!r} is {build['state']} with {build['pending_index_rows']} rows "
                    "pending: recall would be measured partly without it. Wait for the build first "
                    "(MilvusCreateIndexOperator waits by default, or MilvusIndexBuiltSensor)."
                )
        metric = choose_metric(f"{name}.{field}", index, self.search_params.get("metric_type"))
        rows = hook.count_rows(name)
        check_sample(name, rows, sample_size=self.sample_size, top_k=self.top_k, max_rows=self.max_rows)

        query_ids, queries = hook.sample_rows(name, primary=primary, field=field, positions=self._positions(rows))
        ann_ids, latencies = hook.search_vectors(
            name, queries, field=field, primary=primary, limit=self.top_k, search_params=self.search_params
        )
        from airflow_milvus.quality.recall import StreamingGroundTruth

        truth = StreamingGroundTruth(queries, self.top_k, metric, ann_ids)
        gt_started = time.perf_counter()
        for ids, vectors in hook.iterate_vectors(name, primary=primary, field=field, batch_size=self.batch_size):
            truth.add(ids, vectors)
        gt_seconds = time.perf_counter() - gt_started
        if truth.rows < rows:
            raise MilvusProviderError(f"Collection {name!r} streamed {truth.rows} rows, but counted {rows}: it changed during the check; re-run it.")

        stats = summarize_recalls(truth.recalls())
        passed = self.min_recall is None or stats["recall"] >= self.min_recall
        result = {
            "collection_name": name,
            "alias": given if given != name else None,
            "anns_field": field,
            **{k: round(v, 6) for k, v in stats.items()},
            "ndcg": round(_mean(truth.ndcgs()), 6),
            "recall_ties": round(_mean(truth.recalls_with_ties()), 6),
            "passed": passed,
            "min_recall": self.min_recall,
            "top_k": self.top_k,
            "queries": len(query_ids),
            "rows": truth.rows,
            "metric_type": metric,
            "index": index,
            "search_params": self.search_params,
            "latency_ms": latency_summary(latencies),
            "qps": queries_per_second(latencies),
            "ground_truth_seconds": round(gt_seconds, 3),
            "seconds": round(time.perf_counter() - started, 3),
            "seed": self.seed,
            "query_ids": query_ids,
        }
        self.log.info(
            "Recall@%d of %s.%s (%s, %s, search %s): %.4f ± %.4f over %d queries (worst %.2f), %d rows; "
            "nDCG %.4f, recall with ties %.4f; search latency p50 %.1f ms, p99 %.1f ms, %.1f qps; ground truth %.1f s",
            self.top_k, name, field, index_text(index), metric, self.search_params, stats["recall"],
            stats["recall_stderr"], len(query_ids), stats["recall_min"], truth.rows, result["ndcg"],
            result["recall_ties"], result["latency_ms"]["p50"], result["latency_ms"]["p99"], result["qps"], gt_seconds,
        )  # fmt: skip
        if not passed:
            raise MilvusRecallBelowThresholdError(
                f"Recall@{self.top_k} of {name}.{field} is {stats['recall']:.4f} (± {stats['recall_stderr']:.4f} over "
                f"{len(query_ids)} queries), below min_recall={self.min_recall}. Index: {index_text(index)}; "
                f"search_params: {json.dumps(self.search_params)}. Raise the build or search parameters "
                "(e.g. nprobe, ef), or lower min_recall if this quality is acceptable."
            )
        return result

    def _positions(self, rows: int) -> list[int]:
        """Seeded, sorted positions of the query rows in the key stream."""
        import numpy as np

        return np.sort(np.random.default_rng(self.seed).choice(rows, self.sample_size, replace=False)).tolist()


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _parse_search_params(value: Any) -> dict[str, Any]:
    return parse_params(value, "search_params", example='{"params": {"nprobe": 16}}')


__all__ = ["DEFAULT_MAX_ROWS", "MilvusRecallBelowThresholdError", "MilvusRecallCheckOperator"]
