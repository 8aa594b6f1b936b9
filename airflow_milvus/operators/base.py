"""Shared plumbing of the Milvus operators: connection id, retry settings, the hook."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.specs import as_bool, as_seconds


class MilvusBaseOperator(BaseOperator):
    """Base for Milvus operators; subclasses implement :meth:`run`.

    :param milvus_conn_id: Airflow connection of type ``milvus`` (templated).
    :param retry_attempts: attempts per Milvus call on transient faults.
    :param retry_max_wait: time budget in seconds for retrying one call.
    :param rpc_timeout: per-RPC timeout in seconds; default from the connection.
    """

    template_fields: Sequence[str] = ("milvus_conn_id",)
    # Templated fields render to text ("False" is truthy): these are coerced before use.
    bool_fields: Sequence[str] = ()
    seconds_fields: Sequence[str] = ()
    ui_color = "#e0ecff"

    def __init__(
        self,
        *,
        milvus_conn_id: str = MilvusHook.default_conn_name,
        retry_attempts: int = 5,
        retry_max_wait: float = 60.0,
        rpc_timeout: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.milvus_conn_id = milvus_conn_id
        self.retry_attempts = retry_attempts
        self.retry_max_wait = retry_max_wait
        self.rpc_timeout = rpc_timeout

    @cached_property
    def hook(self) -> MilvusHook:
        return MilvusHook(
            milvus_conn_id=self.milvus_conn_id,
            retry_attempts=self.retry_attempts,
            retry_max_wait=self.retry_max_wait,
            timeout=self.rpc_timeout,
        )

    def coerce_rendered_fields(self) -> None:
        for name in self.bool_fields:
            setattr(self, name, as_bool(getattr(self, name), f"{self.task_id}: {name}"))
        for name in self.seconds_fields:
            setattr(self, name, as_seconds(getattr(self, name), f"{self.task_id}: {name}"))

    def execute(self, context) -> Any:
        self.coerce_rendered_fields()
        # Close at the end: a Milvus Lite file can be opened by one process at a time.
        with self.hook:
            return self.run(context)

    def run(self, context) -> Any:
        raise NotImplementedError
