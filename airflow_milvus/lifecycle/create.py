"""Create indexes, or rebuild what a drop removed: read, plan, apply, wait, finish.

Plain functions of a hook and a snapshot store, shared by ``MilvusCreateIndexOperator`` and
``airflow milvus index create``. The operator waits on a worker or defers between
:func:`apply_create` and :func:`finish_create`; the CLI waits with :func:`wait_for_builds`.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.lifecycle import collections, waiting
from airflow_milvus.lifecycle.snapshots import SnapshotStore
from airflow_milvus.planning.create import (
    CollectionState,
    CreateOutcome,
    CreatePlan,
    CreateStep,
    check_fits,
    collections_to_load,
    existing_for,
    loaded_before,
    plan_create,
    unindexed_vector_fields,
    unknown_params,
)
from airflow_milvus.planning.rules import needs_release
from airflow_milvus.planning.specs import LOADED_STATES, Spec

log = logging.getLogger(__name__)
IF_EXISTS = ("skip", "replace", "fail")


def plan_indexes(hook: MilvusHook, wanted: list[Spec], *, if_exists: str) -> CreatePlan:
    """Read each collection once and decide for every wanted index, changing nothing: bad input
    fails before anything changes."""
    if if_exists not in IF_EXISTS:
        raise MilvusInputError(f"if_exists={if_exists!r}: use 'skip', 'replace' or 'fail'.")
    states = {name: _read(hook, name) for name in dict.fromkeys(s["collection_name"] for s in wanted)}
    for spec in wanted:
        check_fits(spec, states[spec["collection_name"]].fields)
    steps = tuple(
        plan_create(s, existing_for(s, states[s["collection_name"]].indexes, lite=hook.is_lite), if_exists=if_exists)
        for s in wanted
    )
    return CreatePlan(steps, states)


def _read(hook: MilvusHook, collection: str) -> CollectionState:
    try:
        fields = hook.describe_collection(collection)["fields"]
    except MilvusProviderError:
        raise
    except Exception:
        if hook.has_collection(collection):
            raise
        return CollectionState(None, [])
    # Milvus Lite loads a collection on create_index: read what to put back (a server does not).
    load_state = hook.get_load_state(collection) if hook.is_lite else None
    return CollectionState(fields, hook.list_index_specs(collection), load_state)


def apply_create(
    hook: MilvusHook,
    store: SnapshotStore,
    plan: CreatePlan,
    *,
    index_specs: Any = None,
    timeout: float = 3600.0,
    dry_run: bool = False,
    logger: logging.Logger | logging.LoggerAdapter = log,
) -> CreateOutcome:
    """Carry out exactly this plan (the CLI applies the plan it showed); does not wait."""
    for spec in unknown_params(index_specs):
        logger.warning(
            "Index %s on %s.%s: its build parameters were not reported when it was dropped (params "
            "null); rebuilding it with Milvus's defaults.",
            spec.get("index_name"), spec.get("collection_name"), spec.get("field_name"),
        )  # fmt: skip
    outcome = CreateOutcome()
    for step in plan.steps:
        _act(hook, store, step, outcome, timeout=timeout, dry_run=dry_run, logger=logger)
    if dry_run:
        return outcome
    for spec in outcome.skipped:
        store.forget(spec["collection_name"], {spec["field_name"]})
    before = loaded_before(index_specs, plan.states)
    touched = {s["collection_name"] for s in outcome.created}
    outcome.keep_released = {name for name in touched if before.get(name) is False}
    return outcome


def _act(hook: MilvusHook, store: SnapshotStore, step: CreateStep, outcome: CreateOutcome, *, timeout, dry_run, logger) -> None:
    spec, collection = step.spec, step.spec["collection_name"]
    if step.action == "identical":
        logger.info("Index on %s.%s already exists as wanted; nothing to do", collection, spec["field_name"])
        outcome.skipped.append(step.existing[0])
        return
    if step.action == "keep":
        logger.warning("%s", step.message)
        outcome.skipped.append(step.existing[0])
        return
    if step.message:
        logger.warning("%s", step.message)
    if dry_run:
        logger.info("DRY RUN: would create %s", spec)
        outcome.created.append(spec)
        return
    if step.action == "replace":
        if needs_release(step.existing, hook.get_load_state(collection), lambda: hook.server_version):
            hook.release_collection(collection)
            outcome.reload.add(collection)
        store.remember(step.existing)
        for old in step.existing:
            hook.drop_index(collection, old["index_name"])
    logger.info("Creating index %s", spec)
    try:
        hook.create_index(spec)
    except Exception as exc:
        replaced = step.existing if step.action == "replace" else []
        for old in replaced:  # never leave the field without the index it had
            logger.warning("Milvus refused the new index; restoring %s", old)
            hook.create_index(old)
        if replaced and collection in outcome.reload:
            collections.ensure_loaded(hook, collection, timeout=timeout)
        if isinstance(exc, MilvusProviderError):
            raise
        raise MilvusInputError(
            f"Milvus refused index {spec['index_type']} on {collection}.{spec['field_name']} "
            f"(metric {spec['metric_type']}, params {spec['params']}): {hook.redact(error_message(exc))}. "
            "Fix index_type, metric_type or params."
            + (" The previous index was restored." if replaced else "")
        ) from exc
    store.forget(collection, {spec["field_name"]})
    outcome.created.append(spec)


def build_targets(hook: MilvusHook, outcome: CreateOutcome) -> list[dict[str, Any]]:
    """What to wait for: every index created, and every kept one (it may still be building)."""
    return waiting.build_targets(hook, outcome.created + outcome.skipped)


def wait_for_builds(hook: MilvusHook, outcome: CreateOutcome, *, timeout: float, poll_interval: float, logger=log) -> None:
    targets = build_targets(hook, outcome)
    if targets:
        waiting.wait_for_builds(hook, targets, timeout=timeout, poll_interval=poll_interval, logger=logger)


def finish_create(
    hook: MilvusHook,
    outcome: CreateOutcome,
    *,
    states: dict[str, CollectionState],
    load: bool,
    restore_load_state: bool,
    index_specs: Any,
    timeout: float,
    logger: logging.Logger | logging.LoggerAdapter = log,
) -> dict[str, Any]:
    """After the builds: load what was loaded before (or asked for), put back the released
    state Milvus Lite's create_index undid; returns the documented XCom result."""
    to_load = collections_to_load(outcome, load=load, restore_load_state=restore_load_state, index_specs=index_specs)
    for collection in to_load:
        _load(hook, collection, states.get(collection), outcome, timeout=timeout)
        outcome.loaded.append(collection)
    for collection in sorted(outcome.keep_released - set(to_load)):
        if hook.get_load_state(collection) in LOADED_STATES:
            logger.info("Releasing %s: Milvus Lite loaded it with the index build, and it was not loaded before", collection)
            hook.release_collection(collection)
            outcome.released.append(collection)
    return outcome.to_xcom()


def _load(hook: MilvusHook, collection: str, state: CollectionState | None, outcome: CreateOutcome, *, timeout: float) -> None:
    if state is None or unindexed_vector_fields(state, outcome.created):
        collections.ensure_loaded(hook, collection, timeout=timeout)  # reads what it needs; explains the refusal
        return
    collections.load(hook, collection, timeout=timeout)
