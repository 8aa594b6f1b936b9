"""Imports that moved between the supported Airflow versions (3.1, 3.2, 3.3), in one place."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: its Task SDK does not export the configuration
    from airflow.configuration import conf

try:
    from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException
except ImportError:  # Airflow 3.1: not in its Task SDK yet (3.3's are core's classes)
    from airflow.exceptions import AirflowFailException, AirflowNotFoundException

__all__ = ["AirflowFailException", "AirflowNotFoundException", "approval_timeout", "conf", "context_kwargs"]


def approval_timeout(wait: timedelta) -> dict[str, timedelta]:
    """The keyword that bounds how long a HITL ``ApprovalOperator`` waits for a person.

    The standard provider shipped with Airflow 3.1 and 3.2 names it ``execution_timeout``; newer
    ones ``response_timeout`` (they still take ``execution_timeout``, with a deprecation warning).
    Use it as ``ApprovalOperator(..., **approval_timeout(timedelta(hours=24)))``.
    """
    from airflow.providers.standard.operators.hitl import HITLOperator

    if "response_timeout" in inspect.signature(HITLOperator.__init__).parameters:
        return {"response_timeout": wait}
    return {"execution_timeout": wait}


def context_kwargs(func: Callable[..., Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The context entries ``func`` takes: those it names, or all of them if it has ``**kwargs``.

    The same rule as PythonOperator's, in our own code: Airflow's helper for it is private
    (``airflow.sdk.bases.decorator.determine_kwargs``) and absent before 3.2.
    """
    params = inspect.signature(func).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return dict(context)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {name: value for name, value in context.items() if name in named}
