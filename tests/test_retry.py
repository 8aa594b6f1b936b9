"""Classification of pymilvus and gRPC exceptions, and the tenacity policy around them.

The exception objects are the real pymilvus/grpc classes; a real server cannot be made to
return every status on demand, so these are built directly.
"""

from __future__ import annotations

import logging

import grpc
import pytest
from pymilvus import MilvusException
from pymilvus.exceptions import AmbiguousIndexName, ParamError

from airflow_milvus.errors import MilvusAuthenticationError, MilvusUnavailableError
from airflow_milvus.hooks.retry import RetryPolicy, call_with_retry, is_transient


class RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def _retriable_exception() -> MilvusException | None:
    try:
        return MilvusException(code=999, message="x", retriable=True)
    except TypeError:  # pymilvus 2.6 has no retriable flag
        return None


RETRIABLE = _retriable_exception()


@pytest.mark.parametrize(
    ("exc", "port_open", "transient"),
    [
        (RpcError(grpc.StatusCode.UNAVAILABLE), None, True),
        (RpcError(grpc.StatusCode.DEADLINE_EXCEEDED), None, True),
        (RpcError(grpc.StatusCode.INVALID_ARGUMENT), None, False),
        (RpcError(grpc.StatusCode.UNAUTHENTICATED), None, False),
        (MilvusException(code=1, message="unexpected"), None, True),
        (MilvusException(code=4, message="connect failed"), None, True),
        (MilvusException(code=8, message="rate limit"), None, True),
        (MilvusException(code=103, message="not ready"), None, True),
        (MilvusException(code=106, message="unavailable"), None, True),
        (MilvusException(code=65535, message="collection is loaded"), None, False),
        (MilvusException(code=100, message="collection not found"), None, False),
        (MilvusException(code=1100, message="invalid parameter"), None, False),
        pytest.param(
            RETRIABLE, None, True,
            marks=pytest.mark.skipif(RETRIABLE is None, reason="MilvusException(retriable=...) needs pymilvus 3"),
        ),  # fmt: skip
        (MilvusException(code=2, message="illegal connection params or server unavailable"), lambda: False, True),
        (MilvusException(code=2, message="illegal connection params or server unavailable"), lambda: True, False),
        (MilvusException(code=grpc.StatusCode.UNAVAILABLE, message="[list] Retry run out of 2 retry times"), None, True),
        (MilvusException(code=1, message="Open local milvus failed"), None, True),
        (AmbiguousIndexName(message="There are multiple indexes"), None, False),
        (ParamError(message="bad param"), None, False),
        (ConnectionResetError("reset"), None, True),
        (ValueError("x"), None, False),
    ],
)
def test_classification(exc, port_open, transient):
    assert is_transient(exc, port_open) is transient


def test_transient_then_success_is_retried(capfd):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RpcError(grpc.StatusCode.UNAVAILABLE, "connection reset")
        return "ok"

    policy = RetryPolicy(attempts=5, max_wait=10, initial_wait=0.01)
    assert call_with_retry(flaky, policy=policy, what="op", log=logging.getLogger("t")) == "ok"
    assert len(calls) == 3


def test_exhausted_transient_becomes_unavailable_with_bound():
    policy = RetryPolicy(attempts=3, max_wait=10, initial_wait=0.01)
    with pytest.raises(MilvusUnavailableError, match=r"after 3 attempts .*bound: 3 attempts within 10s"):
        call_with_retry(lambda: (_ for _ in ()).throw(RpcError(grpc.StatusCode.UNAVAILABLE)), policy=policy, what="op", log=logging.getLogger("t"))


def test_auth_failure_is_not_retried_and_redacted():
    calls = []

    def refused():
        calls.append(1)
        raise MilvusException(code=2, message="illegal connection params or server unavailable")

    with pytest.raises(MilvusAuthenticationError, match="authentication failed") as err:
        call_with_retry(refused, policy=RetryPolicy(attempts=5, initial_wait=0.01), what="op",
                        log=logging.getLogger("t"), port_open=lambda: True)
    assert len(calls) == 1
    assert "unavailable" not in str(err.value)


def test_permanent_error_propagates_unchanged():
    exc = MilvusException(code=65535, message="index cannot be dropped, collection is loaded")
    with pytest.raises(MilvusException) as err:
        call_with_retry(lambda: (_ for _ in ()).throw(exc), policy=RetryPolicy(initial_wait=0.01), what="op", log=logging.getLogger("t"))
    assert err.value is exc


def test_policy_validation():
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="max_wait"):
        RetryPolicy(max_wait=-1)


@pytest.mark.parametrize(
    ("message", "auth"),
    [
        ("can't find collection authors", False),
        ("field author_id not found", False),
        ("tokenizer params invalid", False),
        ("Authentication failed: incorrect password", True),
        ("the token is expired", True),
        ("invalid api key", True),
        ("Unauthenticated request", True),
    ],
)
def test_auth_failure_words(message, auth):
    from airflow_milvus.hooks.retry import is_auth_failure

    assert is_auth_failure(MilvusException(code=100, message=message), lambda: True) is auth
