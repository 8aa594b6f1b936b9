"""The base of the provider's triggers: the wait is ``lifecycle.waiting.apoll`` (the state
machine the operators and the sensor drive on a worker), and subclasses say what one poll is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_milvus.lifecycle.waiting import apoll


class MilvusPollingTrigger(BaseTrigger):
    """Base of the Milvus triggers.

    pymilvus is synchronous, so each poll runs in a worker thread and the triggerer's event
    loop is never blocked.

    :param milvus_conn_id: Airflow connection of type ``milvus``.
    :param poll_interval: seconds between polls.
    :param timeout: seconds before a ``timeout`` event; None waits forever.
    :param started_at: epoch seconds the wait began (kept across triggerer restarts).
    :param payload: JSON-safe data echoed back in every event, so the resumed task gets its
        state back without relying on ``next_kwargs``.
    """

    def __init__(
        self,
        *,
        milvus_conn_id: str = "milvus_default",
        poll_interval: float = 10.0,
        timeout: float | None = None,
        started_at: float | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.milvus_conn_id = milvus_conn_id
        self.poll_interval = float(poll_interval)
        self.timeout = None if timeout is None else float(timeout)
        self.started_at = started_at if started_at is not None else time.time()
        self.payload = payload or {}

    def what_to_poll(self) -> dict[str, Any]:
        """The subclass's own serialized arguments."""
        raise NotImplementedError

    def poll(self, hook) -> dict[str, Any]:
        """One synchronous poll, the same ``check`` the worker runs: an event whose status is
        success, error or pending."""
        raise NotImplementedError

    def progress(self, event: dict[str, Any]) -> str:
        """The line logged after each poll."""
        raise NotImplementedError

    def timeout_message(self, event: dict[str, Any]) -> str:
        raise NotImplementedError

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self.what_to_poll(),
                "milvus_conn_id": self.milvus_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "started_at": self.started_at,
                "payload": self.payload,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_milvus.hooks.milvus import MilvusHook

        hook = MilvusHook(milvus_conn_id=self.milvus_conn_id)
        try:
            event = await apoll(
                lambda: self.poll(hook), timeout=self.timeout, poll_interval=self.poll_interval,
                describe=self.progress, logger=self.log, timeout_message=self.timeout_message, started_at=self.started_at,
            )
            yield TriggerEvent({**event, "payload": self.payload})
        finally:
            await asyncio.to_thread(hook.close)
