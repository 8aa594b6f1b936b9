"""Count the gRPC calls pymilvus makes, by method, with a client interceptor.

``install()`` wraps ``grpc.insecure_channel``/``grpc.secure_channel`` so every channel
pymilvus opens afterwards (one per ``MilvusClient``) carries the counting interceptor.
Calls made while pymilvus or the provider waits (index build polls, load progress polls)
are tagged ``poll``: their number depends on how long the server takes, not on the code,
so they are reported apart from the fixed RPCs.
"""

from __future__ import annotations

import collections
import functools
import os
import sys
import threading

import grpc

_state = threading.local()
_lock = threading.Lock()
calls: collections.Counter = collections.Counter()  # (kind, method) -> count
sites: collections.Counter = collections.Counter()  # (method, caller chain) -> count, fixed calls only
_PKG = os.sep + "airflow_milvus" + os.sep


def _site() -> str:
    """The provider functions on the stack, outermost first: who asked for this RPC."""
    chain, frame = [], sys._getframe(3)
    while frame is not None:
        path = frame.f_code.co_filename
        if _PKG in path:
            module = path.rsplit(_PKG, 1)[1].removesuffix(".py").replace(os.sep, ".")
            chain.append(f"{module}.{frame.f_code.co_name}")
        elif path.endswith(".py") and os.sep + "dags" + os.sep in path and not chain:
            chain.append(f"dag:{frame.f_code.co_name}")
        frame = frame.f_back
    return " > ".join(reversed(chain)) or "?"


class _Counter(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def _count(self, details):
        method = details.method.rsplit("/", 1)[-1]
        kind = "poll" if getattr(_state, "polling", 0) else "fixed"
        site = _site() if kind == "fixed" else None
        with _lock:
            calls[(kind, method)] += 1
            if site:
                sites[(method, site)] += 1

    def intercept_unary_unary(self, continuation, details, request):
        self._count(details)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):
        self._count(details)
        return continuation(details, request)


def _polling(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _state.polling = getattr(_state, "polling", 0) + 1
        try:
            return fn(*args, **kwargs)
        finally:
            _state.polling -= 1

    wrapper._bench_polling = True
    return wrapper


def install() -> None:
    """Idempotent. Must run before the first ``MilvusClient`` is created."""
    if getattr(grpc, "_bench_counting", False):
        return
    interceptor = _Counter()
    for name in ("insecure_channel", "secure_channel"):
        original = getattr(grpc, name)
        setattr(grpc, name, lambda *a, _orig=original, **kw: grpc.intercept_channel(_orig(*a, **kw), interceptor))
    grpc._bench_counting = True

    from pymilvus.client.grpc_handler import GrpcHandler

    import airflow_milvus.lifecycle.waiting as builds  # the operators, the sensor and the trigger poll through it

    # pymilvus's own waits (create_index(sync=True), load_collection) and the provider's.
    for name in ("wait_for_creating_index", "wait_for_loading_collection"):
        setattr(GrpcHandler, name, _polling(getattr(GrpcHandler, name)))
    builds.check_builds = _polling(builds.check_builds)


def reset() -> None:
    with _lock:
        calls.clear()
        sites.clear()


def snapshot() -> dict[str, dict[str, int]]:
    with _lock:
        out: dict[str, dict[str, int]] = {"fixed": {}, "poll": {}}
        for (kind, method), n in sorted(calls.items()):
            out[kind][method] = n
        out["sites"] = {f"{method} @ {site}": n for (method, site), n in sorted(sites.items())}
        return out
