"""Index plans: what the drop and create operators will do, decided from one read of Milvus.

Pure functions and small dataclasses only (no Milvus calls, no Airflow). The operators read a
collection's state (its indexes, fields, load state, the server version, the remembered
snapshot), hand it here, and carry out the plan they get back; the CLI shows that same plan
before applying it. The decision tables are in tests/test_planning.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_milvus.errors import Fix, MilvusInputError, MilvusProviderError
from airflow_milvus.index_specs import SPEC_KEYS, is_vector_field, is_vector_spec, same_index
from airflow_milvus.milvus_rules import needs_release

Spec = dict[str, Any]
LOADED_STATES = ("Loaded", "Loading")


def describe_specs(specs: Iterable[Mapping[str, Any]]) -> str:
    """'name on field (TYPE), ...' for logs and errors."""
    return ", ".join(f"{s['index_name']} on {s['field_name']} ({s['index_type']})" for s in specs) or "none"


# ---------------------------------------------------------------- drop


@dataclass(frozen=True)
class CollectionDrop:
    """What a drop does to one collection."""

    collection: str
    snapshot: list[Spec]  # every index the collection had
    targets: list[Spec]  # the indexes to drop
    pending: list[Spec]  # dropped by an earlier run and not rebuilt since
    was_loaded: bool
    release: bool
    note: str | None = None  # why nothing is dropped, when a target is already absent

    def check_dropped(self, remaining: Iterable[str]) -> list[Spec]:
        """Indexes of the snapshot that vanished with the drop (to re-create); raises if a target survived."""
        remaining = set(remaining)
        target_names = {t["index_name"] for t in self.targets}
        still = sorted(n for n in target_names if n in remaining)
        if still:
            raise MilvusProviderError(f"Indexes {still} of {self.collection!r} are still present after the drop.")
        return [s for s in self.snapshot if s["index_name"] not in target_names and s["index_name"] not in remaining]


@dataclass(frozen=True)
class DropPlan:
    """One drop over every matched collection, planned before any is touched."""

    collections: tuple[CollectionDrop, ...]

    def to_xcom(self, *, applied: bool) -> dict[str, Any]:
        """The documented XCom result (docs/operators.md, MilvusDropIndexOperator)."""
        return {
            "dropped": [t for c in self.collections for t in c.targets],
            "collections": {
                c.collection: {"was_loaded": c.was_loaded, "released": c.release and applied} for c in self.collections
            },
            "dry_run": not applied,
            "snapshot": {c.collection: c.snapshot for c in self.collections},
            "pending_rebuild": [s for c in self.collections for s in c.pending],
        }


def select_targets(
    collection: str,
    snapshot: list[Spec],
    *,
    field_name: str | None,
    index_name: str | None,
    drop_all: bool,
    field_names: list[str] | None = None,
) -> list[Spec]:
    """The indexes a drop by collection, field or index name means; refuses what is ambiguous."""
    if field_name and field_names is not None and field_name not in field_names:
        raise MilvusInputError(
            f"Field {field_name!r} does not exist in collection {collection!r} (fields: "
            f"{', '.join(field_names)}); fix field_name."
        )
    targets = [s for s in snapshot if not field_name or s["field_name"] == field_name]
    if index_name:
        named = [s for s in snapshot if s["index_name"] == index_name]
        if field_name and named and named[0]["field_name"] != field_name:
            raise MilvusInputError(
                f"In collection {collection!r}, index {index_name!r} is on field {named[0]['field_name']!r}, "
                f"not on field {field_name!r}: the two name different indexes.",
                fixes=[Fix("field_name", flag="-f FIELD", purpose="alone"), Fix("index_name", flag="-i INDEX", purpose="alone")],
            )
        targets = [s for s in targets if s["index_name"] == index_name]
    if not field_name and not index_name and len(snapshot) > 1 and not drop_all:
        raise MilvusInputError(
            f"Collection {collection!r} has {len(snapshot)} indexes ({describe_specs(snapshot)}).",
            fixes=[
                Fix("field_name", flag="-f FIELD", purpose="to drop one"),
                Fix("index_name", flag="-i INDEX", purpose="to drop one"),
                Fix("drop_all", True, flag="--all", purpose="to drop them all"),
            ],
        )
    return targets


def still_pending(remembered: list[Mapping[str, Any]], snapshot: list[Spec]) -> tuple[list[Spec], bool]:
    """Remembered drops whose field has no index now, and whether such a drop found the collection loaded."""
    indexed = {s["field_name"] for s in snapshot}
    left = [s for s in remembered if s.get("field_name") not in indexed]
    return [{k: s.get(k) for k in SPEC_KEYS} for s in left], any(s.get("was_loaded") for s in left)


def plan_collection_drop(
    collection: str,
    snapshot: list[Spec],
    *,
    load_state: str,
    server_version: str | Callable[[], str],
    remembered: list[Mapping[str, Any]] = (),  # type: ignore[assignment]
    field_name: str | None = None,
    index_name: str | None = None,
    field_names: list[str] | None = None,
    drop_all: bool = False,
    missing_ok: bool = True,
    release_if_loaded: bool = True,
) -> CollectionDrop:
    """Decide the drop of one collection from what was read of it."""
    targets = select_targets(
        collection, snapshot, field_name=field_name, index_name=index_name, drop_all=drop_all, field_names=field_names
    )
    note = None
    if not targets:
        what = " ".join(x for x in (field_name and f"on field {field_name!r}", index_name and f"named {index_name!r}") if x)
        note = f"Collection {collection!r} has no index {what}".rstrip() + f" (it has: {describe_specs(snapshot)})."
        if not missing_ok:
            raise MilvusInputError(note, fixes=[Fix("missing_ok", True, purpose="to treat this as done")])
    pending, loaded_before = still_pending(list(remembered), snapshot)
    release = needs_release(targets, load_state, server_version)
    if release and not release_if_loaded:
        raise MilvusInputError(
            f"Collection {collection!r} is {load_state}, and Milvus refuses to drop {describe_specs(targets)} "
            "from a loaded collection (MilvusReleaseCollectionOperator can release it first).",
            fixes=[Fix("release_if_loaded", True, purpose="to release it before the drop")],
        )
    # An earlier run released the collection before it failed: its load state counts.
    was_loaded = load_state in LOADED_STATES or loaded_before
    return CollectionDrop(collection, snapshot, targets, pending, was_loaded, release, note)


# ---------------------------------------------------------------- create


@dataclass(frozen=True)
class CollectionState:
    """One read of a collection before a create: its fields (None: no such collection) and indexes."""

    fields: list[Mapping[str, Any]] | None
    indexes: list[Spec]


@dataclass
class CreateOutcome:
    """What a create run built, kept and loaded; ``reload``: collections a replace released."""

    created: list[Spec] = field(default_factory=list)
    skipped: list[Spec] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    reload: set[str] = field(default_factory=set)

    def to_xcom(self) -> dict[str, Any]:
        """The documented XCom result (docs/operators.md, MilvusCreateIndexOperator)."""
        return {"created": self.created, "skipped": self.skipped, "loaded": self.loaded}

    def to_payload(self) -> dict[str, Any]:
        """What a deferred task hands to ``execute_complete`` through its trigger."""
        return {"result": self.to_xcom(), "reload": sorted(self.reload)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CreateOutcome:
        result = payload["result"]
        return cls(list(result["created"]), list(result["skipped"]), list(result["loaded"]), set(payload["reload"]))


@dataclass(frozen=True)
class CreateStep:
    """What to do for one wanted index: ``create``, ``skip`` (identical exists), ``keep``
    (a different one exists, if_exists='skip') or ``replace`` (drop ``existing`` first)."""

    action: Literal["create", "skip", "keep", "replace"]
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
        return CreateStep("skip", spec, same[:1])
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
