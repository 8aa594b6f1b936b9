"""List collections at run time: the first step of a fleet reindex, mapped per collection."""

from __future__ import annotations

from collections.abc import Sequence

from airflow_milvus.errors import Fix, MilvusInputError
from airflow_milvus.operators.base import MilvusBaseOperator

EMPTY_LIST_WHEN_MISSING = Fix("missing_ok", True, purpose="to get an empty list (the mapped tasks are skipped)")


class MilvusListCollectionsOperator(MilvusBaseOperator):
    """Resolve names and glob patterns to the collections that exist now, for
    ``.expand()``: one mapped task (or mapped task group) per collection.

    .. code-block:: python

        tenants = MilvusListCollectionsOperator(task_id="list_tenants", collection_name="tenant_*")
        MilvusDropIndexOperator.partial(task_id="drop", drop_all=True).expand(collection_name=tenants.output)

    :param collection_name: a name, a list of names, or glob patterns such as ``"tenant_*"`` (templated).
    :param missing_ok: a pattern that matches nothing (or a name that does not exist) gives
        an empty list, so the mapped tasks are skipped, instead of failing (templated).
    :param limit: fail when more than this many collections match, before anything is mapped
        over them: a pattern that is too wide should not start a reindex of the whole server
        (templated; None: no limit).
    :return: the matching collection names, sorted per pattern, each once.
    """

    template_fields: Sequence[str] = ("milvus_conn_id", "collection_name", "missing_ok", "limit")
    bool_fields = ("missing_ok",)
    int_fields = {"limit": 1}
    optional_fields = ("limit",)

    def __init__(
        self,
        *,
        collection_name: str | list[str],
        missing_ok: bool = False,
        limit: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.missing_ok = missing_ok
        self.limit = limit

    def run(self, context) -> list[str]:
        names = self.hook.match_collections(self.collection_name, missing_ok=self.missing_ok, fixes=[EMPTY_LIST_WHEN_MISSING])
        if self.limit is not None and len(names) > self.limit:
            raise MilvusInputError(
                f"{self.collection_name!r} matches {len(names)} collections, more than limit={self.limit} "
                f"({', '.join(names[:10])}, ...). Narrow the pattern, or raise limit."
            )
        self.log.info("%d collection(s) match %r: %s", len(names), self.collection_name, ", ".join(names) or "none")
        return names
