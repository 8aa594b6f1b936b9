"""Wait for index builds on the triggerer, holding no worker slot."""

from __future__ import annotations

from typing import Any

from airflow_milvus.lifecycle import waiting
from airflow_milvus.triggers.base import MilvusPollingTrigger


class MilvusIndexBuiltTrigger(MilvusPollingTrigger):
    """Poll index build status until every target is built, one fails, or time runs out.

    Each poll is :func:`airflow_milvus.lifecycle.waiting.check_builds`, the same one the operators and the
    sensor run on a worker. The other arguments are
    :class:`~airflow_milvus.triggers.base.MilvusPollingTrigger`'s.

    :param targets: ``[{"collection_name": ..., "index_name": ...}, ...]``
    """

    def __init__(self, *, targets: list[dict[str, Any]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.targets = [dict(t) for t in targets]

    def what_to_poll(self) -> dict[str, Any]:
        return {"targets": self.targets}

    def poll(self, hook) -> dict[str, Any]:
        return waiting.check_builds(hook, self.targets)

    def progress(self, event: dict[str, Any]) -> str:
        return waiting.describe_builds(event)

    def timeout_message(self, event: dict[str, Any]) -> str:
        return f"Index builds not finished after {self.timeout:.0f}s: {event['statuses']}"
