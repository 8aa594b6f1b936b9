"""Search and query wrappers of :class:`~airflow_milvus.hooks.milvus.MilvusHook`.

Milvus Lite and a server disagree on bad requests: Lite searches an unloaded or unindexed
collection, ignores unknown output fields, partitions and metric mismatches, accepts any
``limit``, and answers a vector of the wrong dimension with an empty code-1 error (which
looks transient). So every request is checked against the collection's description, its
indexes and its load state first (:mod:`airflow_milvus.planning.search`), and both flavours
refuse the same things with the same :class:`MilvusInputError`; only what passes reaches Milvus.

pymilvus is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.hooks.retry import error_message, is_transient
from airflow_milvus.planning.search import (
    Request,
    check_consistency,
    check_limit,
    check_request,
    json_safe,
    result_size,
    shape_entity,
    shape_hits,
)
from airflow_milvus.planning.validation import validate_name


class MilvusSearchMixin:
    """Mixed into ``MilvusHook``: uses its ``call``, ``_kw``, ``redact`` and collection and index wrappers.

    ``search`` and ``query`` check the request first (see the module's docstring), call Milvus
    under the retry policy, and return JSON-safe results. A request Milvus still rejects raises
    :class:`MilvusInputError` with Milvus's message; a rejected filter is named as such.
    """

    def search(
        self,
        collection_name: str,
        data: Any,
        *,
        anns_field: str | None = None,
        limit: int = 10,
        filter: str = "",
        output_fields: list[str] | None = None,
        search_params: Mapping[str, Any] | None = None,
        partition_names: list[str] | None = None,
        consistency_level: str | None = None,
        include_vectors: bool = False,
    ) -> list[list[dict[str, Any]]]:
        """One list per query vector of ``{"id", "distance", "entity"}`` hits, nearest first.

        ``collection_name`` may be an alias. ``entity`` holds ``output_fields`` (``["*"]``: every
        field); vector fields only with ``include_vectors``."""
        limit = check_limit(limit)
        description = self.searchable_collection(collection_name)
        request = check_request(
            description, search=True, output_fields=output_fields, include_vectors=include_vectors,
            data=data, anns_field=anns_field,
        )  # fmt: skip
        self._check_serving(request, search_params, partition_names)
        kwargs = self._common_kwargs(filter, partition_names, consistency_level)
        raw = self._run(
            request, f"search({request.collection}.{request.anns_field}, {len(request.data or [])} vectors)", filter,
            lambda c: c.search(
                request.collection, data=request.data, anns_field=request.anns_field, limit=limit,
                output_fields=request.request_fields, search_params=dict(search_params or {}), **kwargs,
            ),
        )  # fmt: skip
        return shape_hits(raw, request)

    def query(
        self,
        collection_name: str,
        *,
        filter: str = "",
        output_fields: list[str] | None = None,
        limit: int | None = None,
        partition_names: list[str] | None = None,
        consistency_level: str | None = None,
        include_vectors: bool = False,
    ) -> list[dict[str, Any]]:
        """The entities matching ``filter`` (at most ``limit``) as JSON-safe dicts.

        ``output_fields`` None or ``["*"]``: every field (vectors only with ``include_vectors``);
        the primary key is always included, as Milvus does."""
        limit = None if limit in (None, "") else check_limit(limit)
        if not (filter or "").strip() and limit is None:
            raise MilvusInputError(
                f"A query of {collection_name!r} without a filter needs a limit: set limit, or a filter such as 'id >= 0'."
            )
        description = self.searchable_collection(collection_name)
        request = check_request(description, search=False, output_fields=output_fields, include_vectors=include_vectors)
        request.keep = None if request.keep is None else request.keep | {request.primary}
        self._check_serving(request, None, partition_names)
        kwargs = self._common_kwargs(filter, partition_names, consistency_level)
        if limit is not None:
            kwargs["limit"] = limit
        raw = self._run(
            request, f"query({request.collection})", filter,
            lambda c: c.query(request.collection, output_fields=request.request_fields, **kwargs),
        )  # fmt: skip
        return [shape_entity(row, request) for row in raw]

    def list_partitions(self, collection_name: str) -> list[str]:
        return list(self.call(f"list_partitions({collection_name})", lambda c: c.list_partitions(collection_name, **self._kw)))

    def searchable_collection(self, collection_name: str) -> dict[str, Any]:
        """``describe_collection`` of a collection or alias; MilvusInputError if neither exists."""
        from pymilvus import MilvusException

        validate_name(collection_name, "collection name")
        try:
            return self.describe_collection(collection_name)
        except MilvusException as exc:
            message = error_message(exc).lower()
            if getattr(exc, "code", None) == 100 or "not found" in message or "not exist" in message:
                raise MilvusInputError(
                    f"Collection {collection_name!r} does not exist in {self.redact(self.uri)} (no collection or alias "
                    "of that name). Check the name (and db_name)."
                ) from None
            raise

    def _check_serving(self, request: Request, search_params: Mapping[str, Any] | None, partition_names: Any) -> None:
        """What a server refuses and Milvus Lite lets through: no index, not loaded, a metric
        other than the index's, unknown partitions."""
        name = request.collection
        specs = {s["field_name"]: s for s in self.list_index_specs(name)}
        unindexed = [f for f, kind in request.kinds.items() if "VECTOR" in kind and f not in specs]
        if unindexed:
            raise MilvusInputError(
                f"Vector field(s) {', '.join(unindexed)} of {name!r} have no index: Milvus serves only a collection "
                "whose vector fields are all indexed and that is loaded. Create the index (MilvusCreateIndexOperator), "
                "then load the collection."
            )
        state = self.get_load_state(name)
        if state != "Loaded":
            raise MilvusInputError(
                f"Collection {name!r} is {state}: Milvus searches and queries only loaded collections. Load it first "
                "(MilvusLoadCollectionOperator, or MilvusCreateIndexOperator(load=True))."
            )
        asked = (search_params or {}).get("metric_type")
        indexed = specs[request.anns_field].get("metric_type") if request.anns_field else None
        if asked and indexed and str(asked).upper() != str(indexed).upper():
            raise MilvusInputError(
                f"search_params metric_type {asked!r} differs from the index on {name}.{request.anns_field}, built for "
                f"{indexed!r}: drop metric_type from search_params (or rebuild the index with {asked!r})."
            )
        if partition_names:
            if isinstance(partition_names, str) or not isinstance(partition_names, (list, tuple)):
                raise MilvusInputError(f"partition_names={partition_names!r} is not a list: give a list of partition names.")
            existing = self.list_partitions(name)
            unknown = [p for p in partition_names if p not in existing]
            if unknown:
                raise MilvusInputError(
                    f"Collection {name!r} has no partition {', '.join(map(repr, unknown))}; its partitions are {', '.join(existing)}."
                )

    def _common_kwargs(self, filter: Any, partition_names: Any, consistency_level: Any) -> dict[str, Any]:
        if filter is not None and not isinstance(filter, str):
            raise MilvusInputError(f"filter={filter!r} is not a string: give a Milvus boolean expression such as 'year > 2000'.")
        kwargs: dict[str, Any] = {"filter": filter or "", "timeout": self.timeout}
        if partition_names:
            kwargs["partition_names"] = list(partition_names)
        level = check_consistency(consistency_level)
        if level:
            kwargs["consistency_level"] = level
        return kwargs

    def _run(self, request: Request, what: str, filter: str, fn) -> Any:
        """``fn`` under the retry policy; what Milvus rejects becomes MilvusInputError, and a
        filter Milvus cannot evaluate is named (one probe query, only after a failure)."""
        from pymilvus import MilvusException

        try:
            return self.call(what, fn)
        except MilvusException as exc:
            if is_transient(exc):
                raise
            detail = " ".join(self.redact(error_message(exc)).split())
        reason = self._filter_error(request, filter) if filter else None
        if reason:
            raise MilvusInputError(
                f"Milvus rejected filter {filter!r} on {request.collection!r}: {reason}. Fix the expression "
                f"(Milvus boolean expression syntax; the fields are {', '.join(request.kinds)})."
            )
        raise MilvusInputError(f"Milvus rejected {what} on {request.collection!r}: {detail}. Check the arguments.")

    def _filter_error(self, request: Request, filter: str) -> str | None:
        from pymilvus import MilvusException

        try:
            self.call(
                f"query({request.collection}, filter check)",
                lambda c: c.query(request.collection, filter=filter, limit=1, output_fields=[request.primary], timeout=self.timeout),
            )
        except MilvusException as exc:
            return " ".join(self.redact(error_message(exc)).split()) or "no reason given"  # Lite: several lines
        return None

__all__ = ["MilvusSearchMixin", "Request", "check_request", "json_safe", "result_size", "shape_hits"]
