"""Point an alias at a collection: the atomic switch of a blue-green reindex."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus import lineage
from airflow_milvus.errors import Fix, MilvusInputError, MilvusProviderError
from airflow_milvus.operators.base import MilvusAssetEventsMixin, MilvusBaseOperator
from airflow_milvus.planning.validation import validate_name


class MilvusSwapAliasOperator(MilvusAssetEventsMixin, MilvusBaseOperator):
    """Atomically point ``alias`` at ``collection_name``, creating the alias if needed.

    Clients that query through the alias move from the old collection to the new one in
    one step (Milvus ``alter_alias``). Idempotent: when the alias already points at the
    collection, nothing changes and the task succeeds, so a re-run after the swap is safe.

    Before switching, it refuses (changing nothing) a target that does not exist, is not
    loaded (queries through the alias would fail), or whose fields differ from the current
    target's (clients would break), unless told otherwise.

    A swap emits an asset event for the alias (clients query it as if it were a collection),
    extra ``{"action": "alias_swapped", "collection_name", "previous_collection", "row_count",
    "indexes"}``; see :class:`MilvusAssetEventsMixin` for ``emit_asset_events`` and ``asset_extra``.

    :param alias: the alias clients query (templated).
    :param collection_name: the collection the alias must point at (templated).
    :param require_loaded: refuse to switch to a collection that is not Loaded.
    :param allow_schema_change: allow a target whose fields differ from the current one.
    :param create_if_missing: create the alias when it does not exist yet; otherwise fail.
    :return: ``{"alias": str, "collection_name": str, "previous_collection": str | None,
        "swapped": bool}``; ``swapped`` is False when the alias already pointed there.
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id",
        "alias",
        "collection_name",
        "require_loaded",
        "allow_schema_change",
        "create_if_missing",
        "asset_extra",
    )

    def __init__(
        self,
        *,
        alias: str,
        collection_name: str,
        require_loaded: bool = True,
        allow_schema_change: bool = False,
        create_if_missing: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.alias = alias
        self.collection_name = collection_name
        self.require_loaded = require_loaded
        self.allow_schema_change = allow_schema_change
        self.create_if_missing = create_if_missing

    def run(self, context) -> dict[str, Any]:
        hook = self.hook
        alias = validate_name(self.alias, "alias")
        target = validate_name(self.collection_name, "collection name")
        if alias == target:
            raise MilvusInputError(f"alias and collection_name are both {alias!r}: an alias needs its own name.")
        previous = hook.describe_alias(alias)
        result = {"alias": alias, "collection_name": target, "previous_collection": previous, "swapped": False}
        if previous == target:
            self.log.info("Alias %s already points at %s; nothing to do", alias, target)
            return result
        if previous is None and hook.has_collection(alias):
            raise MilvusInputError(
                f"{alias!r} is a collection, not an alias, so it cannot be pointed at {target!r}. "
                "Pick another alias name, or move its clients to an alias first."
            )
        behind = hook.describe_alias(target)
        if behind is not None:
            raise MilvusInputError(f"{target!r} is an alias of {behind!r}; give the collection name instead.")
        if not hook.has_collection(target):
            raise MilvusInputError(f"Collection {target!r} does not exist; create and load it before swapping {alias!r} to it.")
        state = hook.get_load_state(target)
        if self.require_loaded and state != "Loaded":
            raise MilvusInputError(
                f"Collection {target!r} is {state}: queries through {alias!r} would fail after the swap. "
                "Load it first (MilvusLoadCollectionOperator).",
                fixes=[Fix("require_loaded", False, purpose="to swap to it unloaded")],
            )
        if previous is not None and not self.allow_schema_change:
            old, new = hook.collection_fields(previous), hook.collection_fields(target)
            if old != new:
                raise MilvusInputError(
                    f"Collection {target!r} has fields {_names(new)}, but {alias!r} now serves {previous!r} with "
                    f"fields {_names(old)}; clients may break.",
                    fixes=[Fix("allow_schema_change", True, purpose="if that is intended")],
                )
        if previous is None:
            if not self.create_if_missing:
                raise MilvusInputError(
                    f"Alias {alias!r} does not exist; create it first.",
                    fixes=[Fix("create_if_missing", True, purpose="to create it with the swap")],
                )
            self.log.info("Creating alias %s -> %s", alias, target)
            hook.create_alias(alias, target)
        else:
            self.log.info("Swapping alias %s: %s -> %s", alias, previous, target)
            hook.alter_alias(alias, target)
        now = hook.describe_alias(alias)
        if now != target:
            raise MilvusProviderError(f"Alias {alias!r} points at {now!r} after the swap, not at {target!r}.")
        result["swapped"] = True
        lineage.report(hook, input_collections=[target], output_collections=[alias])  # alias now serves target
        if self.wants_asset_events:
            extra = {"action": "alias_swapped", "collection_name": target, "previous_collection": previous}
            extra.update(row_count=hook.row_count(target), indexes=hook.list_index_specs(target))
            self.announce({alias: extra}, context)
        return result


def _names(fields: list[tuple]) -> str:
    return ", ".join(f"{f[0]}:{f[1]}" + (f"({f[2]})" if f[2] else "") for f in fields)
