"""``@task.milvus``: a TaskFlow task that receives a connected, retried :class:`MilvusHook`.

::

    @task.milvus(milvus_conn_id="milvus_default", retry_attempts=3)
    def top_titles(milvus_hook, query_vector):
        hits = milvus_hook.search("books_live", [query_vector], limit=5, output_fields=["title"])
        return [hit["entity"]["title"] for hit in hits[0]]

The function names a ``milvus_hook`` parameter (or takes ``**kwargs``); the task fills it in at
run time with a hook whose client is already connected (under the retry policy) and closes it
afterwards, also when the function fails. Every hook call runs under the retry policy; the
hook's ``search`` and ``query`` return JSON-safe results. Registered in the provider info
(``task-decorators``), so ``from airflow.sdk import task`` finds it as ``task.milvus``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk.bases.decorator import (
    DecoratedOperator,
    TaskDecorator,
    task_decorator_factory,
)

from airflow_milvus.operators.base import MilvusConnectedOperator

HOOK_ARGUMENT = "milvus_hook"


def _takes_hook(python_callable: Callable) -> bool:
    params = inspect.signature(python_callable).parameters.values()
    return any(p.name == HOOK_ARGUMENT or p.kind is p.VAR_KEYWORD for p in params)


class _MilvusDecoratedOperator(DecoratedOperator, MilvusConnectedOperator, PythonOperator):
    """Runs the decorated function with ``milvus_hook`` set to a connected ``MilvusHook``.

    :param milvus_conn_id: Airflow connection of type ``milvus`` (templated).
    :param retry_attempts: attempts per Milvus call on transient faults.
    :param retry_max_wait: time budget in seconds for retrying one call.
    :param rpc_timeout: per-RPC timeout in seconds; default from the connection.
    """

    custom_operator_name = "@task.milvus"
    template_fields: Sequence[str] = ("op_args", "op_kwargs", "milvus_conn_id")
    ui_color = "#e0ecff"

    def __init__(self, *, python_callable: Callable, op_args=None, op_kwargs=None, **kwargs) -> None:
        if not _takes_hook(python_callable):
            raise TypeError(
                f"@task.milvus function {python_callable.__name__}() has no {HOOK_ARGUMENT!r} parameter: add one "
                "to receive the connected MilvusHook (or use plain @task)."
            )
        op_kwargs = dict(op_kwargs or {})
        if HOOK_ARGUMENT in op_kwargs:
            raise TypeError(f"@task.milvus fills in {HOOK_ARGUMENT!r} itself: do not pass it to {python_callable.__name__}().")
        # A placeholder, so that Airflow's check of the call against the signature passes; the
        # hook itself is set in execute (it cannot be serialized with the DAG).
        op_kwargs[HOOK_ARGUMENT] = None
        kwargs_to_upstream = {"python_callable": python_callable, "op_args": op_args, "op_kwargs": op_kwargs}
        super().__init__(
            kwargs_to_upstream=kwargs_to_upstream,
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )

    def execute(self, context) -> Any:
        hook = self.hook
        try:
            hook.connect()  # connected before the function runs, under the retry policy
            self.op_kwargs = {**(self.op_kwargs or {}), HOOK_ARGUMENT: hook}
            return super().execute(context)
        finally:
            hook.close()


def milvus_task(python_callable: Callable | None = None, multiple_outputs: bool | None = None, **kwargs) -> TaskDecorator:
    """Wrap a function into a task that receives a connected, retried ``MilvusHook`` as ``milvus_hook``.

    Takes ``milvus_conn_id``, ``retry_attempts``, ``retry_max_wait`` and ``rpc_timeout`` (as the
    operators do) besides ``@task``'s own arguments.
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_MilvusDecoratedOperator,
        **kwargs,
    )


__all__ = ["milvus_task"]
