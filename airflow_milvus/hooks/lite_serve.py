"""The shared Milvus Lite server process: ``python -m airflow_milvus.hooks.lite_serve``.

It serves milvus-lite's own gRPC servicer, as ``milvus-lite server`` does, with two changes:

- it listens on a Unix socket that only the ``.db``'s owner can reach (the caller puts it in
  an owner-only directory and this process creates it with mode 0600), never on TCP, where
  any local user could read and change the collections;
- it exits after ``--idle-timeout`` seconds with no request in flight and none arriving. The
  data stays in the ``.db``; the next use starts a server again, without the load state.

It starts without importing Airflow: it is spawned by :mod:`airflow_milvus.hooks.lite_server`,
which reads the timeout from Airflow's configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import threading
import time
from concurrent import futures

MAX_MESSAGE = 256 * 1024 * 1024  # as milvus-lite's own server and Milvus standalone


class Activity:
    """Counts requests in flight and remembers when the last one ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._last = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self._in_flight else time.monotonic() - self._last

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._last = time.monotonic()

    def counted(self, handler):
        """``handler`` (a gRPC method handler) whose calls are counted."""
        self._enter()
        self._leave()  # a call that arrives counts, even one with no handler
        if handler is None or handler.unary_unary is None:  # MilvusService's methods are all unary
            return handler

        def call(request, context, _call=handler.unary_unary):
            self._enter()
            try:
                return _call(request, context)
            finally:
                self._leave()

        return handler._replace(unary_unary=call)


def serve(data_dir: str, socket_path: str, *, idle_timeout: float, state_file: str, lock_file: str) -> None:
    # milvus-lite's servicer and engine: its own server builds them the same way
    # (milvus_lite.adapter.grpc.server._build_server), with no hook for an interceptor.
    from milvus_lite.adapter.grpc.servicer import MilvusServicer
    from milvus_lite.db import MilvusLite
    from pymilvus.grpc_gen import milvus_pb2_grpc

    import grpc

    class CountCalls(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            return activity.counted(continuation(handler_call_details))

    db = MilvusLite(data_dir)
    activity = Activity()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=10),
        interceptors=[CountCalls()],
        options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)],
    )
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(MilvusServicer(db), server)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)  # a socket left by a server that was killed
    old_umask = os.umask(0o177)
    try:
        server.add_insecure_port(f"unix:{socket_path}")
    finally:
        os.umask(old_umask)
    server.start()
    print(f"Milvus Lite serving {data_dir} on unix:{socket_path}, idle timeout {idle_timeout:g}s", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    retired = None
    try:
        while not stop.wait(min(idle_timeout / 4, 5.0) if idle_timeout > 0 else 5.0):
            if idle_timeout > 0 and activity.idle_for() >= idle_timeout:
                retired = _retire(state_file, lock_file, activity, idle_timeout)
                if retired:
                    print(f"No request for {idle_timeout:g}s: stopping", flush=True)
                    break
    finally:
        server.stop(grace=5).wait()
        db.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        if retired:
            retired.close()  # releases the start lock: the .db is free for the next server


def _retire(state_file: str, lock_file: str, activity: Activity, idle_timeout: float):
    """Take this server off the record under the start lock, and keep the lock until the
    ``.db`` is closed: a client then waits for a new server instead of finding this one
    stopping, or a new one that cannot open the ``.db`` yet. A request that arrived
    meanwhile keeps it alive. Returns the locked file, or None."""
    lock = open(lock_file, "a+")
    fcntl.flock(lock, fcntl.LOCK_EX)
    if activity.idle_for() < idle_timeout:
        lock.close()
        return None
    with contextlib.suppress(OSError, ValueError):
        with open(state_file) as state:
            recorded = json.load(state).get("pid")
        if recorded == os.getpid():
            os.unlink(state_file)
    return lock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m airflow_milvus.hooks.lite_serve", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--idle-timeout", type=float, default=0.0, help="seconds; 0 never stops")
    parser.add_argument("--state-file", required=True)
    parser.add_argument("--lock-file", required=True)
    args = parser.parse_args(argv)
    serve(args.data_dir, args.socket, idle_timeout=args.idle_timeout, state_file=args.state_file, lock_file=args.lock_file)


if __name__ == "__main__":
    main()
