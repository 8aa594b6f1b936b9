"""Search and query wrappers of :class:`~airflow_milvus.hooks.milvus.MilvusHook`, and the pure
functions they rest on: the request checks and the JSON-safe conversion of results.

Milvus Lite and a server disagree on bad requests: Lite searches an unloaded or unindexed
collection, ignores unknown output fields, partitions and metric mismatches, accepts any
``limit``, and answers a vector of the wrong dimension with an empty code-1 error (which
looks transient). So every request is checked against the collection's description, its
indexes and its load state first, and both flavours refuse the same things with the same
:class:`MilvusInputError`; only what passes reaches Milvus.

pymilvus and numpy are imported inside functions only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.hooks.retry import error_message, is_transient
from airflow_milvus.planning.validation import validate_name

MAX_LIMIT = 16384  # Milvus's bound on a search's topk and a query's result window
CONSISTENCY_LEVELS = ("Strong", "Session", "Bounded", "Eventually")
_FLOAT_KINDS = ("FLOAT_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR", "INT8_VECTOR")


# ---------------------------------------------------------------------------- JSON safety
def json_safe(value: Any, kind: str | None = None) -> Any:
    """``value`` as plain JSON types: numpy scalars and arrays, bytes, tuples, sets and
    non-string dict keys converted, recursively.

    ``kind`` is the Milvus type of the field the value came from; it decides what bytes mean.
    ``FLOAT16_VECTOR`` and ``BFLOAT16_VECTOR`` bytes (or numpy arrays) become lists of floats;
    other bytes (``BINARY_VECTOR``'s packed bits) become lists of ints 0-255. A list of byte
    strings (how pymilvus returns one binary or half-precision vector) is joined first.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(value), kind)
    if isinstance(value, Mapping):
        return {str(json_safe(k)) if not isinstance(k, str) else k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if items and all(isinstance(i, (bytes, bytearray, memoryview)) for i in items):
            return _decode_bytes(b"".join(bytes(i) for i in items), kind)
        return [json_safe(v, kind) if isinstance(v, (list, tuple)) else json_safe(v) for v in items]
    module = type(value).__module__ or ""
    if module.startswith(("numpy", "ml_dtypes")):
        return _from_numpy(value)
    if hasattr(value, "tolist"):  # array-likes (e.g. a pymilvus vector view)
        return json_safe(value.tolist(), kind)
    if hasattr(value, "items"):  # pymilvus's dict-like hits and rows
        return json_safe(dict(value.items()), kind)
    raise TypeError(f"{type(value).__name__} {value!r:.80} has no JSON form")


def _from_numpy(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" or value.dtype.name == "bfloat16":
            return [json_safe(v) for v in value.astype(np.float64).tolist()]
        if value.dtype.kind in "V":  # raw bytes
            return list(value.tobytes())
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        if value.dtype.name == "bfloat16":
            return float(np.float32(value))
        return json_safe(value.item())
    raise TypeError(f"{type(value).__name__} {value!r:.80} has no JSON form")


def _decode_bytes(raw: bytes, kind: str | None) -> list[Any]:
    import numpy as np

    if kind == "FLOAT16_VECTOR":
        return np.frombuffer(raw, dtype="<f2").astype(np.float64).tolist()
    if kind == "BFLOAT16_VECTOR":  # the high half of a float32
        halves = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return halves.view(np.float32).astype(np.float64).tolist()
    return list(raw)


def result_size(result: Any) -> int:
    """Bytes of ``result`` as compact JSON (what an XCom of it roughly costs)."""
    return len(json.dumps(result, separators=(",", ":")).encode())


# ---------------------------------------------------------------------------- request checks
@dataclass
class Request:
    """A checked search or query: what to ask Milvus and which fields to keep."""

    collection: str  # the collection itself (an alias resolved)
    primary: str
    kinds: dict[str, str]  # field -> Milvus type name
    request_fields: list[str]  # what Milvus is asked for
    keep: set[str] | None  # fields kept in a hit's entity / a row; None: all but unwanted vectors
    drop: set[str] = field(default_factory=set)  # vector fields left out
    anns_field: str | None = None
    data: list[Any] | None = None


def _kind(f: Mapping[str, Any]) -> str:
    return getattr(f["type"], "name", str(f["type"])).upper()


def check_request(
    description: Mapping[str, Any],
    *,
    search: bool,
    output_fields: Any,
    include_vectors: bool,
    data: Any = None,
    anns_field: str | None = None,
) -> Request:
    """Check a request against ``describe_collection``'s answer; raise MilvusInputError naming
    the field or vector and the fix. Pure: no Milvus calls."""
    name = description["collection_name"]
    fields = description["fields"]
    kinds = {f["name"]: _kind(f) for f in fields}
    primary = next(f["name"] for f in fields if f.get("is_primary"))
    vectors = [n for n, k in kinds.items() if "VECTOR" in k]
    dynamic = bool(description.get("enable_dynamic_field"))
    listing = ", ".join(kinds)

    if output_fields is None:
        wanted: list[str] = []
    elif isinstance(output_fields, str) or not isinstance(output_fields, (list, tuple)):
        raise MilvusInputError(f"output_fields={output_fields!r} is not a list: give a list of field names, e.g. ['{primary}'] or ['*'].")
    else:
        wanted = list(output_fields)
    for item in wanted:
        if not isinstance(item, str) or not item:
            raise MilvusInputError(f"output_fields entry {item!r} is not a field name; the fields of {name!r} are {listing}.")
        if item in ("*", "count(*)") or item in kinds:
            if item == "count(*)" and search:
                raise MilvusInputError("output_fields 'count(*)' works in a query, not in a search; use MilvusQueryOperator.")
            continue
        if not dynamic:
            raise MilvusInputError(f"Collection {name!r} has no field {item!r} (output_fields); its fields are {listing}.")
    named_vectors = [v for v in wanted if v in vectors]
    if named_vectors and not include_vectors:
        raise MilvusInputError(
            f"output_fields names vector field(s) {', '.join(named_vectors)} of {name!r}, which results leave out "
            "by default (they are large). Set include_vectors=True to return them, or drop them from output_fields."
        )
    drop = set() if include_vectors else set(vectors)

    if search:
        field_name = _check_anns_field(name, kinds, vectors, anns_field)
        checked = check_vectors(name, field_name, kinds[field_name], _field_dim(fields, field_name), data)
    else:
        field_name, checked = None, None

    if "*" in wanted or (not search and not wanted):  # a query's default is every field
        scalars = [n for n in kinds if n not in drop]
        request_fields = ["*"] if dynamic else scalars
        keep = None
    elif wanted:
        request_fields, keep = wanted, set(wanted)
    else:  # a search's default: ids and distances (Lite would send every field for [] or None)
        request_fields, keep = [primary], set()
    return Request(name, primary, kinds, request_fields, keep, drop, field_name, checked)


def _check_anns_field(name: str, kinds: Mapping[str, str], vectors: list[str], anns_field: Any) -> str:
    if anns_field in (None, ""):
        if len(vectors) != 1:
            raise MilvusInputError(
                f"Collection {name!r} has {len(vectors)} vector fields ({', '.join(vectors) or 'none'}); "
                "set anns_field to the one to search."
            )
        return vectors[0]
    field_name = validate_name(anns_field, "anns_field")
    if field_name not in kinds:
        raise MilvusInputError(f"Collection {name!r} has no field {field_name!r} (anns_field); its vector fields are {', '.join(vectors) or 'none'}.")
    if field_name not in vectors:
        raise MilvusInputError(
            f"Field {field_name!r} of {name!r} is {kinds[field_name]}, not a vector field: set anns_field to "
            f"one of {', '.join(vectors) or 'none'}."
        )
    return field_name


def _field_dim(fields: Sequence[Mapping[str, Any]], field_name: str) -> int | None:
    params = next(f for f in fields if f["name"] == field_name).get("params") or {}
    dim = params.get("dim")
    return int(dim) if dim not in (None, "") else None


def check_vectors(name: str, field_name: str, kind: str, dim: int | None, data: Any) -> list[Any]:
    """The query vectors as pymilvus takes them, or MilvusInputError naming the bad one."""
    where = f"{name}.{field_name}"
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            raise MilvusInputError(f"data {data[:60]!r} is text but not JSON: give a list of query vectors.") from None
    if hasattr(data, "tolist") and not isinstance(data, (list, tuple)):
        data = data.tolist()
    if not isinstance(data, (list, tuple)) or not data:
        raise MilvusInputError(f"data must be a non-empty list of query vectors for {where} ({kind}, dim {dim}); got {type(data).__name__} {data!r:.60}.")
    if kind in _FLOAT_KINDS and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
        raise MilvusInputError(f"data is one vector, not a list of vectors: wrap it, data=[vector] (one query on {where}).")
    out = []
    for number, vector in enumerate(data):
        if hasattr(vector, "tolist") and not isinstance(vector, (bytes, list)):
            vector = vector.tolist()
        if kind in _FLOAT_KINDS:
            if not isinstance(vector, (list, tuple)) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector):
                raise MilvusInputError(f"data[{number}] is not a list of numbers ({type(vector).__name__} {vector!r:.60}); {where} is {kind}.")
            if dim is not None and len(vector) != dim:
                raise MilvusInputError(
                    f"data[{number}] has dimension {len(vector)}, but {where} is {kind} of dimension {dim}: "
                    f"give vectors of {dim} numbers (embedded with the model the collection was built with)."
                )
            out.append(_typed(list(vector), kind))
        elif kind == "BINARY_VECTOR":
            raw = bytes(vector) if isinstance(vector, (bytes, bytearray, list)) else None
            if raw is None or (dim is not None and len(raw) * 8 != dim):
                raise MilvusInputError(f"data[{number}] must be {dim // 8 if dim else '?'} bytes (packed bits) for {where} (BINARY_VECTOR, dim {dim}).")
            out.append(raw)
        else:  # sparse vectors: {index: value}
            if not isinstance(vector, Mapping):
                raise MilvusInputError(f"data[{number}] must be a dict {{index: value}} for {where} ({kind}).")
            out.append({int(k): float(v) for k, v in vector.items()})
    return out


def _typed(vector: list[float], kind: str) -> Any:
    if kind == "FLOAT_VECTOR":
        return [float(x) for x in vector]
    import numpy as np

    if kind == "FLOAT16_VECTOR":
        return np.asarray(vector, dtype=np.float16)
    if kind == "INT8_VECTOR":
        return np.asarray(vector, dtype=np.int8)
    try:
        from ml_dtypes import bfloat16
    except ImportError:  # pymilvus also takes the raw little-endian bytes
        floats = np.asarray(vector, dtype=np.float32).view(np.uint32)
        return (floats >> 16).astype("<u2").tobytes()
    return np.asarray(vector, dtype=bfloat16)


def check_limit(limit: Any, what: str = "limit") -> int:
    try:
        number = int(str(limit).strip()) if not isinstance(limit, int) else limit
    except (TypeError, ValueError):
        raise MilvusInputError(f"{what}={limit!r} is not a whole number.") from None
    if isinstance(number, bool) or not 1 <= number <= MAX_LIMIT:
        raise MilvusInputError(f"{what}={limit!r} must be between 1 and {MAX_LIMIT} (Milvus's bound).")
    return number


def check_consistency(level: Any) -> str | None:
    if level in (None, ""):
        return None
    for known in CONSISTENCY_LEVELS:
        if str(level).strip().lower() == known.lower():
            return known
    raise MilvusInputError(f"consistency_level={level!r} is not one of {', '.join(CONSISTENCY_LEVELS)}.")


def shape_entity(entity: Mapping[str, Any], request: Request) -> dict[str, Any]:
    """One hit's entity or one row, with exactly the fields asked for, JSON-safe."""
    return {
        k: json_safe(v, request.kinds.get(k))
        for k, v in entity.items()
        if k not in request.drop and (request.keep is None or k in request.keep)
    }


def shape_hits(raw: Any, request: Request) -> list[list[dict[str, Any]]]:
    """pymilvus's search result as one list per query of ``{"id", "distance", "entity"}``."""
    return [
        [
            {"id": json_safe(hit["id"]), "distance": json_safe(hit["distance"]), "entity": shape_entity(hit.get("entity") or {}, request)}
            for hit in hits
        ]
        for hits in raw
    ]


# ---------------------------------------------------------------------------- the wrappers
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
