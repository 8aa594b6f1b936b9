"""Search and query requests and results: pure checks and JSON-safe shaping.

Milvus Lite and a server disagree on bad requests (see :mod:`airflow_milvus.hooks.search`), so
every request is checked here against the collection's description first, and both flavours
refuse the same things with the same :class:`MilvusInputError`. Results are made JSON-safe for
XCom: numpy scalars, bytes and half-precision vectors converted. numpy is imported inside
functions only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_milvus.errors import MilvusInputError
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
