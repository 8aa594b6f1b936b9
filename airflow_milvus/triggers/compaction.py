"""Wait for a Milvus compaction on the triggerer, holding no worker slot."""

from __future__ import annotations

from typing import Any

from airflow_milvus.lifecycle import compaction
from airflow_milvus.triggers.base import MilvusPollingTrigger


class MilvusCompactionTrigger(MilvusPollingTrigger):
    """Poll compactions until all are Completed, one fails, or time runs out.

    Each poll is :func:`airflow_milvus.lifecycle.compaction.check`, the same one the compact
    operator runs on a worker. The other arguments are
    :class:`~airflow_milvus.triggers.base.MilvusPollingTrigger`'s.

    :param compaction_ids: the Milvus compaction ids.
    """

    def __init__(self, *, compaction_ids: list[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.compaction_ids = [int(i) for i in compaction_ids]

    def what_to_poll(self) -> dict[str, Any]:
        return {"compaction_ids": self.compaction_ids}

    def poll(self, hook) -> dict[str, Any]:
        return compaction.check(hook, self.compaction_ids)

    def progress(self, event: dict[str, Any]) -> str:
        return compaction.describe(event)

    def timeout_message(self, event: dict[str, Any]) -> str:
        return compaction.timeout_message(self.compaction_ids, self.timeout or 0)
