"""Collection and data wrappers of :class:`~airflow_milvus.hooks.milvus.MilvusHook`: list, match,
describe, load state, load and release, drop, row count, flush, and writing rows."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from airflow_milvus.errors import Fix, MilvusInputError
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.planning.specs import is_vector_field
from airflow_milvus.planning.validation import is_glob, validate_name


class MilvusCollectionMixin:
    """Mixed into ``MilvusHook``: uses its ``call``, ``_kw``, ``timeout``, ``uri``, ``embedded`` and ``redact``."""

    def list_collections(self) -> list[str]:
        return list(self.call("list_collections", lambda c: c.list_collections(**self._kw)))

    def has_collection(self, collection_name: str) -> bool:
        validate_name(collection_name, "collection name")
        return bool(self.call(f"has_collection({collection_name})", lambda c: c.has_collection(collection_name, **self._kw)))

    def match_collections(
        self, names: str | Iterable[str], *, missing_ok: bool = False, fixes: Iterable[Fix] = ()
    ) -> list[str]:
        """Resolve one name, a list of names, or glob patterns to existing collections.

        ``fixes``: what the caller offers when one is missing (its own argument or flag)."""
        if not isinstance(names, (list, tuple, set)):  # one name (or a wrongly typed one, refused below)
            names = [names]  # type: ignore[list-item]
        names = list(names)
        if not names:
            raise MilvusInputError("collection_name is an empty list: name at least one collection.")
        existing: list[str] | None = None
        found: list[str] = []
        for name in names:
            if isinstance(name, str) and name and is_glob(name):
                existing = existing if existing is not None else self.list_collections()
                matched = sorted(c for c in existing if fnmatch.fnmatchcase(c, name))
                if not matched and not missing_ok:
                    raise MilvusInputError(
                        f"Collection pattern {name!r} matches no collection (there are "
                        f"{len(existing)}: {', '.join(sorted(existing)[:10]) or 'none'}). Fix the pattern.",
                        fixes=list(fixes),
                    )
                found.extend(matched)
                continue
            validate_name(name, "collection name")
            if self.has_collection(name):
                found.append(name)
            elif not missing_ok:
                raise MilvusInputError(
                    f"Collection {name!r} does not exist in {self.redact(self.uri)}. Check the name (and db_name).",
                    fixes=list(fixes),
                )
        return list(dict.fromkeys(found))

    def describe_collection(self, collection_name: str) -> dict[str, Any]:
        return self.call(f"describe_collection({collection_name})", lambda c: c.describe_collection(collection_name, **self._kw))

    def field_names(self, collection_name: str) -> list[str]:
        return [f["name"] for f in self.describe_collection(collection_name)["fields"]]

    def vector_fields(self, collection_name: str) -> list[str]:
        return [f["name"] for f in self.describe_collection(collection_name)["fields"] if is_vector_field(f)]

    def get_load_state(self, collection_name: str) -> str:
        """'Loaded', 'NotLoad', 'Loading' or 'NotExist'."""
        state = self.call(f"get_load_state({collection_name})", lambda c: c.get_load_state(collection_name, **self._kw))
        value = state.get("state") if isinstance(state, dict) else state
        return getattr(value, "name", str(value))

    def load_collection(self, collection_name: str, *, timeout: float | None = None, wait: bool = True) -> None:
        """Load and wait until Loaded (``timeout`` seconds, default the RPC timeout).

        With ``wait=False`` the load is only started."""
        limit = float(timeout) if timeout is not None else self.timeout
        self.call(
            f"load_collection({collection_name})",
            lambda c: c.load_collection(collection_name, timeout=limit, retry_times=2, _async=not wait),
        )

    def release_collection(self, collection_name: str) -> None:
        self.call(f"release_collection({collection_name})", lambda c: c.release_collection(collection_name, **self._kw))

    def drop_collection(self, collection_name: str) -> None:
        validate_name(collection_name, "collection name")
        self.call(f"drop_collection({collection_name})", lambda c: c.drop_collection(collection_name, **self._kw))
        if self.embedded:
            from airflow_milvus.hooks import lite_params

            lite_params.forget(self.uri, collection_name)

    # ------------------------------------------------------------------ data
    def row_count(self, collection_name: str) -> int:
        stats = self.call(f"get_collection_stats({collection_name})", lambda c: c.get_collection_stats(collection_name, **self._kw))
        return int(stats.get("row_count", 0))

    def flush(self, collection_name: str) -> None:
        self.call(f"flush({collection_name})", lambda c: c.flush(collection_name, **self._kw))

    def write_rows(
        self, collection_name: str, rows: list[dict[str, Any]], *, mode: str = "insert", partition_name: str | None = None
    ) -> int:
        """Insert or upsert one batch (into ``partition_name``, else the default partition); returns
        the rows Milvus took. A rejected batch (pymilvus's own checks or the server's) raises
        MilvusInputError: it is permanent, never retried."""
        from pymilvus import MilvusException

        target = f"{collection_name}.{partition_name}" if partition_name else collection_name
        where = {"partition_name": partition_name} if partition_name else {}
        try:
            result = self.call(
                f"{mode}({target}, {len(rows)} rows)",
                lambda c: getattr(c, mode)(collection_name, rows, timeout=self.timeout, **where),
            )
        except MilvusException as exc:
            raise MilvusInputError(
                f"Milvus rejected {mode} of {len(rows)} rows into {target if partition_name else repr(target)}: "
                f"{self.redact(error_message(exc))}"
            ) from exc
        return int(result.get(f"{mode}_count", len(rows)))

