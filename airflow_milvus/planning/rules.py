"""Milvus version and release rules, and what a build status means.

Pure functions of what the server reported (its version, a load state, a build status).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from airflow_milvus.planning.specs import is_vector_spec


def parse_version(version: str) -> tuple[int, ...]:
    """'v2.3.5-lite' -> (2, 3, 5); 'milvus_lite-3.2.2' -> (0,), unknown."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    if not match:
        return (0,)
    return tuple(int(p) for p in match.groups() if p is not None)


def is_lite_version(version: str) -> bool:
    return (version or "").startswith("milvus_lite")


def needs_release(
    specs: Iterable[Mapping[str, Any]], load_state: str, server_version: str | Callable[[], str]
) -> bool:
    """Whether the collection must be released before ``specs`` can be dropped.

    Every Milvus refuses to drop a vector index from a loaded collection. Before 2.6 (and on
    Milvus Lite) scalar indexes need a release too; 2.6 relaxed that. ``server_version`` may be
    a reader: it is called only when the answer depends on it (scalar indexes, loaded).
    """
    if load_state not in ("Loaded", "Loading"):
        return False
    specs = list(specs)
    if not specs:
        return False
    if any(is_vector_spec(s) for s in specs):
        return True
    version = server_version() if callable(server_version) else server_version
    return is_lite_version(version) or parse_version(version) < (2, 6)


def build_outcome(status: Mapping[str, Any]) -> str:
    """'done', 'failed', 'missing' or 'pending' for an ``index_build_status`` dict.

    A build is done only when Milvus says Finished *and* no rows are pending.
    """
    state = status.get("state")
    if state == "NotExist":
        return "missing"
    if state == "Failed":
        return "failed"
    if state == "Finished" and int(status.get("pending_index_rows") or 0) == 0:
        return "done"
    return "pending"
