"""The one retry policy of the provider: classify Milvus faults, retry only transient ones.

pymilvus raises two kinds of exceptions: ``MilvusException`` (with an int code, or a
``grpc.StatusCode`` when its own retry loop ran out) and raw ``grpc.RpcError``. Both are
classified here before tenacity sees them. Nothing in this module imports pymilvus or grpc
at import time.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from airflow_milvus.errors import MilvusAuthenticationError, MilvusUnavailableError

T = TypeVar("T")

# Milvus status codes that a retry can cure: UnexpectedError(1) is used for transport
# hiccups, 4 ConnectFailed, 8 RateLimit/NotReadyServe, 12 ServerNotReady (older servers),
# 103 NotReadyServe, 106 ServiceUnavailable (2.3 merr codes).
TRANSIENT_CODES = frozenset({1, 4, 8, 12, 103, 106})
CONNECTION_FAILED_CODE = 2
_TRANSIENT_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
_TRANSIENT_MARKERS = ("Retry run out", "Retry timeout", "Open local milvus failed")
# Whole words only: "can't find collection authors" is not an authentication failure.
_AUTH_RE = re.compile(
    r"\b(authentication|unauthenticated|unauthori[sz]ed|credentials?)\b"
    r"|\b(incorrect|invalid|wrong|expired)\b[^.]{0,30}\b(password|token|api key)\b"
    r"|\b(password|token|api key)\b[^.]{0,30}\b(incorrect|invalid|wrong|expired)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient faults.

    :param attempts: total attempts, the first included.
    :param max_wait: time budget in seconds: no new attempt starts after it has passed, so
        a call fails within ``max_wait`` plus one per-call timeout.
    :param initial_wait: first back-off in seconds (exponential with jitter after it).
    """

    attempts: int = 5
    max_wait: float = 60.0
    initial_wait: float = 1.0

    def __post_init__(self):
        if int(self.attempts) < 1:
            raise ValueError(f"retry attempts must be >= 1, got {self.attempts!r}")
        if float(self.max_wait) < 0:
            raise ValueError(f"retry max_wait must be >= 0 seconds, got {self.max_wait!r}")


def _grpc_code_name(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError.code()
        try:
            code = code()
        except Exception:
            return None
    return getattr(code, "name", None)


def error_code(exc: BaseException) -> int | str | None:
    """The Milvus code as an int, or the gRPC status name, or None."""
    name = _grpc_code_name(exc)
    if name:
        return name
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def error_message(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    if callable(details):  # grpc.RpcError
        try:
            return str(details())
        except Exception:
            pass
    return str(getattr(exc, "message", None) or exc)


def _chained_grpc_codes(exc: BaseException) -> set[str]:
    """gRPC status names anywhere in the cause/context chain (pymilvus re-raises ``e from e``)."""
    names: set[str] = set()
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        name = _grpc_code_name(e)
        if name:
            names.add(name)
        todo += [e.__cause__, e.__context__]
    return names


def is_auth_failure(exc: BaseException, port_open: Callable[[], bool] | None) -> bool:
    """Milvus 2.3 answers wrong credentials with code 2, the same as 'server unavailable'.
    The gRPC status underneath tells them apart; only without one, whether the port answers
    (a proxy or load balancer in front answers even when the server is down)."""
    code = error_code(exc)
    if code == "UNAUTHENTICATED" or code == 1800:
        return True
    chained = _chained_grpc_codes(exc)
    if "UNAUTHENTICATED" in chained:
        return True
    if chained & _TRANSIENT_GRPC:
        return False
    if _AUTH_RE.search(error_message(exc)):
        return True
    return code == CONNECTION_FAILED_CODE and port_open is not None and port_open()


def is_transient(exc: BaseException, port_open: Callable[[], bool] | None = None) -> bool:
    """True when repeating the same call may succeed."""
    if isinstance(exc, (MilvusAuthenticationError,)):
        return False
    code = error_code(exc)
    if code in _TRANSIENT_GRPC:
        return True
    msg = error_message(exc)
    if any(marker in msg for marker in _TRANSIENT_MARKERS):
        return True
    if code == CONNECTION_FAILED_CODE:
        return not is_auth_failure(exc, port_open)
    if getattr(exc, "is_input_error", False) is True:
        return False
    # pymilvus's client-side errors (ParamError, AmbiguousIndexName, ...) subclass
    # MilvusException with code 1; only the server's own code 1 is a transport hiccup.
    if code == 1 and type(exc).__name__ != "MilvusException":
        return False
    if isinstance(code, int) and code in TRANSIENT_CODES:
        return True
    if getattr(exc, "retriable", False) is True:
        return True
    # A connection reset below pymilvus surfaces as a plain OSError/ConnectionError.
    return isinstance(exc, ConnectionError)


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    what: str,
    log: logging.Logger,
    port_open: Callable[[], bool] | None = None,
    redact: Callable[[str], str] = str,
) -> T:
    """Run ``fn`` and retry transient faults under ``policy``.

    Permanent faults propagate at once. Refused credentials become
    :class:`MilvusAuthenticationError`; transient faults that outlive the policy become
    :class:`MilvusUnavailableError`, with the bound in the message.
    """
    started = time.monotonic()

    def _before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "Milvus %s: attempt %d/%d failed (%s: %s); retrying in %.1fs",
            what,
            state.attempt_number,
            policy.attempts,
            type(exc).__name__,
            redact(error_message(exc)) if exc else "",
            wait,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts)
        | tenacity.stop_before_delay(policy.max_wait),
        wait=tenacity.wait_exponential_jitter(
            initial=policy.initial_wait, max=max(policy.max_wait / 2, 0.001), jitter=policy.initial_wait
        ),
        retry=tenacity.retry_if_exception(lambda e: is_transient(e, port_open)),
        before_sleep=_before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except Exception as exc:
        message = redact(error_message(exc))
        if is_auth_failure(exc, port_open):
            # Milvus 2.3 words refused credentials as "server unavailable" (code 2); don't echo it.
            detail = "the server's port answers, so this is not an outage" if error_code(exc) == CONNECTION_FAILED_CODE else message
            raise MilvusAuthenticationError(
                f"Milvus {what}: authentication failed, the server refused the credentials "
                f"({detail}). Fix the login/password or token of the connection."
            ) from exc
        if is_transient(exc, port_open):
            elapsed = time.monotonic() - started
            made = retrying.statistics.get("attempt_number", policy.attempts)
            raise MilvusUnavailableError(
                f"Milvus {what}: server unavailable after {made} attempts in "
                f"{elapsed:.1f}s (bound: {policy.attempts} attempts within "
                f"{policy.max_wait:.0f}s, plus one per-call timeout): {message}. "
                "Check that the server is running and reachable, or raise retry_attempts."
            ) from exc
        raise
