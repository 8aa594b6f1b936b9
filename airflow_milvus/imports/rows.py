"""Check rows against a collection's schema before they are sent to Milvus.

Milvus rejects a bad batch without saying which row is bad; the ingest operator and the import
file check use this to name the row, the field and what to change. The checks are cheap
(presence, scalar types, string length, vector length and first element) so they do not slow
a reload of millions of rows. Pure: the schema is what ``describe_collection`` returned.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

INT_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64"})
FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE"})
DENSE_VECTORS = frozenset({"FLOAT_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR", "INT8_VECTOR"})


def field_kind(field: Mapping[str, Any]) -> str:
    """The field's data type name (``INT64``, ``FLOAT_VECTOR``...), from a DataType or its text."""
    return getattr(field["type"], "name", str(field["type"])).upper()


class RowChecker:
    """What is wrong with a row, for one collection schema and one write mode.

    :param description: the collection as ``describe_collection`` returns it.
    :param mode: ``"insert"`` (an ``auto_id`` primary key must be left out) or ``"upsert"``
        (every row carries its primary key).
    """

    def __init__(self, description: Mapping[str, Any], mode: str) -> None:
        self.mode = mode
        self.dynamic = bool(description.get("enable_dynamic_field"))
        collection_auto_id = bool(description.get("auto_id"))
        self.fields: dict[str, tuple[str, dict[str, Any]]] = {}
        self.required: list[str] = []
        self.auto_pk: str | None = None
        self.computed: set[str] = set()
        for f in description["fields"]:
            self.fields[f["name"]] = (field_kind(f), dict(f.get("params") or {}))
            generated = bool(f.get("is_primary") and (f.get("auto_id") or collection_auto_id))
            if generated:
                self.auto_pk = f["name"]
            if f.get("is_function_output"):
                self.computed.add(f["name"])
            optional = f.get("nullable") or f.get("default_value") is not None or f.get("is_function_output")
            if not (generated and mode == "insert") and not optional:
                self.required.append(f["name"])

    def problem(self, row: Any) -> str | None:
        """What is wrong with ``row`` and how to fix it, or None. The text follows "row N"."""
        if not isinstance(row, Mapping):
            return f"is a {type(row).__name__}, not a dict of field values"
        missing = [name for name in self.required if name not in row]
        if missing:
            return f"lacks field(s) {', '.join(missing)}; every row needs them (they are neither nullable nor have a default)"
        if self.mode == "insert" and self.auto_pk in row:
            return f"sets {self.auto_pk!r}, which Milvus generates (auto_id); leave it out"
        for name, value in row.items():
            if name in self.computed:
                return f"sets {name!r}, which a collection function computes; leave it out"
            if name not in self.fields:
                if not self.dynamic:
                    return (
                        f"has field {name!r}, which the collection does not have (fields: {', '.join(self.fields)}); "
                        "remove it, or enable the dynamic field"
                    )
                continue
            if value is None:
                continue  # nullable fields; Milvus judges the rest
            kind, params = self.fields[name]
            wrong = value_problem(kind, params, value)
            if wrong:
                return f"field {name!r}: {wrong}"
        return None


def value_problem(kind: str, params: Mapping[str, Any], value: Any) -> str | None:
    """What is wrong with ``value`` for a field of type ``kind`` with schema ``params``, or None.

    Types it does not know (JSON, ARRAY, sparse vectors...) pass: Milvus judges them."""
    got = f"got {type(value).__name__} {value!r:.40}"
    if kind in INT_TYPES:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return None if ok else f"expected an integer ({kind}), {got}"
    if kind in FLOAT_TYPES:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        return None if ok else f"expected a number ({kind}), {got}"
    if kind == "BOOL":
        return None if isinstance(value, bool) else f"expected a bool, {got}"
    if kind in ("VARCHAR", "STRING"):
        if not isinstance(value, str):
            return f"expected a string, {got}"
        limit = params.get("max_length")
        if limit and len(value) > int(limit):
            return f"string of {len(value)} characters exceeds max_length {limit}; shorten it"
        return None
    if kind in DENSE_VECTORS:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
            return f"expected a vector (list of numbers), got {type(value).__name__}"
        dim = params.get("dim")
        if dim and len(value) != int(dim):
            return f"vector has dimension {len(value)}, the collection expects {dim}"
        if len(value) and not isinstance(value[0], numbers.Real):
            return f"vector holds {type(value[0]).__name__} values, expected numbers"
        return None
    if kind == "BINARY_VECTOR" and isinstance(value, (bytes, bytearray)):
        dim = params.get("dim")
        if dim and len(value) * 8 != int(dim):
            return f"binary vector has {len(value) * 8} bits, the collection expects {dim}"
    return None
