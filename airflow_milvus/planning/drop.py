"""Drop plans: which indexes a drop by collection, field or index name removes, and whether a
release comes first, decided from one read of each collection.

Pure functions and small dataclasses (no Milvus calls, no Airflow); the decision tables are in
tests/test_planning.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_milvus.errors import Fix, MilvusInputError, MilvusProviderError
from airflow_milvus.planning.rules import needs_release
from airflow_milvus.planning.specs import (
    LOADED_STATES,
    SPEC_KEYS,
    STORED_KEY,
    Spec,
    check_rebuildable,
    describe_specs,
)


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

    def to_xcom(self, *, dry_run: bool) -> dict[str, Any]:
        """The documented XCom result (docs/operators.md, MilvusDropIndexOperator): the plan as
        carried out, or as it would be with ``dry_run``."""
        return {
            "dropped": [t for c in self.collections for t in c.targets],
            "collections": {
                c.collection: {"was_loaded": c.was_loaded, "released": c.release and not dry_run} for c in self.collections
            },
            "dry_run": dry_run,
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
    keys = (*SPEC_KEYS, STORED_KEY)  # the stored layout too: the rebuild sends it back as it was
    return [{k: s.get(k) for k in keys if k in s or k in SPEC_KEYS} for s in left], any(s.get("was_loaded") for s in left)


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
    check_rebuildable(targets)  # what the rebuild would refuse must not be dropped
    note = None
    if not targets:
        what = " ".join(x for x in (field_name and f"on field {field_name!r}", index_name and f"named {index_name!r}") if x)
        note = f"Collection {collection!r} has no index {what}".rstrip() + f" (it has: {describe_specs(snapshot)})."
        if not missing_ok:
            raise MilvusInputError(note, fixes=[Fix("missing_ok", True, flag="--missing-ok", purpose="to treat this as done")])
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


