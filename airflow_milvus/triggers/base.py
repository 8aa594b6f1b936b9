"""The polling loop that the provider's triggers share: poll in a worker thread, log progress,
stop on a final event or at the timeout. Subclasses say what one poll is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


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
        """One synchronous poll: an event whose status is success, error or pending."""
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
            while True:
                event = await asyncio.to_thread(self.poll, hook)
                event["payload"] = self.payload
                self.log.info("%s", self.progress(event))
                if event["status"] != "pending":
                    yield TriggerEvent(event)
                    return
                if self.timeout is not None and time.time() - self.started_at >= self.timeout:
                    event.update(status="timeout", message=self.timeout_message(event))
                    yield TriggerEvent(event)
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await asyncio.to_thread(hook.close)
