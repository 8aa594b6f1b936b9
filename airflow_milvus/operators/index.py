"""Drop and (re)build indexes, with snapshots, idempotency and verification.

Milvus Lite and the Milvus server disagree on several index rules (see docs/reindexing.md),
so these operators decide from their own checks (list, describe, load state) before acting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus import snapshots, waiting
from airflow_milvus.compat import conf
from airflow_milvus.errors import MilvusIndexBuildError, MilvusInputError, MilvusProviderError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.index_specs import (
    SPEC_KEYS,
    is_vector_field,
    is_vector_spec,
    normalize_spec,
    same_index,
    specs_from_input,
)
from airflow_milvus.milvus_rules import needs_release
from airflow_milvus.operators.base import MilvusAssetEventsMixin, MilvusBaseOperator
from airflow_milvus.operators.collection import ensure_loaded
from airflow_milvus.retry import error_message
from airflow_milvus.validation import validate_name


def _describe(specs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{s['index_name']} on {s['field_name']} ({s['index_type']})" for s in specs) or "none"


class MilvusDropIndexOperator(MilvusBaseOperator):
    """Drop indexes of one or more collections, keeping a snapshot to rebuild them from.

    Covers every form of the Milvus "drop index" page: collection only (ORM, Node.js, CLI),
    collection + field (Java, Go, REST) and collection + index name (modern pymilvus).

    :param collection_name: a name, a list of names, or a glob such as ``"books_*"`` (templated).
    :param field_name: drop the index on this field only (templated).
    :param index_name: drop the index with this name only (templated).
    :param drop_all: with neither field nor index name and several indexes, drop them all;
        otherwise that case is refused with the list of indexes.
    :param release_if_loaded: release a loaded collection first (Milvus refuses the drop
        otherwise). With False a loaded collection is an error.
    :param missing_ok: an index that is already absent is success (the idempotent re-run).
    :param missing_collection_ok: skip collections that do not exist instead of failing.
    :param dry_run: log and return what would be dropped and released; change nothing.
    :return: ``{"dropped": [spec, ...], "collections": {name: {"was_loaded": bool,
        "released": bool}}, "dry_run": bool, "snapshot": {name: [spec, ...]},
        "pending_rebuild": [spec, ...]}``. ``snapshot`` holds every index the collection had;
        ``pending_rebuild`` holds specs an earlier run dropped and nothing has rebuilt yet.
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id",
        "collection_name",
        "field_name",
        "index_name",
        "drop_all",
        "release_if_loaded",
        "missing_ok",
        "missing_collection_ok",
        "dry_run",
    )
    bool_fields = ("drop_all", "release_if_loaded", "missing_ok", "missing_collection_ok", "dry_run")

    def __init__(
        self,
        *,
        collection_name: str | list[str],
        field_name: str | None = None,
        index_name: str | None = None,
        drop_all: bool = False,
        release_if_loaded: bool = True,
        missing_ok: bool = True,
        missing_collection_ok: bool = False,
        dry_run: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.field_name = field_name
        self.index_name = index_name
        self.drop_all = drop_all
        self.release_if_loaded = release_if_loaded
        self.missing_ok = missing_ok
        self.missing_collection_ok = missing_collection_ok
        self.dry_run = dry_run

    def run(self, context) -> dict[str, Any]:
        plans = self.plan()
        if self.dry_run:
            for p in plans:
                self.log.info(
                    "DRY RUN %s: would %sdrop %s",
                    p["collection"],
                    "release, then " if p["release"] else "",
                    _describe(p["targets"]),
                )
            return self.result(plans, applied=False)
        self.apply(plans)
        return self.result(plans, applied=True)

    def plan(self) -> list[dict[str, Any]]:
        """Read every matched collection and decide, changing nothing: one plan per collection.

        Every collection is planned before any is touched, so bad input changes nothing."""
        if self.field_name:
            validate_name(self.field_name, "field name")
        if self.index_name:
            validate_name(self.index_name, "index name")
        names = self.hook.match_collections(self.collection_name, missing_ok=bool(self.missing_collection_ok))
        return [self._plan(name) for name in names]

    def apply(self, plans: list[dict[str, Any]]) -> None:
        """Carry out exactly these plans (the CLI applies the plans it showed)."""
        for plan in plans:
            self._apply(plan)

    def result(self, plans: list[dict[str, Any]], *, applied: bool) -> dict[str, Any]:
        """The documented XCom result of ``plans``."""
        return {
            "dropped": [t for p in plans for t in p["targets"]],
            "collections": {
                p["collection"]: {"was_loaded": p["was_loaded"], "released": p["release"] and applied} for p in plans
            },
            "dry_run": not applied,
            "snapshot": {p["collection"]: p["snapshot"] for p in plans},
            "pending_rebuild": [s for p in plans for s in p["pending"]],
        }

    def _plan(self, collection: str) -> dict[str, Any]:
        hook = self.hook
        snapshot = hook.list_index_specs(collection)
        if hook.flavour == "lite":
            snapshot = snapshots.fill_unreported_params(self.milvus_conn_id, collection, snapshot)
        if self.field_name and self.field_name not in hook.field_names(collection):
            raise MilvusInputError(
                f"Field {self.field_name!r} does not exist in collection {collection!r} (fields: "
                f"{', '.join(hook.field_names(collection))}); fix field_name."
            )
        targets = snapshot
        if self.field_name:
            targets = [s for s in targets if s["field_name"] == self.field_name]
        if self.index_name:
            named = [s for s in snapshot if s["index_name"] == self.index_name]
            if self.field_name and named and named[0]["field_name"] != self.field_name:
                raise MilvusInputError(
                    f"In collection {collection!r}, index {self.index_name!r} is on field "
                    f"{named[0]['field_name']!r}, not on field {self.field_name!r}: the two name "
                    "different indexes. Give one of field_name or index_name."
                )
            targets = [s for s in targets if s["index_name"] == self.index_name]
        if not self.field_name and not self.index_name and len(snapshot) > 1 and not self.drop_all:
            raise MilvusInputError(
                f"Collection {collection!r} has {len(snapshot)} indexes ({_describe(snapshot)}). "
                "Name one with field_name or index_name, or set drop_all=True to drop them all."
            )
        if not targets:
            what = " ".join(
                x for x in (self.field_name and f"on field {self.field_name!r}", self.index_name and f"named {self.index_name!r}") if x
            )
            message = f"Collection {collection!r} has no index {what}".rstrip() + f" (it has: {_describe(snapshot)})."
            if not self.missing_ok:
                raise MilvusInputError(message + " Set missing_ok=True to treat this as done.")
            self.log.info("%s Nothing to drop.", message)
        indexed_fields = {s["field_name"] for s in snapshot}
        remembered = [s for s in snapshots.load(self.milvus_conn_id, collection) if s.get("field_name") not in indexed_fields]
        # An earlier run released the collection before it failed: its load state counts.
        loaded_before = any(s.get("was_loaded") for s in remembered)
        pending = [{k: s.get(k) for k in SPEC_KEYS} for s in remembered]
        if pending:
            self.log.warning(
                "Collection %s: earlier drops left %s without a rebuild; passing them on as pending_rebuild",
                collection,
                _describe(pending),
            )
        state = hook.get_load_state(collection)
        release = needs_release(targets, state, hook.server_version)
        if release and not self.release_if_loaded:
            raise MilvusInputError(
                f"Collection {collection!r} is {state}, and Milvus refuses to drop {_describe(targets)} "
                "from a loaded collection. Set release_if_loaded=True, or release it first "
                "(MilvusReleaseCollectionOperator)."
            )
        return {
            "collection": collection,
            "snapshot": snapshot,
            "targets": targets,
            "pending": pending,
            "was_loaded": state in ("Loaded", "Loading") or loaded_before,
            "release": release,
        }

    def _apply(self, plan: dict[str, Any]) -> None:
        hook, collection, targets = self.hook, plan["collection"], plan["targets"]
        if not targets:
            return
        # Record first: if the run dies after the drop, the next run still knows what to rebuild.
        snapshots.remember(self.milvus_conn_id, [{**t, "was_loaded": plan["was_loaded"]} for t in targets])
        if plan["release"]:
            self.log.info("Releasing %s before dropping its index", collection)
            hook.release_collection(collection)
        for spec in targets:
            self.log.info("Dropping index %s of %s: %s", spec["index_name"], collection, spec)
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
        self._verify(plan)

    def _verify(self, plan: dict[str, Any]) -> None:
        hook, collection = self.hook, plan["collection"]
        remaining = {s["index_name"]: s for s in hook.list_index_specs(collection)}
        target_names = {t["index_name"] for t in plan["targets"]}
        still = [n for n in target_names if n in remaining]
        if still:
            raise MilvusProviderError(f"Indexes {still} of {collection!r} are still present after the drop.")
        lost = [s for s in plan["snapshot"] if s["index_name"] not in target_names and s["index_name"] not in remaining]
        for spec in lost:
            # Milvus Lite can drop every index of a collection when asked for one.
            self.log.warning("Index %s of %s vanished with the drop; re-creating it from the snapshot", spec["index_name"], collection)
            hook.create_index(spec)
        if lost:
            targets = _index_targets(hook, collection, [s["field_name"] for s in lost])
            waiting.wait_for_builds(hook, targets, timeout=600, poll_interval=1, logger=self.log)


def _index_targets(hook: MilvusHook, collection: str, fields: list[str]) -> list[dict[str, Any]]:
    targets = []
    for field in fields:
        specs = hook.list_index_specs(collection, field)
        if not specs:
            raise MilvusIndexBuildError(f"Index on {collection}.{field} vanished right after it was created.")
        targets.append({"collection_name": collection, "index_name": specs[0]["index_name"]})
    return targets


# Before deferring, the worker watches the build this long: a build that ends within it never
# reaches the triggerer (no trigger round trip, and no exposure to apache/airflow#71580).
WORKER_CHECK_SECONDS = 10.0


class MilvusCreateIndexOperator(MilvusAssetEventsMixin, MilvusBaseOperator):
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

    def _check(self, spec: dict[str, Any]) -> None:
        """Refuse what Milvus would refuse (or silently misbuild) before changing anything."""
        hook, collection = self.hook, spec["collection_name"]
        if not hook.has_collection(collection):
            raise MilvusInputError(f"Collection {collection!r} does not exist; create it before indexing it.")
        fields = {f["name"]: f for f in hook.describe_collection(collection)["fields"]}
        field = fields.get(spec["field_name"])
        if field is None:
            raise MilvusInputError(
                f"Field {spec['field_name']!r} does not exist in collection {collection!r} "
                f"(fields: {', '.join(fields)}); fix field_name."
            )
        vector_field = is_vector_field(field)
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

    def execute(self, context) -> Any:
        self.coerce_rendered_fields()
        if self.if_exists not in ("skip", "replace", "fail"):
            raise MilvusInputError(f"if_exists={self.if_exists!r}: use 'skip', 'replace' or 'fail'.")
        wanted = self._wanted()
        with self.hook:
            for spec in wanted:
                self._check(spec)
            result: dict[str, Any] = {"created": [], "skipped": [], "loaded": []}
            reload: set[str] = set()
            for spec in wanted:
                self._create_one(spec, result, reload)
            if self.dry_run:
                return result
            for spec in result["skipped"]:
                snapshots.forget(self.milvus_conn_id, spec["collection_name"], {spec["field_name"]})
            built = result["created"] + result["skipped"]  # a skipped index may still be building
            targets = [
                t
                for c in dict.fromkeys(s["collection_name"] for s in built)
                for t in _index_targets(self.hook, c, [s["field_name"] for s in built if s["collection_name"] == c])
            ]
            if targets and self.wait_for_completion and self.deferrable:
                from airflow_milvus.triggers.index import MilvusIndexBuiltTrigger

                check = min(float(self.poll_interval), WORKER_CHECK_SECONDS, float(self.timeout))
                if waiting.poll_builds(self.hook, targets, timeout=check, poll_interval=1, logger=self.log)["status"] != "success":
                    self.defer(
                        trigger=MilvusIndexBuiltTrigger(
                            targets=targets,
                            milvus_conn_id=self.milvus_conn_id,
                            poll_interval=self.poll_interval,
                            timeout=self.timeout,
                            payload={"result": result, "reload": sorted(reload)},
                        ),
                        method_name="execute_complete",
                    )
            elif targets and self.wait_for_completion:
                waiting.wait_for_builds(self.hook, targets, timeout=self.timeout, poll_interval=self.poll_interval, logger=self.log)
            return self._finish(result, reload)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        waiting.raise_for_event(event)
        self.log.info("Index builds finished (deferred wait): %s", event.get("statuses"))
        payload = event["payload"]
        with self.hook:
            return self._finish(payload["result"], set(payload["reload"]))

    def _create_one(self, spec: dict[str, Any], result: dict[str, Any], reload: set[str]) -> None:
        hook, collection = self.hook, spec["collection_name"]
        existing = hook.list_index_specs(collection, spec["field_name"])
        if spec["index_name"] and not hook.is_lite:
            existing += [s for s in hook.list_index_specs(collection) if s["index_name"] == spec["index_name"] and s not in existing]
        same = [s for s in existing if same_index(s, spec)]
        if same:
            self.log.info("Index on %s.%s already exists as wanted; nothing to do", collection, spec["field_name"])
            result["skipped"].append(same[0])
            return
        if existing:
            message = (
                f"Field {collection}.{spec['field_name']} already has a different index "
                f"({_describe(existing)}; wanted {spec['index_type']} {spec['metric_type'] or ''} {spec['params']})."
            )
            if self.if_exists == "fail":
                raise MilvusInputError(message + " Use if_exists='replace' to rebuild it or 'skip' to keep it.")
            if self.if_exists == "skip":
                self.log.warning("%s Keeping it (if_exists='skip').", message)
                result["skipped"].append(existing[0])
                return
            self.log.warning("%s Replacing it (if_exists='replace').", message)
            if self.dry_run:
                result["created"].append(spec)
                return
            state = hook.get_load_state(collection)
            if needs_release(existing, state, hook.server_version):
                hook.release_collection(collection)
                reload.add(collection)
            snapshots.remember(self.milvus_conn_id, existing)
            for old in existing:
                hook.drop_index(collection, old["index_name"])
        if self.dry_run:
            self.log.info("DRY RUN: would create %s", spec)
            result["created"].append(spec)
            return
        self.log.info("Creating index %s", spec)
        try:
            hook.create_index(spec)
        except Exception as exc:
            replaced = existing if self.if_exists == "replace" else []
            for old in replaced:  # never leave the field without the index it had
                self.log.warning("Milvus refused the new index; restoring %s", old)
                hook.create_index(old)
            if replaced and collection in reload:
                ensure_loaded(hook, collection, timeout=self.timeout)
            if isinstance(exc, MilvusProviderError):
                raise
            raise MilvusInputError(
                f"Milvus refused index {spec['index_type']} on {collection}.{spec['field_name']} "
                f"(metric {spec['metric_type']}, params {spec['params']}): {hook.redact(error_message(exc))}. "
                "Fix index_type, metric_type or params."
                + (" The previous index was restored." if replaced else "")
            ) from exc
        snapshots.forget(self.milvus_conn_id, collection, {spec["field_name"]})
        result["created"].append(spec)

    def _finish(self, result: dict[str, Any], reload: set[str]) -> dict[str, Any]:
        to_load = set(reload)
        if self.load:
            to_load |= {s["collection_name"] for s in result["created"] + result["skipped"]}
        if self.restore_load_state and isinstance(self.index_specs, dict):
            for name, info in (self.index_specs.get("collections") or {}).items():
                if isinstance(info, dict) and info.get("was_loaded"):
                    to_load.add(name)
        for collection in sorted(to_load):
            ensure_loaded(self.hook, collection, timeout=float(self.timeout))
            result["loaded"].append(collection)
        self.announce_index_builds(result)  # asset events: see MilvusAssetEventsMixin
        return result
