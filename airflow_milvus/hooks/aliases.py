"""Alias wrappers of :class:`~airflow_milvus.hooks.milvus.MilvusHook`, and what a blue-green swap
needs besides: a collection's comparable schema, and a new collection cloned from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.planning.validation import validate_name

if TYPE_CHECKING:
    from pymilvus import MilvusClient


def _not_found(exc) -> bool:
    message = str(exc.message).lower()
    return "not found" in message or "not exist" in message


class MilvusAliasMixin:
    """Mixed into ``MilvusHook``: uses its ``call``, ``_kw``, ``redact`` and collection wrappers."""

    def collection_fields(self, collection_name: str) -> list[tuple]:
        """Comparable field signatures: (name, type, dim, max_length, is_primary)."""
        out = []
        for f in self.describe_collection(collection_name)["fields"]:
            params = f.get("params") or {}
            kind = getattr(f["type"], "name", str(f["type"]))
            out.append((f["name"], kind, params.get("dim"), params.get("max_length"), bool(f.get("is_primary"))))
        return out

    def clone_collection_schema(self, source: str, target: str) -> bool:
        """Create ``target`` with the schema of ``source`` (no data, no indexes).

        True when created; False when ``target`` already exists with the same schema.
        """
        from pymilvus import CollectionSchema

        validate_name(target, "collection name")
        if self.has_collection(target):
            if self.collection_fields(target) != self.collection_fields(source):
                raise MilvusInputError(
                    f"Collection {target!r} exists with a schema different from {source!r}; drop it "
                    "or pick another name for the new collection."
                )
            return False
        desc = self.describe_collection(source)
        schema = CollectionSchema.construct_from_dict(desc)
        extra = {k: desc[k] for k in ("num_shards", "consistency_level") if desc.get(k) is not None}
        self.call(
            f"create_collection({target} like {source})",
            lambda c: c.create_collection(target, schema=schema, **extra, **self._kw),
        )
        return True

    def describe_alias(self, alias: str) -> str | None:
        """The collection ``alias`` points at, or None if there is no such alias."""
        from pymilvus import MilvusException

        validate_name(alias, "alias")
        try:
            described = self.call(f"describe_alias({alias})", lambda c: c.describe_alias(alias, **self._kw))
        except MilvusException as exc:  # 'not found' is permanent on both flavours: never retried
            if _not_found(exc):
                return None
            raise
        return described.get("collection_name") or None

    def list_aliases(self, collection_name: str) -> list[str]:
        result = self.call(f"list_aliases({collection_name})", lambda c: c.list_aliases(collection_name, **self._kw))
        return sorted(result.get("aliases") or [])

    def _alias_call(self, verb: str, alias: str, collection_name: str) -> None:
        from pymilvus import MilvusException

        def run(c: MilvusClient) -> None:
            try:
                getattr(c, f"{verb}_alias")(collection_name, alias, **self._kw)
            except MilvusException as exc:
                # Milvus Lite answers a conflict ("already exists") with code 1, which the retry
                # policy counts as transient: refuse it here, inside the retried call.
                if "alias" in str(exc.message).lower():
                    raise MilvusInputError(
                        f"Milvus refused {verb}_alias({alias!r} -> {collection_name!r}): {self.redact(error_message(exc))}"
                    ) from exc
                raise

        self.call(f"{verb}_alias({alias} -> {collection_name})", run)

    def create_alias(self, alias: str, collection_name: str) -> None:
        self._alias_call("create", alias, collection_name)

    def alter_alias(self, alias: str, collection_name: str) -> None:
        """Point an existing alias at another collection, atomically."""
        self._alias_call("alter", alias, collection_name)

    def drop_alias(self, alias: str) -> None:
        self.call(f"drop_alias({alias})", lambda c: c.drop_alias(alias, **self._kw))
