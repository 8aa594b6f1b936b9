"""Create plans: what to do for each wanted index (create, keep, replace), what to wait for and
what to load afterwards, decided from one read of each collection.

Pure functions and small dataclasses (no Milvus calls, no Airflow); the decision tables are in
tests/test_planning.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_milvus.errors import Fix, MilvusInputError
from airflow_milvus.planning.specs import (
    LOADED_STATES,
    Spec,
    describe_specs,
    is_vector_field,
    is_vector_spec,
    normalize_spec,
    raw_specs,
    same_index,
    specs_from_input,
)


@dataclass(frozen=True)
class CollectionState:
    """One read of a collection before a create: its fields (None: no such collection), indexes
    and, where the flavour changes it on create (Milvus Lite), its load state."""

    fields: list[Mapping[str, Any]] | None
    indexes: list[Spec]
    load_state: str | None = None


@dataclass
class CreateOutcome:
    """What a create run built, kept, loaded and released.

    ``reload``: collections a replace released (load them again); ``keep_released``: collections
    that were not loaded before (before the drop, for a rebuild) and must not end loaded."""

    created: list[Spec] = field(default_factory=list)
    skipped: list[Spec] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    reload: set[str] = field(default_factory=set)
    keep_released: set[str] = field(default_factory=set)

    def to_xcom(self) -> dict[str, Any]:
        """The documented XCom result (docs/operators.md, MilvusCreateIndexOperator)."""
        return {"created": self.created, "skipped": self.skipped, "loaded": self.loaded, "released": self.released}

    def to_payload(self) -> dict[str, Any]:
        """What a deferred task hands to ``execute_complete`` through its trigger."""
        return {"result": self.to_xcom(), "reload": sorted(self.reload), "keep_released": sorted(self.keep_released)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CreateOutcome:
        result = payload["result"]
        return cls(
            list(result["created"]),
            list(result["skipped"]),
            list(result["loaded"]),
            list(result.get("released", [])),  # a trigger deferred by an earlier version has none
            set(payload["reload"]),
            set(payload.get("keep_released", [])),
        )


@dataclass(frozen=True)
class CreateStep:
    """What to do for one wanted index: ``create``, ``identical`` (it exists as wanted: nothing
    to do), ``keep`` (a different one exists, if_exists='skip') or ``replace`` (drop ``existing`` first)."""

    action: Literal["create", "identical", "keep", "replace"]
    spec: Spec
    existing: list[Spec] = field(default_factory=list)
    message: str | None = None


@dataclass(frozen=True)
class CreatePlan:
    """Every wanted index's step, decided from one read of each collection (``states``)."""

    steps: tuple[CreateStep, ...]
    states: Mapping[str, CollectionState]

    @property
    def replacements(self) -> list[CreateStep]:
        return [step for step in self.steps if step.action == "replace"]


def check_fits(spec: Spec, fields: list[Mapping[str, Any]] | None) -> None:
    """Refuse what Milvus would refuse (or silently misbuild); ``fields`` None: no such collection."""
    collection = spec["collection_name"]
    if fields is None:
        raise MilvusInputError(f"Collection {collection!r} does not exist; create it before indexing it.")
    by_name = {f["name"]: f for f in fields}
    found = by_name.get(spec["field_name"])
    if found is None:
        raise MilvusInputError(
            f"Field {spec['field_name']!r} does not exist in collection {collection!r} "
            f"(fields: {', '.join(by_name)}); fix field_name."
        )
    vector_field = is_vector_field(found)
    if is_vector_spec(spec) and not vector_field:
        raise MilvusInputError(
            f"Index type {spec['index_type']!r} (metric {spec['metric_type']!r}) is a vector index, but "
            f"field {collection}.{spec['field_name']} is a scalar field. Use a scalar index type "
            "such as INVERTED or STL_SORT and no metric_type, or index a vector field."
        )
    if vector_field and not spec["metric_type"] and str(spec["index_type"]).upper() != "AUTOINDEX":
        raise MilvusInputError(
            f"Vector field {collection}.{spec['field_name']} needs a metric_type (L2, IP or COSINE) "
            f"for index type {spec['index_type']!r}."
        )


def existing_for(spec: Spec, indexes: list[Spec], *, lite: bool) -> list[Spec]:
    """The collection's indexes in the way of ``spec``: on its field, or (server) with its name."""
    on_field = [s for s in indexes if s["field_name"] == spec["field_name"]]
    if not spec["index_name"] or lite:  # Milvus Lite names indexes after their field
        return on_field
    return on_field + [s for s in indexes if s["index_name"] == spec["index_name"] and s not in on_field]


def plan_create(spec: Spec, existing: list[Spec], *, if_exists: str) -> CreateStep:
    """Decide what to do for ``spec`` given the indexes already in its way."""
    same = [s for s in existing if same_index(s, spec)]
    if same:
        return CreateStep("identical", spec, same[:1])
    if not existing:
        return CreateStep("create", spec)
    message = (
        f"Field {spec['collection_name']}.{spec['field_name']} already has a different index "
        f"({describe_specs(existing)}; wanted {spec['index_type']} {spec['metric_type'] or ''} {spec['params']})."
    )
    if if_exists == "fail":
        raise MilvusInputError(
            message,
            fixes=[
                Fix("if_exists", "replace", flag="--if-exists replace", purpose="to rebuild it"),
                Fix("if_exists", "skip", flag="--if-exists skip", purpose="to keep it"),
            ],
        )
    if if_exists == "skip":
        return CreateStep("keep", spec, existing[:1], message + " Keeping it (if_exists='skip').")
    return CreateStep("replace", spec, existing, message + " Replacing it (if_exists='replace').")


def poll_targets(specs: list[Spec], *, lite: bool | None) -> tuple[list[dict[str, str]], list[Spec]]:
    """Build-status targets of just-created indexes whose name is known, and the specs to look up.

    Milvus Lite names an index after its field; the server honours ``index_name``. With the
    flavour unknown (``lite=None``), only a name equal to the field's is known for sure.
    """
    known: dict[tuple[str, str], dict[str, str]] = {}
    unknown = []
    for spec in specs:
        name = spec["field_name"] if lite else spec.get("index_name")
        if lite is None and name != spec["field_name"]:
            name = None
        if name:
            known[(spec["collection_name"], name)] = {"collection_name": spec["collection_name"], "index_name": name}
        else:
            unknown.append(spec)
    return list(known.values()), unknown


def wanted_specs(
    *,
    collection_name: Any,
    field_name: Any,
    index_type: Any,
    metric_type: Any,
    index_params: Any,
    index_name: Any,
    index_specs: Any,
) -> list[Spec]:
    """The indexes a create asks for: one explicit index, or ``index_specs`` (a list or a drop result)."""
    explicit = any(x is not None for x in (collection_name, field_name, index_type))
    if explicit and index_specs is not None:
        raise MilvusInputError(
            "Give either an explicit index (collection_name, field_name, index_type, ...) or "
            "index_specs, not both."
        )
    if index_specs is not None:
        return specs_from_input(index_specs)
    if not explicit:
        raise MilvusInputError(
            "Nothing to create: pass collection_name, field_name and index_type, or "
            "index_specs (e.g. index_specs=drop.output)."
        )
    raw = {
        "collection_name": collection_name,
        "field_name": field_name,
        "index_type": index_type,
        "metric_type": metric_type,
        "params": index_params,
        "index_name": index_name,
    }
    return [normalize_spec(raw, "index")]


def loaded_before(index_specs: Any, states: Mapping[str, CollectionState]) -> dict[str, bool]:
    """Whether each collection was loaded before: as the drop recorded it for a rebuild from a
    drop result, else as read before this create (where it was read)."""
    before = {name: s.load_state in LOADED_STATES for name, s in states.items() if s.load_state is not None}
    if isinstance(index_specs, Mapping):
        for name, info in (index_specs.get("collections") or {}).items():
            if isinstance(info, Mapping) and "was_loaded" in info:
                before[name] = bool(info["was_loaded"])
    return before


def unknown_params(index_specs: Any) -> list[Mapping[str, Any]]:
    """Specs of a drop result or list whose build parameters Milvus did not report (params null)."""
    if index_specs is None:
        return []
    return [s for s in raw_specs(index_specs) if isinstance(s, Mapping) and "params" in s and s["params"] is None]


def collections_to_load(
    outcome: CreateOutcome, *, load: bool, restore_load_state: bool, index_specs: Any
) -> list[str]:
    """Collections to load at the end: released by a replace, asked for, or loaded before a drop."""
    names = set(outcome.reload)
    if load:
        names |= {s["collection_name"] for s in outcome.created + outcome.skipped}
    if restore_load_state and isinstance(index_specs, Mapping):
        for name, info in (index_specs.get("collections") or {}).items():
            if isinstance(info, Mapping) and info.get("was_loaded"):
                names.add(name)
    return sorted(names)


def unindexed_vector_fields(state: CollectionState, built: Iterable[Mapping[str, Any]]) -> list[str]:
    """Vector fields that would still lack an index after ``built`` (Milvus refuses to load then)."""
    indexed = {s["field_name"] for s in state.indexes} | {s["field_name"] for s in built}
    return [f["name"] for f in state.fields or [] if is_vector_field(f) and f["name"] not in indexed]
