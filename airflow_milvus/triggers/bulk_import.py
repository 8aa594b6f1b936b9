"""Wait for Milvus import jobs on the triggerer, holding no worker slot."""

from __future__ import annotations

from typing import Any

from airflow_milvus.imports.jobs import check_jobs, describe_progress
from airflow_milvus.triggers.base import MilvusPollingTrigger


class MilvusImportJobTrigger(MilvusPollingTrigger):
    """Poll import jobs until all are Completed (or, with ``need_slot``, one is: more jobs wait
    to start), one fails, or time runs out.

    Every poll logs each job's state, percentage and rows so far. The other arguments are
    :class:`~airflow_milvus.triggers.base.MilvusPollingTrigger`'s.

    :param job_ids: the Milvus import job ids.
    :param need_slot: return as soon as one job is Completed, so the task starts the next.
    """

    def __init__(self, *, job_ids: list[int], need_slot: bool = False, poll_interval: float = 5.0, **kwargs) -> None:
        super().__init__(poll_interval=poll_interval, **kwargs)
        self.job_ids = [int(j) for j in job_ids]
        self.need_slot = bool(need_slot)

    def what_to_poll(self) -> dict[str, Any]:
        return {"job_ids": self.job_ids, "need_slot": self.need_slot}

    def poll(self, hook) -> dict[str, Any]:
        return check_jobs(hook, self.job_ids, need_slot=self.need_slot)

    def progress(self, event: dict[str, Any]) -> str:
        return f"Import progress: {describe_progress(event['statuses'])}"

    def timeout_message(self, event: dict[str, Any]) -> str:
        return f"Import jobs not finished after {self.timeout:.0f}s"
