"""Drop indexes, keeping a snapshot to rebuild them from: read, plan, apply.

Plain functions of a hook and a snapshot store, shared by ``MilvusDropIndexOperator`` and
``airflow milvus index drop``: :func:`plan_drop` reads every matched collection and decides
(changing nothing), :func:`apply_drop` carries out exactly that plan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from airflow_milvus.errors import MilvusProviderError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.lifecycle import waiting
from airflow_milvus.lifecycle.collections import SKIP_MISSING_COLLECTIONS
from airflow_milvus.lifecycle.snapshots import SnapshotStore
from airflow_milvus.planning.drop import CollectionDrop, DropPlan, plan_collection_drop
from airflow_milvus.planning.specs import describe_specs
from airflow_milvus.planning.validation import is_glob, validate_name

log = logging.getLogger(__name__)


def plan_drop(
    hook: MilvusHook,
    store: SnapshotStore,
    *,
    collection_name: str | Iterable[str],
    field_name: str | None = None,
    index_name: str | None = None,
    drop_all: bool = False,
    release_if_loaded: bool = True,
    missing_ok: bool = True,
    missing_collection_ok: bool = False,
    logger: logging.Logger | logging.LoggerAdapter = log,
) -> DropPlan:
    """Read every matched collection and decide, changing nothing.

    Every collection is planned before any is touched, so bad input changes nothing."""
    if field_name:
        validate_name(field_name, "field name")
    if index_name:
        validate_name(index_name, "index name")
    matched = _match(hook, collection_name, missing_collection_ok=missing_collection_ok)
    return DropPlan(
        tuple(
            _plan_one(
                hook, store, name, state, field_name=field_name, index_name=index_name, drop_all=drop_all,
                release_if_loaded=release_if_loaded, missing_ok=missing_ok, logger=logger,
            )
            for name, state in matched.items()
        )
    )  # fmt: skip


def _match(hook: MilvusHook, name, *, missing_collection_ok: bool) -> dict[str, str | None]:
    """The matched collections, with their load state where reading it proved they exist."""
    if isinstance(name, str) and name and not is_glob(name):
        state = hook.get_load_state(validate_name(name, "collection name"))
        if state != "NotExist":  # one read answers both
            return {name: state}
    return dict.fromkeys(hook.match_collections(name, missing_ok=missing_collection_ok, fixes=[SKIP_MISSING_COLLECTIONS]))


def _plan_one(hook: MilvusHook, store: SnapshotStore, collection: str, load_state: str | None, *, logger, **choices) -> CollectionDrop:
    snapshot = hook.list_index_specs(collection)
    if any(s["params"] is None for s in snapshot):  # earlier versions kept Lite's params in Variables
        snapshot = store.fill_unreported_params(collection, snapshot)
    for spec in snapshot:
        if spec["params"] is None:  # Milvus Lite, an index another client built
            logger.warning(
                "Milvus Lite does not report the build parameters of index %s on %s.%s, and this "
                "provider did not build it: the snapshot says params null, and a rebuild from it "
                "uses Milvus's defaults. Pass index_specs with the parameters to rebuild it exactly.",
                spec["index_name"], collection, spec["field_name"],
            )  # fmt: skip
    drop = plan_collection_drop(
        collection,
        snapshot,
        load_state=load_state or hook.get_load_state(collection),
        server_version=lambda: hook.server_version,  # read only if the release rule needs it
        remembered=store.load(collection),
        field_names=hook.field_names(collection) if choices["field_name"] else None,
        **choices,
    )
    if drop.note:
        logger.info("%s Nothing to drop.", drop.note)
    if drop.pending:
        logger.warning(
            "Collection %s: earlier drops left %s without a rebuild; passing them on as pending_rebuild",
            collection,
            describe_specs(drop.pending),
        )
    return drop


def log_dry_run(plan: DropPlan, logger=log) -> None:
    for c in plan.collections:
        logger.info("DRY RUN %s: would %sdrop %s", c.collection, "release, then " if c.release else "", describe_specs(c.targets))


def apply_drop(hook: MilvusHook, store: SnapshotStore, plan: DropPlan, *, logger=log) -> None:
    """Carry out exactly this plan (the CLI applies the plan it showed)."""
    for drop in plan.collections:
        _apply_one(hook, store, drop, logger)


def _apply_one(hook: MilvusHook, store: SnapshotStore, drop: CollectionDrop, logger) -> None:
    collection = drop.collection
    if not drop.targets:
        return
    # Record first: if the run dies after the drop, the next run still knows what to rebuild.
    store.remember([{**t, "was_loaded": drop.was_loaded} for t in drop.targets])
    if drop.release:
        logger.info("Releasing %s before dropping its index", collection)
        hook.release_collection(collection)
    for spec in drop.targets:
        logger.info("Dropping index %r of %s: %s", spec["index_name"], collection, spec)
        try:
            hook.drop_index(collection, spec["index_name"])
        except MilvusProviderError:
            raise
        except Exception as exc:
            # Milvus Lite raises when a previous drop already removed it; check, don't guess.
            if hook.get_index_spec(collection, spec["index_name"]) is not None:
                raise MilvusProviderError(
                    f"Dropping index {spec['index_name']!r} of {collection!r} failed: {hook.redact(error_message(exc))}"
                ) from exc
    lost = drop.check_dropped(s["index_name"] for s in hook.list_index_specs(collection))
    for spec in lost:
        # Milvus Lite can drop every index of a collection when asked for one.
        logger.warning("Index %s of %s vanished with the drop; re-creating it from the snapshot", spec["index_name"], collection)
        hook.create_index(spec)
    if lost:
        targets = waiting.build_targets(hook, lost)
        waiting.wait_for_builds(hook, targets, timeout=600, poll_interval=1, logger=logger)
