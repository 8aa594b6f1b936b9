"""Reads of the recall gate, mixed into :class:`~airflow_milvus.hooks.milvus.MilvusHook`: the live
row count, the seeded query sample, timed searches, and the vector stream of the ground truth.

The stream pages through the collection by primary key itself (as pymilvus's query iterator
does: ``pk > last``, a fixed MVCC timestamp, ``iterator``/``reduce_stop_for_best``), and decodes
each reply column by column into numpy. pymilvus's iterator builds a dict per row and decodes
every vector on its own, which was most of the pass's time (see docs/recall.md). While numpy
works on one page, a thread already fetches the next: the RPC releases the GIL.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_milvus.errors import MilvusProviderError

if TYPE_CHECKING:
    import numpy as np
    from pymilvus import MilvusClient

MAX_PAGE = 16384  # Milvus's limit on one query's limit
_DONE = object()


class MilvusQualityMixin:
    """Mixed into ``MilvusHook``: uses its ``call``, ``timeout`` and client."""

    def count_rows(self, collection_name: str) -> int:
        """Live rows, Strong: count(*) sees deletes; collection stats count an upsert twice until compaction."""
        res = self.call(
            f"query({collection_name}, count(*))",
            lambda c: c.query(collection_name, filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=self.timeout),
        )
        return int(res[0]["count(*)"])

    def sample_rows(self, collection_name: str, *, primary: str, field: str, positions: Sequence[int]) -> tuple[list[Any], np.ndarray]:
        """Primary keys and float32 vectors of the rows at ``positions`` (sorted) of the key stream."""
        import numpy as np

        wanted = np.asarray(positions)
        picked: list[Any] = []
        seen = 0
        for ids, _ in self.iterate_vectors(collection_name, primary=primary, field=None):
            lo, hi = np.searchsorted(wanted, [seen, seen + len(ids)])
            picked.extend(ids[p - seen] for p in wanted[lo:hi])
            seen += len(ids)
            if len(picked) == len(wanted):
                break
        if len(picked) < len(wanted):
            raise MilvusProviderError(f"Collection {collection_name!r} streamed {seen} rows, fewer than the sample needs: it changed during the check; re-run it.")
        picked = [pk if isinstance(pk, str) else int(pk) for pk in picked]
        found = self.call(
            f"get({collection_name}, {len(picked)} ids)",
            lambda c: c.get(collection_name, ids=picked, output_fields=[field], timeout=self.timeout),
        )
        by_id = {row[primary]: row[field] for row in found}
        missing = [pk for pk in picked if pk not in by_id]
        if missing:
            raise MilvusProviderError(f"Rows {missing[:5]} of {collection_name!r} vanished during the check; re-run it.")
        return picked, np.asarray([by_id[pk] for pk in picked], dtype=np.float32)

    def search_vectors(
        self, collection_name: str, queries: Any, *, field: str, primary: str, limit: int, search_params: dict[str, Any]
    ) -> tuple[list[list[Any]], list[float]]:
        """One search per query, as a client searches: (hit ids per query, seconds per search)."""
        ids, seconds = [], []
        for vector in queries:
            data = [[float(x) for x in vector]]

            def search(c: MilvusClient, data=data):
                begin = time.perf_counter()
                hits = c.search(
                    collection_name, data=data, limit=limit, anns_field=field, search_params=search_params,
                    output_fields=[primary], timeout=self.timeout,
                )  # fmt: skip  (Milvus Lite returns every field, vectors too, for output_fields=[])
                return hits, time.perf_counter() - begin

            hits, took = self.call(f"search({collection_name}.{field})", search)
            ids.append([hit["id"] for hit in hits[0]])
            seconds.append(took)
        return ids, seconds

    def iterate_vectors(
        self, collection_name: str, *, primary: str, field: str | None, batch_size: int = 4096, prefetch: bool = True
    ) -> Iterator[tuple[Any, np.ndarray | None]]:
        """Every row once, as pages of (primary keys, (rows, dim) float32 vectors or None).

        Keys are an int64 array or a list of str. Memory is a page or two, whatever the size."""
        pages = self._pages(collection_name, primary, field, min(int(batch_size), MAX_PAGE))
        if not prefetch:
            yield from pages
            return
        yield from _ahead(pages)

    def _pages(self, name: str, primary: str, field: str | None, size: int) -> Generator[tuple[Any, np.ndarray | None], None, None]:
        import datetime

        from pymilvus import mkts_from_datetime

        fields = [primary] + ([field] if field else [])
        string_keys = self._pk_is_string(name, primary)
        first = self._query_page(name, "", [], 1, None, setup=True)
        # One MVCC timestamp for every page: the same snapshot, whatever is written meanwhile.
        # (pymilvus's own fallback moved between 2.6 and 3.0; this is what it computes.)
        ts = first.session_ts or mkts_from_datetime(datetime.datetime.now(), milliseconds=1000.0)
        last: Any = None
        while True:
            expr = "" if last is None else (f'{primary} > "{_quoted(last)}"' if string_keys else f"{primary} > {int(last)}")
            reply = self._query_page(name, expr, fields, size, ts)
            ids, vectors = _decode(reply, primary, field, string_keys)
            if not len(ids):
                return
            yield ids, vectors
            last = max(ids) if string_keys else int(ids.max())  # the server returns the smallest keys above the cursor
            # A short page is not the end: with reduce_stop_for_best the server stops a page where
            # one segment runs out (500 000 rows in several segments came back as 260 000). Only an
            # empty page ends the stream, as pymilvus's own QueryIterator does.

    def _pk_is_string(self, name: str, primary: str) -> bool:
        from pymilvus import DataType

        fields = self.describe_collection(name)["fields"]
        return next(f for f in fields if f["name"] == primary)["type"] == DataType.VARCHAR

    def _query_page(self, name: str, expr: str, fields: list[str], limit: int, ts: int | None, setup: bool = False) -> Any:
        """One Query RPC, the reply undecoded: the request pymilvus's iterator sends."""
        from pymilvus.client.call_context import _api_level_md
        from pymilvus.client.prepare import Prepare
        from pymilvus.client.types import Status
        from pymilvus.client.utils import check_status

        options: dict[str, Any] = {"iterator": "True", "reduce_stop_for_best": "True", "limit": limit}
        if ts is not None:
            options["guarantee_timestamp"] = ts

        def query(c: MilvusClient) -> Any:
            request = Prepare.query_request(name, expr, fields, [], use_default_consistency=True, **options)
            reply = c._get_connection()._stub.Query(request, timeout=self.timeout, metadata=_api_level_md(c._generate_call_context()))
            if Status.EMPTY_COLLECTION not in {reply.status.code, reply.status.error_code}:  # empty: no rows, no error
                check_status(reply.status)
            return reply

        return self.call(f"query({name}, {'setup' if setup else expr or 'first page'})", query)


def _decode(reply: Any, primary: str, field: str | None, string_keys: bool) -> tuple[Any, np.ndarray | None]:
    """Keys and vectors of one Query reply, column by column (no per-row objects)."""
    import numpy as np

    columns = {data.field_name: data for data in reply.fields_data}
    if primary not in columns:
        return [], None
    keys = columns[primary].scalars
    ids = list(keys.string_data.data) if string_keys else np.array(keys.long_data.data, dtype=np.int64)
    if field is None:
        return ids, None
    vectors = columns[field].vectors
    matrix = np.array(vectors.float_vector.data, dtype=np.float32).reshape(-1, vectors.dim)
    if len(matrix) != len(ids):
        raise MilvusProviderError(f"Query returned {len(ids)} keys but {len(matrix)} vectors of {field!r}.")
    return ids, matrix


def _quoted(key: str) -> str:
    return key.replace("\\", "\\\\").replace('"', '\\"')


def _ahead(pages: Generator[Any, None, None], depth: int = 2) -> Iterator[Any]:
    """``pages``, fetched by a thread up to ``depth`` pages ahead of the consumer."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        outcome: Any = _DONE
        try:
            for page in pages:
                if stop.is_set():
                    return
                box.put(page)
        except Exception as exc:  # noqa: BLE001  (handed to the consumer, raised there)
            outcome = exc
        finally:
            box.put(outcome)  # the consumer drains the queue until this thread ends

    worker = threading.Thread(target=produce, name="milvus-pages", daemon=True)
    worker.start()
    try:
        while (item := box.get()) is not _DONE:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                box.get(timeout=0.1)
            except queue.Empty:
                pass
        pages.close()
