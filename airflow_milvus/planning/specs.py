"""The index spec model: plain JSON-safe dicts that describe an index well enough to rebuild it.

Pure functions only (no Milvus calls): reading a spec from ``describe_index``, checking one
from a user or an XCom, comparing an existing index with a wanted one, and the key-value pairs
that rebuild an index in the layout the server stored it in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_milvus.errors import Fix, MilvusInputError
from airflow_milvus.planning.validation import (
    parse_params,
    validate_name,
    validate_stored_name,
)

Spec = dict[str, Any]
LOADED_STATES = ("Loaded", "Loading")
SPEC_KEYS = ("collection_name", "field_name", "index_name", "index_type", "metric_type", "params")
# Optional spec key: the index's key-value pairs exactly as the server stored them (all strings).
# Clients store build params differently: the pymilvus ORM and the Node SDK as one JSON string
# under "params", MilvusClient as flat keys; a rebuild sends the pairs back as they were, so
# every client reads back what it read before.
STORED_KEY = "stored_params"
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
    STORED_KEY,
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

def describe_specs(specs: Iterable[Mapping[str, Any]]) -> str:
    """'name on field (TYPE), ...' for logs and errors."""
    return ", ".join(f"{s['index_name']} on {s['field_name']} ({s['index_type']})" for s in specs) or "none"


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
    spec = {
        "collection_name": collection_name,
        "field_name": description.get("field_name"),
        "index_name": description.get("index_name"),
        "index_type": description.get("index_type"),
        "metric_type": metric,
        "params": params,
    }
    stored = description.get(STORED_KEY)
    if isinstance(stored, Mapping):
        spec[STORED_KEY] = {str(k): str(v) for k, v in stored.items()}
    return spec


def is_vector_field(field: Mapping[str, Any]) -> bool:
    """Whether a field of ``describe_collection`` holds vectors (dense, sparse or binary)."""
    return "VECTOR" in getattr(field["type"], "name", str(field["type"])).upper()


def is_vector_spec(spec: Mapping[str, Any]) -> bool:
    index_type = str(spec.get("index_type") or "")
    if spec.get("metric_type"):
        return True
    return index_type.upper() in VECTOR_INDEX_TYPES and index_type.upper() != "AUTOINDEX"


def normalize_spec(raw: Any, position: str = "index spec", *, typed: bool = True) -> dict[str, Any]:
    """Check a spec from a user, a template or an XCom, and return a clean copy.

    ``typed``: the names were typed as operator or CLI arguments and get the strict check.
    Otherwise (``index_specs``: a drop's result, a listing) they are names Milvus stored, and
    are held only to what Milvus itself takes (``validate_stored_name``)."""
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
    check_name = validate_name if typed else validate_stored_name
    spec = {
        "collection_name": check_name(raw["collection_name"], f"{position}: collection_name"),
        "field_name": check_name(raw["field_name"], f"{position}: field_name"),
        "index_name": raw.get("index_name") or None,
        "index_type": raw["index_type"],
        "metric_type": raw.get("metric_type") or None,
        "params": parse_params(raw.get("params"), f"{position}: params"),
    }
    if spec["index_name"] is not None:
        check_name(spec["index_name"], f"{position}: index_name")
    if raw.get(STORED_KEY) is not None:
        spec[STORED_KEY] = _stored_pairs(raw[STORED_KEY], position)
    for key in ("index_type", "metric_type"):
        if spec[key] is not None and not isinstance(spec[key], str):
            raise MilvusInputError(
                f"{position}: {key} must be a string, got {type(spec[key]).__name__} {spec[key]!r}."
            )
    return spec


def raw_specs(index_specs: Any) -> list[Any]:
    """The specs ``index_specs`` holds, unchecked: a list, one spec, a drop operator's result
    (its ``dropped`` plus ``pending_rebuild``), or a JSON string of any of these."""
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
        return dropped + pending
    if isinstance(index_specs, Mapping):
        return [index_specs]
    if not isinstance(index_specs, list):
        raise MilvusInputError(
            f"index_specs must be a list of specs or a drop result, got {type(index_specs).__name__}."
        )
    return index_specs


def specs_from_input(index_specs: Any) -> list[dict[str, Any]]:
    """Accept a list of specs, one spec, or a drop operator's result dict."""
    index_specs = raw_specs(index_specs)
    specs = [normalize_spec(s, f"index_specs[{i}]", typed=False) for i, s in enumerate(index_specs)]
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


def _stored_pairs(stored: Any, position: str) -> dict[str, str]:
    if not isinstance(stored, Mapping) or not all(isinstance(v, str) for v in stored.values()):
        raise MilvusInputError(
            f"{position}: {STORED_KEY} must map keys to strings, as a drop reports them; got "
            f"{str(stored)[:80]!r}. Pass the drop's output unchanged, or leave {STORED_KEY} out."
        )
    return {str(k): v for k, v in stored.items()}


def check_rebuildable(specs: Iterable[Mapping[str, Any]]) -> None:
    """Refuse, before a drop, any index the rebuild (``index_specs=drop.output``) would refuse:
    dropping it would leave the collection without it."""
    for spec in specs:
        name = spec.get("index_name")
        try:
            normalize_spec(spec, f"index {name!r}", typed=False)
        except MilvusInputError as error:
            raise MilvusInputError(
                f"Index {name!r} on {spec.get('collection_name')}.{spec.get('field_name')} could not be "
                f"rebuilt from this drop's result ({error}), so nothing was dropped. Drop the other "
                "indexes alone, or re-create this one with your Milvus client first.",
                fixes=[Fix("field_name", flag="-f FIELD", purpose="to drop another field's index"),
                       Fix("index_name", flag="-i INDEX", purpose="to drop another index")],
            ) from None


def stored_request(spec: Mapping[str, Any]) -> dict[str, str] | None:
    """The key-value pairs that build ``spec`` in the layout the server stored it in; None when
    the spec does not say (a spec a user wrote: MilvusClient's flat keys, as before).

    Unchanged specs get the stored pairs verbatim (value types inside the nested JSON,
    ``metric_type: ''``); edited ones keep the stored layout with the edited values."""
    stored = spec.get(STORED_KEY)
    if not stored:
        return None
    was = spec_from_description("", {**stored, "field_name": spec.get("field_name")})
    if all(was[k] == (spec.get(k) or ({} if k == "params" else None)) for k in ("index_type", "metric_type", "params")):
        return dict(stored)
    pairs = {"index_type": str(spec["index_type"])}
    if spec.get("metric_type") or "metric_type" in stored:
        pairs["metric_type"] = spec.get("metric_type") or ""
    params = dict(spec.get("params") or {})
    if "params" in stored:  # one JSON string, as the ORM and the Node SDK send it
        pairs["params"] = json.dumps(params, separators=(",", ":"))
    else:  # flat keys with string values, as MilvusClient sends them
        pairs.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()})
    return pairs
