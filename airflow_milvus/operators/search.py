"""Vector search and scalar query as tasks: JSON-safe results, bounded in size, for XCom."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow_milvus import lineage
from airflow_milvus.errors import MilvusInputError
from airflow_milvus.operators.base import MilvusBaseOperator
from airflow_milvus.planning.search import MAX_LIMIT, check_limit
from airflow_milvus.planning.validation import parse_params

DEFAULT_MAX_RESULT_BYTES = 1024 * 1024  # 1 MiB: XComs live in Airflow's metadata database


def check_result_size(result: Any, max_result_bytes: int, what: str) -> int:
    """The result's size as compact JSON; MilvusInputError when it exceeds the bound."""
    from airflow_milvus.planning.search import result_size

    size = result_size(result)
    if size > max_result_bytes:
        raise MilvusInputError(
            f"The result of {what} is {size} bytes as JSON, more than max_result_bytes={max_result_bytes}: "
            "nothing was pushed to XCom. Lower limit, ask for fewer output_fields (vectors are large), or raise "
            "max_result_bytes (XComs are stored in Airflow's database)."
        )
    return size


def _as_list(value: Any, what: str) -> list[Any] | None:
    """A list argument that a template may have rendered as JSON text."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise MilvusInputError(f"{what}={text[:60]!r} is not a valid JSON list.") from None
        else:
            value = [text]  # one name
    if not isinstance(value, (list, tuple)):
        raise MilvusInputError(f"{what}={value!r} is not a list of names.")
    return list(value)


class _MilvusReadOperator(MilvusBaseOperator):
    """What search and query share: the result conventions and the size bound."""

    bool_fields = ("include_vectors",)
    int_fields = {"limit": (1, MAX_LIMIT), "max_result_bytes": 1}
    template_fields_renderers = {"output_fields": "json", "partition_names": "json"}
    ui_color = "#e8f4ea"

    def coerce_int(self, name: str, value: Any, low: int, high: int | None) -> int:
        if name == "limit":  # the planner's wording, which names Milvus's bound
            return check_limit(value, name)
        return super().coerce_int(name, value, low, high)

    def _common(self) -> dict[str, Any]:
        return {
            "filter": self.filter or "",
            "output_fields": _as_list(self.output_fields, "output_fields"),
            "partition_names": _as_list(self.partition_names, "partition_names"),
            "consistency_level": self.consistency_level,
            "include_vectors": self.include_vectors,
        }


class MilvusSearchOperator(_MilvusReadOperator):
    """Search a collection (or an alias) for the nearest neighbours of query vectors.

    The request is checked before Milvus sees it, so a server and Milvus Lite refuse the same
    things: an unknown collection or field, a vector of the wrong dimension, a collection that
    is not loaded or whose vector fields are not indexed, a metric other than the index's, an
    unknown partition, a filter Milvus cannot evaluate. Each is a ``MilvusInputError`` naming
    the object and the fix; searching changes nothing either way.

    :param collection_name: the collection, or an alias of one (templated).
    :param data: the query vectors: a list of vectors (lists of numbers; ``bytes`` for a binary
        vector field, ``{index: value}`` dicts for a sparse one), an ``XComArg`` resolving to
        one, or its JSON text (templated).
    :param anns_field: the vector field to search; optional when the collection has one (templated).
    :param limit: hits per query vector, 1 to 16384 (templated).
    :param filter: a Milvus boolean expression the hits must match, e.g. ``"year > 2000"`` (templated).
    :param output_fields: fields to return in each hit's ``entity``; ``["*"]`` for every field;
        ``None`` returns ids and distances only (templated).
    :param search_params: as ``MilvusClient.search`` takes them, a dict or a JSON object, e.g.
        ``{"params": {"ef": 64}}`` (templated).
    :param partition_names: search only these partitions (templated).
    :param consistency_level: ``Strong``, ``Session``, ``Bounded`` or ``Eventually``; default the
        collection's (templated).
    :param include_vectors: return vector fields in ``entity`` (left out by default: they are
        large); a vector field named in ``output_fields`` needs it (templated).
    :param max_result_bytes: refuse a result larger than this as JSON, before anything is pushed
        to XCom (default 1 MiB) (templated).
    :return: one list per query vector, nearest first, of
        ``{"id": ..., "distance": float, "entity": {field: value}}``; only JSON types
        (numpy values, bytes and half-precision vectors converted).
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id", "collection_name", "data", "anns_field", "limit", "filter", "output_fields",
        "search_params", "partition_names", "consistency_level", "include_vectors", "max_result_bytes",
    )  # fmt: skip
    template_fields_renderers = {**_MilvusReadOperator.template_fields_renderers, "data": "json", "search_params": "json"}

    def __init__(
        self,
        *,
        collection_name: str,
        data: Any,
        anns_field: str | None = None,
        limit: int = 10,
        filter: str = "",
        output_fields: list[str] | None = None,
        search_params: dict[str, Any] | str | None = None,
        partition_names: list[str] | None = None,
        consistency_level: str | None = None,
        include_vectors: bool = False,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.data = data
        self.anns_field = anns_field
        self.limit = limit
        self.filter = filter
        self.output_fields = output_fields
        self.search_params = search_params
        self.partition_names = partition_names
        self.consistency_level = consistency_level
        self.include_vectors = include_vectors
        self.max_result_bytes = max_result_bytes

    def run(self, context) -> list[list[dict[str, Any]]]:
        common = self._common()
        search_params = parse_params(self.search_params, "search_params", example='{"params": {"ef": 64}}')
        result = self.hook.search(
            self.collection_name, self.data, anns_field=self.anns_field or None, limit=self.limit,
            search_params=search_params, **common,
        )  # fmt: skip
        size = check_result_size(result, self.max_result_bytes, f"the search of {self.collection_name!r}")
        self.log.info(
            "Search of %s: %d queries, %s hits, %d bytes", self.collection_name, len(result), [len(h) for h in result][:10], size
        )
        lineage.report(self.hook, input_collections=[self.collection_name])
        return result


class MilvusQueryOperator(_MilvusReadOperator):
    """Fetch the entities of a collection (or an alias) that match a scalar filter.

    Checked like :class:`MilvusSearchOperator` (same errors on a server and on Milvus Lite);
    a query without a filter needs a ``limit`` (a server refuses it otherwise).

    :param collection_name: the collection, or an alias of one (templated).
    :param filter: a Milvus boolean expression, e.g. ``"year > 2000 and title like 'A%'"`` (templated).
    :param output_fields: fields of each entity; ``None`` or ``["*"]`` for every field (vectors
        only with ``include_vectors``); ``["count(*)"]`` counts the matches. The primary key is
        always included (templated).
    :param limit: at most this many entities, 1 to 16384; ``None`` for every match (templated).
    :param partition_names: query only these partitions (templated).
    :param consistency_level: ``Strong``, ``Session``, ``Bounded`` or ``Eventually``; default the
        collection's (templated).
    :param include_vectors: return vector fields (left out by default) (templated).
    :param max_result_bytes: refuse a result larger than this as JSON, before anything is pushed
        to XCom (default 1 MiB) (templated).
    :return: a list of ``{field: value}`` dicts, JSON types only.
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id", "collection_name", "filter", "output_fields", "limit", "partition_names",
        "consistency_level", "include_vectors", "max_result_bytes",
    )  # fmt: skip
    optional_fields = ("limit",)

    def __init__(
        self,
        *,
        collection_name: str,
        filter: str = "",
        output_fields: list[str] | None = None,
        limit: int | None = None,
        partition_names: list[str] | None = None,
        consistency_level: str | None = None,
        include_vectors: bool = False,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.filter = filter
        self.output_fields = output_fields
        self.limit = limit
        self.partition_names = partition_names
        self.consistency_level = consistency_level
        self.include_vectors = include_vectors
        self.max_result_bytes = max_result_bytes

    def run(self, context) -> list[dict[str, Any]]:
        common = self._common()
        result = self.hook.query(self.collection_name, limit=self.limit, **common)
        size = check_result_size(result, self.max_result_bytes, f"the query of {self.collection_name!r}")
        self.log.info("Query of %s (filter %r): %d entities, %d bytes", self.collection_name, common["filter"], len(result), size)
        lineage.report(self.hook, input_collections=[self.collection_name])
        return result


__all__ = ["DEFAULT_MAX_RESULT_BYTES", "MilvusQueryOperator", "MilvusSearchOperator"]
