"""Order the collected tests so that xdist's work stealing starts every worker on its share of
the slow ones.

``--dist worksteal`` first hands each worker a contiguous, equal-count slice of the collection,
and a worker that runs dry steals from the end of another's queue. In collection order the
slow tests (Airflow deployments, CLI subprocesses, server crashes) cluster in a few modules: one
worker got most of them and ran the last ones alone while the others idled. Here the slow
tests are dealt out, longest first, to the slice with the least slow work, each slice starting
with its slow tests and then filled up, in collection order, with the fast ones.

Tests sharing a module- or class-scoped fixture (one server of their own), or one of the
session fixtures in ``GROUPED_SESSION_FIXTURES`` (the shared Airflow deployment), stay together
in one slice: split, each worker would set that fixture up again.
"""

from __future__ import annotations

import pytest

# Session-scoped, so that tests in several modules share them, but too costly for every worker.
GROUPED_SESSION_FIXTURES = frozenset({"server_deployment"})


def _group_key(item: pytest.Item) -> tuple:
    session = sorted(GROUPED_SESSION_FIXTURES & set(item._fixtureinfo.name2fixturedefs))
    if session:
        return ("session", *session)
    shared = sorted(
        name
        for name, defs in item._fixtureinfo.name2fixturedefs.items()
        if defs and defs[-1].scope in ("module", "class", "package")
    )
    # Tests that share such a fixture are one group; any other test is a group of its own.
    return (item.module.__name__, getattr(item.cls, "__name__", None), *shared) if shared else (item.nodeid,)


def slice_sizes(count: int, workers: int) -> list[int]:
    """The slice sizes of xdist's WorkStealingScheduling: ``pending // nodes_remaining`` each."""
    sizes, remaining = [], count
    for i in range(workers):
        sizes.append(remaining // (workers - i))
        remaining -= sizes[-1]
    return sizes


def spread_slow_tests(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    groups: dict[tuple, list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker("slow"):
            groups.setdefault(_group_key(item), []).append(item)
    slow = {id(item) for group in groups.values() for item in group}
    fast = [item for item in items if id(item) not in slow]
    sizes = slice_sizes(len(items), workers)
    slices: list[list[pytest.Item]] = [[] for _ in range(workers)]
    slow_count = [0] * workers  # slow tests take about a minute each, fast ones seconds: count the slow
    for group in sorted(groups.values(), key=len, reverse=True):  # longest first, to the lightest slice with room
        fits = [i for i in range(workers) if len(slices[i]) + len(group) <= sizes[i]] or list(range(workers))
        target = min(fits, key=lambda i: slow_count[i])
        slices[target].extend(group)
        slow_count[target] += len(group)
    for i in range(workers):
        room = max(sizes[i] - len(slices[i]), 0) if i < workers - 1 else len(fast)
        slices[i].extend(fast[:room])
        del fast[:room]
    return [item for part in slices for item in part]
