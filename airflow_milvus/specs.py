"""Index specs: plain JSON-safe dicts that describe an index well enough to rebuild it.

Pure functions only (no Milvus calls), so operators, the CLI and tests share one
definition of what a valid spec, name or parameter set is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_milvus.errors import MilvusInputError

SPEC_KEYS = ("collection_name", "field_name", "index_name", "index_type", "metric_type", "params")
# Keys of describe_index that are build status or identity, not build parameters.
_STATUS_KEYS = {
    "index_type",
    "metric_type",
    "field_name",
    "index_name",
    "total_rows",
    "indexed_rows",
    "pending_index_rows",
    "state",
    "index_state_fail_reason",
    "fail_reason",
    "params",
    "mmap.enabled",
}
VECTOR_INDEX_TYPES = frozenset(
    {
        "FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "IVF_RABITQ", "HNSW", "HNSW_SQ", "HNSW_PQ",
        "HNSW_PRQ", "DISKANN", "SCANN", "AUTOINDEX", "GPU_CAGRA", "GPU_IVF_FLAT", "GPU_IVF_PQ",
        "GPU_BRUTE_FORCE", "BIN_FLAT", "BIN_IVF_FLAT", "SPARSE_INVERTED_INDEX", "SPARSE_WAND",
        "MINHASH_LSH",
    }
)  # fmt: skip
SCALAR_INDEX_TYPES = frozenset(
    {"INVERTED", "STL_SORT", "Trie", "TRIE", "BITMAP", "NGRAM", "RTREE", "AUTOINDEX"}
)
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_NAME_LENGTH = 255
GLOB_CHARS = frozenset("*?[")


def validate_name(value: Any, what: str) -> str:
    """Return ``value`` if it is a valid Milvus collection/field/index name, else raise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MilvusInputError(f"{what} is empty: give the name of an existing {what.split()[0]}.")
    if not isinstance(value, str):
        raise MilvusInputError(
            f"{what} must be a string, got {type(value).__name__} {value!r}; "
            "check the template or XCom that provides it."
        )
    if len(value) > MAX_NAME_LENGTH:
        raise MilvusInputError(
            f"{what} {value[:40]!r}… is {len(value)} characters long; Milvus allows at most "
            f"{MAX_NAME_LENGTH}."
        )
    if not _NAME_RE.match(value):
        raise MilvusInputError(
            f"{what} {value!r} is not a valid Milvus name: use letters, digits and underscores, "
            "starting with a letter or underscore."
        )
    return value


def is_glob(name: str) -> bool:
    return any(c in GLOB_CHARS for c in name)


def parse_params(params: Any, what: str = "params", example: str = '{"M": 16, "efConstruction": 200}') -> dict[str, Any]:
    """Params (index build params by default) from a dict or a JSON object string."""
    if params is None or params == "":
        return {}
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError as exc:
            raise MilvusInputError(
                f"{what} {params!r} is not valid JSON ({exc.msg} at char {exc.pos}); "
                f"write it as a JSON object, e.g. {example}."
            ) from None
    if not isinstance(params, Mapping):
        raise MilvusInputError(
            f"{what} must be a dict or a JSON object, got {type(params).__name__} {params!r}."
        )
    return {str(k): v for k, v in params.items()}


def _coerce(value: Any) -> Any:
    """describe_index returns every parameter as a string; restore numbers and booleans."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (json.JSONDecodeError, ValueError):
            return value
        if isinstance(parsed, (int, float, bool, dict, list)):
            return parsed
    return value


def spec_from_description(collection_name: str, description: Mapping[str, Any]) -> dict[str, Any]:
    """Build a spec from what ``MilvusClient.describe_index`` returns (server or Lite)."""
    params: dict[str, Any] = {}
    nested = description.get("params")
    if isinstance(nested, str):
        nested = _coerce(nested)
    if isinstance(nested, Mapping):
        params.update({k: _coerce(v) for k, v in nested.items() if k not in _STATUS_KEYS})
    params.update({k: _coerce(v) for k, v in description.items() if k not in _STATUS_KEYS})
    if isinstance(params.get("params"), Mapping):  # some servers nest build params twice
        params.update(params.pop("params"))
    metric = description.get("metric_type") or None
    if metric in ("NONE", ""):
        metric = None
    return {
        "collection_name": collection_name,
        "field_name": description.get("field_name"),
        "index_name": description.get("index_name"),
        "index_type": description.get("index_type"),
        "metric_type": metric,
        "params": params,
    }


def is_vector_field(field: Mapping[str, Any]) -> bool:
    """Whether a field of ``describe_collection`` holds vectors (dense, sparse or binary)."""
    return "VECTOR" in getattr(field["type"], "name", str(field["type"])).upper()


def is_vector_spec(spec: Mapping[str, Any]) -> bool:
    index_type = str(spec.get("index_type") or "")
    if spec.get("metric_type"):
        return True
    return index_type.upper() in VECTOR_INDEX_TYPES and index_type.upper() != "AUTOINDEX"


def normalize_spec(raw: Any, position: str = "index spec") -> dict[str, Any]:
    """Check a spec from a user, a template or an XCom, and return a clean copy."""
    if not isinstance(raw, Mapping):
        raise MilvusInputError(
            f"{position} must be a dict with keys {', '.join(SPEC_KEYS)}; got "
            f"{type(raw).__name__} {str(raw)[:80]!r}."
        )
    missing = [k for k in ("collection_name", "field_name", "index_type") if not raw.get(k)]
    if missing:
        raise MilvusInputError(
            f"{position} {dict(raw)!r} lacks {', '.join(missing)}; pass the drop operator's "
            "return value or specs with at least collection_name, field_name and index_type."
        )
    spec = {
        "collection_name": validate_name(raw["collection_name"], f"{position}: collection_name"),
        "field_name": validate_name(raw["field_name"], f"{position}: field_name"),
        "index_name": raw.get("index_name") or None,
        "index_type": raw["index_type"],
        "metric_type": raw.get("metric_type") or None,
        "params": parse_params(raw.get("params"), f"{position}: params"),
    }
    if spec["index_name"] is not None:
        validate_name(spec["index_name"], f"{position}: index_name")
    for key in ("index_type", "metric_type"):
        if spec[key] is not None and not isinstance(spec[key], str):
            raise MilvusInputError(
                f"{position}: {key} must be a string, got {type(spec[key]).__name__} {spec[key]!r}."
            )
    return spec


def specs_from_input(index_specs: Any) -> list[dict[str, Any]]:
    """Accept a list of specs, one spec, or a drop operator's result dict."""
    if isinstance(index_specs, str):
        try:
            index_specs = json.loads(index_specs)
        except json.JSONDecodeError:
            raise MilvusInputError(
                f"index_specs {index_specs[:80]!r} is a string that is not JSON; pass a list of "
                "specs or the drop operator's output (index_specs=drop.output)."
            ) from None
    if isinstance(index_specs, Mapping) and "dropped" in index_specs:
        dropped = index_specs.get("dropped")
        pending = index_specs.get("pending_rebuild") or []
        if not isinstance(dropped, list) or not isinstance(pending, list):
            raise MilvusInputError(
                "index_specs looks like a drop result but its 'dropped' is not a list; pass "
                "the drop operator's output unchanged."
            )
        index_specs = dropped + pending
    elif isinstance(index_specs, Mapping):
        index_specs = [index_specs]
    if not isinstance(index_specs, list):
        raise MilvusInputError(
            f"index_specs must be a list of specs or a drop result, got {type(index_specs).__name__}."
        )
    specs = [normalize_spec(s, f"index_specs[{i}]") for i, s in enumerate(index_specs)]
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for spec in specs:
        unique.setdefault((spec["collection_name"], spec["field_name"]), spec)
    return list(unique.values())


def same_index(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when ``existing`` already is the index ``wanted`` asks for.

    Params are compared only where the server reports them (Milvus Lite reports none).
    """
    if str(existing.get("index_type") or "").upper() != str(wanted.get("index_type") or "").upper():
        return False
    if (existing.get("metric_type") or None) != (wanted.get("metric_type") or None):
        return False
    have = existing.get("params") or {}
    want = wanted.get("params") or {}
    if not have:
        return True
    return all(_coerce(have.get(k)) == _coerce(v) for k, v in want.items())


def parse_version(version: str) -> tuple[int, ...]:
    """'v2.3.5-lite' -> (2, 3, 5); 'milvus_lite-3.2.2' -> (0,), unknown."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    if not match:
        return (0,)
    return tuple(int(p) for p in match.groups() if p is not None)


def is_lite_version(version: str) -> bool:
    return (version or "").startswith("milvus_lite")


def needs_release(specs: Iterable[Mapping[str, Any]], load_state: str, server_version: str) -> bool:
    """Whether the collection must be released before ``specs`` can be dropped.

    Milvus before 2.6 (and Milvus Lite) refuses any index drop on a loaded collection.
    Milvus 2.6 relaxed this for scalar indexes; vector indexes still need a release.
    """
    if load_state not in ("Loaded", "Loading"):
        return False
    specs = list(specs)
    if not specs:
        return False
    if is_lite_version(server_version) or parse_version(server_version) < (2, 6):
        return True
    return any(is_vector_spec(s) for s in specs)


def build_outcome(status: Mapping[str, Any]) -> str:
    """'done', 'failed', 'missing' or 'pending' for an ``index_build_status`` dict.

    A build is done only when Milvus says Finished *and* no rows are pending.
    """
    state = status.get("state")
    if state == "NotExist":
        return "missing"
    if state == "Failed":
        return "failed"
    if state == "Finished" and int(status.get("pending_index_rows") or 0) == 0:
        return "done"
    return "pending"


def as_bool(value: Any, what: str) -> bool:
    """A real bool from a bool or a string (templates and the UI render booleans as text)."""
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise MilvusInputError(f"{what} = {value!r} is not a boolean; use true or false.")


def as_seconds(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MilvusInputError(f"{what} = {value!r} is not a number of seconds.") from None
    if number <= 0:
        raise MilvusInputError(f"{what} = {value!r} must be greater than 0 seconds.")
    return number
