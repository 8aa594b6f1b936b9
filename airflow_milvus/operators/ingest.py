"""Bulk (re)load rows into a collection, batch by batch, each batch under the retry policy."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from airflow_milvus import lineage
from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.imports.rows import RowChecker
from airflow_milvus.operators.base import MilvusBaseOperator
from airflow_milvus.planning.validation import validate_name

MODES = ("insert", "upsert")
# common.ai's LlamaIndexEmbeddingOperator returns {"chunks": [{"text", "metadata", "vector"}, ...]}:
# each chunk key goes to the field named here; None leaves it out, "*" spreads a dict into fields.
CHUNK_FIELDS = {"text": "text", "vector": "vector", "metadata": "metadata"}


def chunks_to_rows(data: Mapping[str, Any], mapping: Mapping[str, Any] | None) -> Iterator[dict[str, Any]]:
    """Rows from an embedding operator's ``{"chunks": [...]}``, chunk keys renamed by ``mapping``."""
    fields = {**CHUNK_FIELDS, **dict(mapping or {})}
    chunks = data.get("chunks")
    if not isinstance(chunks, list):
        raise MilvusInputError(f"data['chunks'] must be a list of chunk dicts (text, metadata, vector); got {type(chunks).__name__}.")
    for number, chunk in enumerate(chunks):
        if not isinstance(chunk, Mapping):
            raise MilvusInputError(f"data['chunks'][{number}] is a {type(chunk).__name__}, not a dict with text, metadata, vector.")
        row: dict[str, Any] = {}
        for key, value in chunk.items():
            target = fields.get(key, key)
            if target is None:
                continue
            if target == "*":
                if not isinstance(value, Mapping):
                    raise MilvusInputError(f"data['chunks'][{number}][{key!r}] is not a dict, so chunk_fields cannot spread it ('*').")
                row.update(value)
            else:
                row[target] = value
        yield row


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


class MilvusIngestOperator(MilvusBaseOperator):
    """Write rows into a collection in batches: the bulk reload step of a reindex.

    Each batch is one insert/upsert call under the provider's retry policy. Rows are
    checked against the collection schema first, so a bad row fails the task with its
    batch and row index, before that batch is sent.

    Re-running: ``mode="upsert"`` is safe to re-run, rows with the same primary key are
    replaced. ``mode="insert"`` is not: a re-run (or a retried batch whose first attempt
    reached the server) writes the rows again; with ``auto_id`` they get new keys and
    become duplicates. Prefer upsert for scheduled reloads; upsert needs the primary key
    in every row.

    :param collection_name: the collection (or an alias of it) to write to (templated).
    :param data: a list of row dicts, an XComArg resolving to one, or a callable returning
        an iterable of rows (a generator streams more rows than fit in memory). The
        callable receives the context keys it names as arguments (``params``, ``ti``...).
    :param batch_size: rows per insert/upsert call (templated).
    :param mode: ``"insert"`` or ``"upsert"`` (templated).
    :param flush: flush the collection at the end so the rows are sealed and counted.
    :param chunk_fields: for ``data`` shaped like the output of common.ai's
        ``LlamaIndexEmbeddingOperator`` (``{"chunks": [{"text", "metadata", "vector"}]}``): which
        field each chunk key goes to, merged over the default ``{"text": "text", "vector":
        "vector", "metadata": "metadata"}``. ``None`` leaves a key out; ``"*"`` spreads a dict
        (e.g. ``{"metadata": "*"}`` makes each metadata key a field). Other keys keep their name.
    :return: ``{"collection_name": str, "rows": int, "batches": int}``
    """

    template_fields: Sequence[str] = ("milvus_conn_id", "collection_name", "data", "batch_size", "mode", "flush", "chunk_fields")
    template_fields_renderers = {"data": "json", "chunk_fields": "json"}
    bool_fields = ("flush",)
    int_fields = {"batch_size": 1}

    def __init__(
        self,
        *,
        collection_name: str,
        data: list[dict[str, Any]] | Callable[..., Iterable[dict[str, Any]]] | Any,
        batch_size: int = 1000,
        mode: str = "insert",
        flush: bool = True,
        chunk_fields: dict[str, str | None] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        # Airflow calls callable template fields with (context, jinja_env) at render time;
        # a row callable is kept apart and called in run() with the context keys it names.
        self.data_callable = data if callable(data) else None
        self.data = None if callable(data) else data
        self.batch_size = batch_size
        self.mode = mode
        self.flush = flush
        self.chunk_fields = chunk_fields

    def coerce_int(self, name: str, value: Any, low: int, high: int | None) -> int:
        try:
            return super().coerce_int(name, value, low, high)
        except MilvusInputError:  # ingest's own wording, which users and tests match
            raise MilvusInputError(f"{self.task_id}: {name}={value!r}: use a whole number of rows >= {low}.") from None

    def _rows(self, context) -> Iterable[Any]:
        data = self.data
        if self.data_callable is not None:
            from airflow_milvus.compat import context_kwargs

            data = self.data_callable(**context_kwargs(self.data_callable, context or {}))
        if isinstance(data, Mapping) and "chunks" in data:
            if self.chunk_fields is not None and not isinstance(self.chunk_fields, Mapping):
                raise MilvusInputError(f"chunk_fields={self.chunk_fields!r}: give a dict of chunk key -> field name.")
            return chunks_to_rows(data, self.chunk_fields)
        if data is None or isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
            raise MilvusInputError(
                f"data for {self.collection_name!r} must be a list of row dicts, an XComArg of one, a dict with "
                f"'chunks' (an embedding operator's output), or a callable returning an iterable of rows; got {type(data).__name__}."
            )
        return data

    def run(self, context) -> dict[str, Any]:
        name = validate_name(self.collection_name, "collection name")
        if self.mode not in MODES:
            raise MilvusInputError(f"mode={self.mode!r}: use 'insert' or 'upsert'.")
        if not self.hook.has_collection(name):
            raise MilvusInputError(f"Collection {name!r} does not exist; create it before ingesting into it.")
        checker = RowChecker(self.hook.describe_collection(name), self.mode)
        written = batches = 0
        for number, batch in enumerate(_batches(self._rows(context), self.batch_size), start=1):
            first = written
            for offset, row in enumerate(batch):
                why = checker.problem(row)
                if why:
                    raise MilvusInputError(
                        f"Ingest into {name!r}: batch {number}, row {first + offset} (index {offset} in the "
                        f"batch) {why}. {self._progress(written, batches)} Fix the data and re-run."
                    )
            try:
                self.hook.write_rows(name, batch, mode=self.mode)
            except MilvusProviderError as exc:
                raise type(exc)(
                    f"Ingest into {name!r}: batch {number} (rows {first}-{first + len(batch) - 1}) failed: {exc} "
                    f"{self._progress(written, batches)}"
                ) from exc
            except Exception as exc:
                raise MilvusInputError(
                    f"Ingest into {name!r}: Milvus rejected batch {number} (rows {first}-{first + len(batch) - 1}): "
                    f"{self.hook.redact(error_message(exc))}. {self._progress(written, batches)}"
                ) from exc
            written += len(batch)
            batches += 1
            self.log.info("%s batch %d: %d rows into %s (%d so far)", self.mode, number, len(batch), name, written)
        if self.flush and written:
            self.hook.flush(name)
        self.log.info("%s: %d rows in %d batches into %s", self.mode, written, batches, name)
        lineage.report(self.hook, output_collections=[name] if written else [])
        return {"collection_name": name, "rows": written, "batches": batches}

    def _progress(self, written: int, batches: int) -> str:
        again = "re-running is safe (upsert)" if self.mode == "upsert" else "re-running inserts them again"
        return f"Already written: {written} rows in {batches} batches ({again})."

