"""Drop indexes of one or more collections, keeping a snapshot to rebuild them from.

Read every matched collection, decide (planning.py), then act: :meth:`~MilvusDropIndexOperator.plan`
changes nothing, :meth:`~MilvusDropIndexOperator.apply` carries out exactly that plan (the CLI
shows the plan in between).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus.errors import MilvusProviderError
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.lifecycle import waiting
from airflow_milvus.lifecycle.snapshots import SnapshotStoreMixin
from airflow_milvus.operators.base import MilvusBaseOperator
from airflow_milvus.planning.drop import CollectionDrop, DropPlan, plan_collection_drop
from airflow_milvus.planning.specs import describe_specs
from airflow_milvus.planning.validation import is_glob, validate_name


class MilvusDropIndexOperator(SnapshotStoreMixin, MilvusBaseOperator):
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
        plan = self.plan()
        if self.dry_run:
            for c in plan.collections:
                self.log.info("DRY RUN %s: would %sdrop %s", c.collection, "release, then " if c.release else "", describe_specs(c.targets))
            return plan.to_xcom(applied=False)
        self.apply(plan)
        return plan.to_xcom(applied=True)

    def plan(self) -> DropPlan:
        """Read every matched collection and decide, changing nothing.

        Every collection is planned before any is touched, so bad input changes nothing."""
        if self.field_name:
            validate_name(self.field_name, "field name")
        if self.index_name:
            validate_name(self.index_name, "index name")
        return DropPlan(tuple(self._plan(name, state) for name, state in self._match().items()))

    def _match(self) -> dict[str, str | None]:
        """The matched collections, with their load state where reading it proved they exist."""
        name = self.collection_name
        if isinstance(name, str) and name and not is_glob(name):
            state = self.hook.get_load_state(validate_name(name, "collection name"))
            if state != "NotExist":  # one read answers both
                return {name: state}
        names = self.hook.match_collections(name, missing_ok=bool(self.missing_collection_ok))
        return dict.fromkeys(names)

    def apply(self, plan: DropPlan) -> None:
        """Carry out exactly this plan (the CLI applies the plan it showed)."""
        for drop in plan.collections:
            self._apply(drop)

    def result(self, plan: DropPlan, *, applied: bool) -> dict[str, Any]:
        """The documented XCom result of ``plan``."""
        return plan.to_xcom(applied=applied)

    def _plan(self, collection: str, load_state: str | None = None) -> CollectionDrop:
        hook = self.hook
        snapshot = hook.list_index_specs(collection)
        if not all(s.get("params") for s in snapshot) and hook.flavour == "lite":  # a server reports params
            snapshot = self.snapshot_store.fill_unreported_params(collection, snapshot)
        drop = plan_collection_drop(
            collection,
            snapshot,
            load_state=load_state or hook.get_load_state(collection),
            server_version=lambda: hook.server_version,  # read only if the release rule needs it
            remembered=self.snapshot_store.load(collection),
            field_name=self.field_name,
            index_name=self.index_name,
            field_names=hook.field_names(collection) if self.field_name else None,
            drop_all=bool(self.drop_all),
            missing_ok=bool(self.missing_ok),
            release_if_loaded=bool(self.release_if_loaded),
        )
        if drop.note:
            self.log.info("%s Nothing to drop.", drop.note)
        if drop.pending:
            self.log.warning(
                "Collection %s: earlier drops left %s without a rebuild; passing them on as pending_rebuild",
                collection,
                describe_specs(drop.pending),
            )
        return drop

    def _apply(self, drop: CollectionDrop) -> None:
        hook, collection = self.hook, drop.collection
        if not drop.targets:
            return
        # Record first: if the run dies after the drop, the next run still knows what to rebuild.
        self.snapshot_store.remember([{**t, "was_loaded": drop.was_loaded} for t in drop.targets])
        if drop.release:
            self.log.info("Releasing %s before dropping its index", collection)
            hook.release_collection(collection)
        for spec in drop.targets:
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
        lost = drop.check_dropped(s["index_name"] for s in hook.list_index_specs(collection))
        for spec in lost:
            # Milvus Lite can drop every index of a collection when asked for one.
            self.log.warning("Index %s of %s vanished with the drop; re-creating it from the snapshot", spec["index_name"], collection)
            hook.create_index(spec)
        if lost:
            targets = waiting.build_targets(hook, lost)
            waiting.wait_for_builds(hook, targets, timeout=600, poll_interval=1, logger=self.log)
