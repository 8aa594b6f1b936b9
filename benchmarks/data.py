"""Arrange benchmark collections with raw pymilvus (not the code under test).

The schema and vectors are those of example_dags/milvus_reindex.py (id, embedding, title;
row i's vector seeded by i), so the example DAG's search check holds on them.
"""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager

INDEX = {"field_name": "embedding", "index_type": "HNSW", "metric_type": "L2", "params": {"M": 16, "efConstruction": 64}}


def vector(i: int, dim: int) -> list[float]:
    rng = random.Random(i)  # as example_dags/milvus_reindex.py: the same row, the same vector
    return [rng.random() for _ in range(dim)]


@contextmanager
def client(uri: str):
    from pymilvus import MilvusClient

    c = MilvusClient(uri)
    try:
        yield c
    finally:
        c.close()


def index_params(c, spec=INDEX):
    params = c.prepare_index_params()
    params.add_index(
        spec["field_name"], index_type=spec["index_type"], metric_type=spec["metric_type"],
        index_name=spec.get("index_name") or spec["field_name"], params=dict(spec["params"]),
    )
    return params


def create_schema(c, dim: int):
    from pymilvus import DataType

    schema = c.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("title", DataType.VARCHAR, max_length=128)
    return schema


def make_collection(uri: str, name: str, *, rows: int, dim: int, index=INDEX, load: bool = True) -> None:
    """Create ``name`` afresh with ``rows`` rows, flushed; optionally indexed and loaded."""
    with client(uri) as c:
        if c.has_collection(name):
            c.drop_collection(name)
        c.create_collection(name, schema=create_schema(c, dim))
        batch = 10_000
        for start in range(0, rows, batch):
            c.insert(name, [{"id": i, "embedding": vector(i, dim), "title": f"book {i}"} for i in range(start, min(start + batch, rows))])
        c.flush(name)
        if index:
            c.create_index(name, index_params(c, index))  # waits for the build of the segments it saw
            settle(c, name, index.get("index_name") or index["field_name"])
        if load:
            c.load_collection(name)


def build_done(desc: dict) -> bool:
    return desc.get("state") == "Finished" and int(desc.get("pending_index_rows") or 0) == 0


def wait_built(c, name: str, index_name: str, timeout: float = 3600) -> None:
    """Until no row waits for the index: at 1M rows, 2.3 merges small segments after the build, and the merged ones wait."""
    deadline = time.monotonic() + timeout
    while not build_done(desc := c.describe_index(name, index_name)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"index {index_name!r} of {name!r} not built over every row after {timeout:.0f} s: {desc}")
        time.sleep(2)


def settle(c, name: str, index_name: str, timeout: float = 3600) -> None:
    """Merge the small segments now and wait for their index. Milvus 2.3 merges them on its own some
    time after a build, and the merged ones wait for their own: a start state taken before that
    merge is not one (at 1M rows it left 800 000 rows unindexed, after wait_built had seen none)."""
    wait_built(c, name, index_name, timeout)  # 2.3 compacts only segments whose index is built
    job = c.compact(name)
    deadline = time.monotonic() + timeout
    while (state := c.get_compaction_state(job)) != "Completed":
        if time.monotonic() > deadline:
            raise TimeoutError(f"compaction {job} of {name!r} still {state!r} after {timeout:.0f} s")
        time.sleep(2)
    wait_built(c, name, index_name, timeout)


class Watcher(threading.Thread):
    """Poll a collection every ``interval`` s from a client of its own and timestamp events.

    Records (epoch seconds) the first moment the index build is seen done after
    ``arm_build()``, and every change of the load state and of the index status
    (missing, building, done).
    """

    def __init__(self, uri: str, collection: str, index_name: str = "embedding", interval: float = 0.05):
        super().__init__(daemon=True)
        self.uri, self.collection, self.index_name, self.interval = uri, collection, index_name, interval
        self.stop_event = threading.Event()
        self.build_armed = False
        self.build_done_at: float | None = None
        self.load_changes: list[tuple[float, str]] = []
        self.index_changes: list[tuple[float, str]] = []
        self.errors = 0

    def arm_build(self) -> None:
        self.build_done_at, self.build_armed = None, True

    def run(self) -> None:
        with client(self.uri) as c:
            while not self.stop_event.is_set():
                now = time.time()
                try:
                    state = c.get_load_state(self.collection)["state"].name
                    if not self.load_changes or self.load_changes[-1][1] != state:
                        self.load_changes.append((now, state))
                    desc = c.describe_index(self.collection, self.index_name) or {}
                    status = "missing" if not desc else "done" if build_done(desc) else "building"
                    if not self.index_changes or self.index_changes[-1][1] != status:
                        self.index_changes.append((now, status))
                    if self.build_armed and status == "done":
                        self.build_done_at, self.build_armed = now, False
                except Exception:
                    self.errors += 1  # e.g. the index does not exist yet: keep watching
                self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)

    def index_first_done_after(self, since: float) -> float | None:
        """The first change to done at or after ``since`` (a change: it was missing or building)."""
        for i, (t, status) in enumerate(self.index_changes):
            if status == "done" and t >= since and i > 0:
                return t
        return None
