"""Create indexes, or rebuild exactly what a drop removed, then wait and restore the load state.

Read each collection once (fields, indexes), decide every spec (planning.py), then act.
Milvus Lite and the server disagree on several index rules (see docs/reindexing.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus.compat import conf
from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.lifecycle import waiting
from airflow_milvus.lifecycle.snapshots import SnapshotStoreMixin
from airflow_milvus.operators.base import MilvusAssetEventsMixin, MilvusBaseOperator
from airflow_milvus.operators.collection import ensure_loaded
from airflow_milvus.planning.create import (
    CollectionState,
    CreateOutcome,
    CreatePlan,
    CreateStep,
    check_fits,
    collections_to_load,
    existing_for,
    plan_create,
    unindexed_vector_fields,
)
from airflow_milvus.planning.rules import needs_release
from airflow_milvus.planning.specs import normalize_spec, specs_from_input

# Before deferring, the worker watches the build this long: a build that ends within it never
# reaches the triggerer (no trigger round trip, and no exposure to apache/airflow#71580).
WORKER_CHECK_SECONDS = 10.0


class MilvusCreateIndexOperator(SnapshotStoreMixin, MilvusAssetEventsMixin, MilvusBaseOperator):
    """Create indexes, or rebuild exactly what a drop removed (``index_specs=drop.output``).

    An identical existing index is success without work. A different index on the field is
    handled by ``if_exists``.

    :param collection_name: collection of the explicit index (templated).
    :param field_name: field of the explicit index (templated).
    :param index_type: e.g. ``HNSW``, ``IVF_FLAT``, ``AUTOINDEX``, ``INVERTED`` (templated).
    :param metric_type: e.g. ``L2``, ``IP``, ``COSINE``; None for scalar indexes (templated).
    :param index_params: build parameters, a dict or a JSON string (templated). Named
        ``index_params`` because ``params`` is every Airflow operator's DAG-params argument.
    :param index_name: optional index name (templated; Milvus Lite names indexes by field).
    :param index_specs: instead of the explicit index: a list of specs, or a drop result
        (templated; XComArgs work).
    :param if_exists: ``"skip"`` (keep a different existing index, warn), ``"replace"``
        (release if needed, drop, create) or ``"fail"``.
    :param wait_for_completion: wait until every build is Finished with 0 pending rows.
    :param timeout: seconds to wait for builds and loads.
    :param poll_interval: seconds between build status polls.
    :param deferrable: wait on the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param restore_load_state: given a drop result, load the collections that were loaded
        before the drop, and wait until Loaded.
    :param load: load the touched collections afterwards regardless.
    :param dry_run: log and return what would be created; change nothing.
    :param emit_asset_events: emit an asset event per collection an index was built on
        (see :class:`~airflow_milvus.operators.base.MilvusAssetEventsMixin`; ``asset_extra`` too).
    :return: ``{"created": [spec, ...], "skipped": [spec, ...], "loaded": [collection, ...]}``
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id",
        "collection_name",
        "field_name",
        "index_type",
        "metric_type",
        "index_params",
        "index_name",
        "index_specs",
        "if_exists",
        "wait_for_completion",
        "timeout",
        "poll_interval",
        "restore_load_state",
        "load",
        "dry_run",
        "asset_extra",
    )
    template_fields_renderers = {"index_params": "json", "index_specs": "json"}
    bool_fields = ("wait_for_completion", "restore_load_state", "load", "dry_run")
    seconds_fields = ("timeout", "poll_interval")

    def __init__(
        self,
        *,
        collection_name: str | None = None,
        field_name: str | None = None,
        index_type: str | None = None,
        metric_type: str | None = None,
        index_params: dict[str, Any] | str | None = None,
        index_name: str | None = None,
        index_specs: Any = None,
        if_exists: str = "skip",
        wait_for_completion: bool = True,
        timeout: float = 3600.0,
        poll_interval: float = 5.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        restore_load_state: bool = True,
        load: bool = False,
        dry_run: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.field_name = field_name
        self.index_type = index_type
        self.metric_type = metric_type
        self.index_params = index_params
        self.index_name = index_name
        self.index_specs = index_specs
        self.if_exists = if_exists
        self.wait_for_completion = wait_for_completion
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.restore_load_state = restore_load_state
        self.load = load
        self.dry_run = dry_run

    def _wanted(self) -> list[dict[str, Any]]:
        explicit = any(x is not None for x in (self.collection_name, self.field_name, self.index_type))
        if explicit and self.index_specs is not None:
            raise MilvusInputError(
                "Give either an explicit index (collection_name, field_name, index_type, ...) or "
                "index_specs, not both."
            )
        if self.index_specs is not None:
            return specs_from_input(self.index_specs)
        if not explicit:
            raise MilvusInputError(
                "Nothing to create: pass collection_name, field_name and index_type, or "
                "index_specs (e.g. index_specs=drop.output)."
            )
        raw = {
            "collection_name": self.collection_name,
            "field_name": self.field_name,
            "index_type": self.index_type,
            "metric_type": self.metric_type,
            "params": self.index_params,
            "index_name": self.index_name,
        }
        return [normalize_spec(raw, "index")]

    def run(self, context) -> dict[str, Any]:
        return self.apply(self.plan())

    def plan(self) -> CreatePlan:
        """Read each collection once and decide for every wanted index, changing nothing:
        bad input fails before anything changes."""
        if self.if_exists not in ("skip", "replace", "fail"):
            raise MilvusInputError(f"if_exists={self.if_exists!r}: use 'skip', 'replace' or 'fail'.")
        wanted = self._wanted()
        states = {name: self._read(name) for name in dict.fromkeys(s["collection_name"] for s in wanted)}
        for spec in wanted:
            check_fits(spec, states[spec["collection_name"]].fields)
        steps = tuple(
            plan_create(s, existing_for(s, states[s["collection_name"]].indexes, lite=self.hook.is_lite), if_exists=self.if_exists)
            for s in wanted
        )
        return CreatePlan(steps, states)

    def apply(self, plan: CreatePlan) -> dict[str, Any]:
        """Carry out exactly this plan (the CLI applies the plan it showed), wait for the
        builds (or defer) and load; returns the documented XCom result."""
        states = plan.states
        outcome = CreateOutcome()
        for step in plan.steps:
            self._act(step, outcome)
        if self.dry_run:
            return outcome.to_xcom()
        for spec in outcome.skipped:
            self.snapshot_store.forget(spec["collection_name"], {spec["field_name"]})
        built = outcome.created + outcome.skipped  # a skipped index may still be building
        targets = waiting.build_targets(self.hook, built) if self.wait_for_completion else []
        if targets and self.deferrable:
            from airflow_milvus.triggers.index import MilvusIndexBuiltTrigger

            check = min(float(self.poll_interval), WORKER_CHECK_SECONDS, float(self.timeout))
            if waiting.poll_builds(self.hook, targets, timeout=check, poll_interval=1, logger=self.log)["status"] != "success":
                self.defer(
                    trigger=MilvusIndexBuiltTrigger(
                        targets=targets,
                        milvus_conn_id=self.milvus_conn_id,
                        poll_interval=self.poll_interval,
                        timeout=self.timeout,
                        payload=outcome.to_payload(),
                    ),
                    method_name="execute_complete",
                )
        elif targets:
            waiting.wait_for_builds(self.hook, targets, timeout=self.timeout, poll_interval=self.poll_interval, logger=self.log)
        return self._finish(outcome, states)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        waiting.raise_for_event(event)
        self.log.info("Index builds finished (deferred wait): %s", event.get("statuses"))
        with self.hook:
            return self._finish(CreateOutcome.from_payload(event["payload"]), states={})

    def _read(self, collection: str) -> CollectionState:
        hook = self.hook
        try:
            fields = hook.describe_collection(collection)["fields"]
        except MilvusProviderError:
            raise
        except Exception:
            if hook.has_collection(collection):
                raise
            return CollectionState(None, [])
        return CollectionState(fields, hook.list_index_specs(collection))

    def _act(self, step: CreateStep, outcome: CreateOutcome) -> None:
        hook, spec, collection = self.hook, step.spec, step.spec["collection_name"]
        if step.action == "skip":
            self.log.info("Index on %s.%s already exists as wanted; nothing to do", collection, spec["field_name"])
            outcome.skipped.append(step.existing[0])
            return
        if step.action == "keep":
            self.log.warning("%s", step.message)
            outcome.skipped.append(step.existing[0])
            return
        if step.message:
            self.log.warning("%s", step.message)
        if self.dry_run:
            self.log.info("DRY RUN: would create %s", spec)
            outcome.created.append(spec)
            return
        if step.action == "replace":
            if needs_release(step.existing, hook.get_load_state(collection), lambda: hook.server_version):
                hook.release_collection(collection)
                outcome.reload.add(collection)
            self.snapshot_store.remember(step.existing)
            for old in step.existing:
                hook.drop_index(collection, old["index_name"])
        self.log.info("Creating index %s", spec)
        try:
            hook.create_index(spec)
        except Exception as exc:
            replaced = step.existing if step.action == "replace" else []
            for old in replaced:  # never leave the field without the index it had
                self.log.warning("Milvus refused the new index; restoring %s", old)
                hook.create_index(old)
            if replaced and collection in outcome.reload:
                ensure_loaded(hook, collection, timeout=self.timeout)
            if isinstance(exc, MilvusProviderError):
                raise
            raise MilvusInputError(
                f"Milvus refused index {spec['index_type']} on {collection}.{spec['field_name']} "
                f"(metric {spec['metric_type']}, params {spec['params']}): {hook.redact(error_message(exc))}. "
                "Fix index_type, metric_type or params."
                + (" The previous index was restored." if replaced else "")
            ) from exc
        self.snapshot_store.forget(collection, {spec["field_name"]})
        outcome.created.append(spec)

    def _finish(self, outcome: CreateOutcome, states: dict[str, CollectionState]) -> dict[str, Any]:
        to_load = collections_to_load(outcome, load=bool(self.load), restore_load_state=bool(self.restore_load_state), index_specs=self.index_specs)
        for collection in to_load:
            self._load(collection, states.get(collection), outcome)
            outcome.loaded.append(collection)
        result = outcome.to_xcom()
        self.announce_index_builds(result)  # asset events: see MilvusAssetEventsMixin
        return result

    def _load(self, collection: str, state: CollectionState | None, outcome: CreateOutcome) -> None:
        """Load without reading the state first (loading a Loaded collection changes nothing)."""
        if state is None or unindexed_vector_fields(state, outcome.created):
            ensure_loaded(self.hook, collection, timeout=float(self.timeout))  # reads what it needs; explains the refusal
            return
        try:
            self.hook.load_collection(collection, timeout=float(self.timeout))
        except MilvusProviderError:
            raise
        except Exception as exc:
            raise MilvusProviderError(
                f"Loading collection {collection!r} after its index build failed: {self.hook.redact(error_message(exc))}."
            ) from exc
