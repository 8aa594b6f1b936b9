"""Import files as the bulk import operator sees them: items, formats, fingerprints, rows.

One *item* is what one Milvus import job reads: a single row-based JSON (``{"rows": [...]}``)
or Parquet file, or the NumPy column files (``<field>.npy``) of one batch. The same readers
check files before a job starts and feed Milvus Lite, which has no import jobs.

pyarrow and numpy are imported inside functions only (DAG-parse cost).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from airflow_milvus.errors import Fix, MilvusInputError

JSON_CHUNK = 1 << 20  # bytes read at a time: a JSON file is streamed, never loaded whole
# Opens one path as a seekable binary file (a key in a bucket: imports.bucket.Bucket.open); None: the local path.
Opener = Callable[[str], io.BufferedIOBase] | None
S3_SCHEME = "s3://"
_JSON_START = re.compile(r'\s*(\{\s*"rows"\s*:\s*)?\[')


def normalize_items(files: Any) -> list[list[str]]:
    """``files`` as a list of items, each a list of paths; refuse what no job can read."""
    if isinstance(files, str) and files.strip().startswith("["):
        try:  # a list rendered by a Jinja template without native rendering
            files = json.loads(files)
        except json.JSONDecodeError:
            pass
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, (list, tuple)) or not files:
        raise MilvusInputError(
            f"files={files!r}: give a non-empty list of paths Milvus can read (absolute paths for a "
            "standalone server with local storage, keys in its bucket for MinIO/S3), or lists of "
            "NumPy column files, one list per batch."
        )
    items = []
    for number, item in enumerate(files):
        paths = [item] if isinstance(item, str) else item
        if not isinstance(paths, (list, tuple)) or not paths or not all(isinstance(p, str) and p.strip() for p in paths):
            raise MilvusInputError(
                f"files[{number}]={item!r}: each item is one path, or a non-empty list of NumPy column "
                "files of one batch (strings)."
            )
        items.append([p.strip() for p in paths])
    for item in items:
        file_format(item)
    return items


def split_key(path: str, bucket: str | None) -> tuple[str | None, str]:
    """``s3://bucket/key``, or a plain key in ``bucket`` -> (bucket, key without a leading slash).
    Without a bucket, a path that is no ``s3://`` URI is returned as it is."""
    if path.startswith(S3_SCHEME):
        named, _, key = path[len(S3_SCHEME):].partition("/")
        if bucket and named != bucket:
            raise MilvusInputError(
                f"Import file {path!r} is in bucket {named!r}, but Milvus reads import files only from its "
                f"own bucket {bucket!r} (minio.bucketName). Copy the file there, or fix bucket_name."
            )
        return named, key.lstrip("/")
    return bucket, path.lstrip("/") if bucket else path  # a local path keeps its leading slash


def file_format(item: list[str]) -> str:
    """'json', 'parquet' or 'numpy', from the file names."""
    if len(item) == 1 and item[0].lower().endswith(".json"):
        return "json"
    if len(item) == 1 and item[0].lower().endswith(".parquet"):
        return "parquet"
    if all(p.lower().endswith(".npy") for p in item):
        return "numpy"
    raise MilvusInputError(
        f"Import item {item}: use one .json (row-based, {{\"rows\": [...]}}) or .parquet file per item, or "
        "a list of .npy column files (one per field) for one batch. Milvus imports one JSON or Parquet "
        "file per job, so list several files as separate items."
    )


def fingerprint(item: list[str], stats: list[dict[str, Any] | None] | None = None) -> str:
    """What makes two runs' files "the same": the paths in order, each with the size and
    modification time (nanoseconds) the worker sees, or for keys in a bucket the ``stats``
    read through the S3 API (size and ETag). Paths the worker cannot see count by path alone."""
    if stats is not None:
        parts = [[path, (s or {}).get("size"), (s or {}).get("etag")] for path, s in zip(item, stats)]
        return hashlib.sha256(json.dumps(["s3", parts]).encode()).hexdigest()[:32]
    parts = []
    for path in item:
        try:
            stat = os.stat(path)
            parts.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            parts.append([path, None, None])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def check_visible(item: list[str], *, need_absolute: bool) -> None:
    """Every file exists here (and is absolute where Milvus resolves paths itself)."""
    for path in item:
        if not os.path.isfile(path):
            raise MilvusInputError(
                f"Import file {path!r} does not exist on this worker. Fix the path.",
                fixes=[Fix("aws_conn_id", purpose="if it is a key in Milvus's bucket (checked through the S3 API)"),
                       Fix("validate_files", False, purpose="if it is a path on the Milvus host only")],
            )
        if need_absolute and not os.path.isabs(path):
            raise MilvusInputError(
                f"Import file {path!r} is a relative path: the Milvus server resolves it in its own working "
                f"directory and fails with 'no such file'. Give the absolute path {os.path.abspath(path)!r}."
            )


def read_rows(
    item: list[str], *, batch_size: int = 1000, limit: int | None = None, opener: Opener = None
) -> Iterator[list[dict[str, Any]]]:
    """The item's rows as dicts, ``batch_size`` at a time, at most ``limit`` rows (and only the
    bytes those rows need when ``opener`` reads a bucket)."""
    kind = file_format(item)
    reader = {"json": _json_rows, "parquet": _parquet_rows, "numpy": _numpy_rows}[kind]
    left = limit
    if limit is not None:
        batch_size = max(1, min(batch_size, limit))
    for batch in reader(item, batch_size, opener):
        if left is not None:
            batch = batch[:left]
            left -= len(batch)
        if batch:
            yield batch
        if left is not None and left <= 0:
            return


def _json_rows(item: list[str], batch_size: int, opener: Opener) -> Iterator[list[Any]]:
    path = item[0]
    decoder = json.JSONDecoder()
    with io.TextIOWrapper(opener(path) if opener else open(path, "rb"), encoding="utf-8") as f:
        buf = f.read(JSON_CHUNK)
        start = _JSON_START.match(buf)
        if not start:
            raise MilvusInputError(
                f"Import file {path!r} is not a row-based JSON file: it must hold {{\"rows\": [{{...}}, ...]}} "
                "(pymilvus LocalBulkWriter with BulkFileType.JSON writes that)."
            )
        pos, eof, batch, number = start.end(), False, [], 0
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(buf) and not eof:
                buf, pos = f.read(JSON_CHUNK), 0
                eof = not buf
                continue
            if pos < len(buf) and buf[pos] == "]":
                break
            if pos >= len(buf):
                raise MilvusInputError(f"Import file {path!r} ends after row {number} without closing its rows list; the file is cut short.")
            try:
                row, pos = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                more = "" if eof else f.read(JSON_CHUNK)
                if not more:
                    raise MilvusInputError(f"Import file {path!r}: row {number} is not valid JSON ({exc.msg}); fix the file.") from exc
                buf, pos = buf[pos:] + more, 0
                continue
            batch.append(row)
            number += 1
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def _parquet_rows(item: list[str], batch_size: int, opener: Opener) -> Iterator[list[dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(opener(item[0]) if opener else item[0])
    except Exception as exc:
        raise MilvusInputError(f"Import file {item[0]!r} is not a readable Parquet file: {exc}") from exc
    for batch in parquet.iter_batches(batch_size=batch_size):
        yield batch.to_pylist()


def _numpy_rows(item: list[str], batch_size: int, opener: Opener) -> Iterator[list[dict[str, Any]]]:
    import numpy as np

    columns = {}
    for path in item:
        field = os.path.basename(path)[: -len(".npy")]
        try:
            columns[field] = _NpyRows(opener(path)) if opener else np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise MilvusInputError(f"Import file {path!r} is not a readable .npy file: {exc}") from exc
    lengths = {name: len(array) for name, array in columns.items()}
    if len(set(lengths.values())) > 1:
        raise MilvusInputError(f"NumPy files {item} hold different row counts {lengths}; every column of a batch needs the same.")
    total = next(iter(lengths.values()))
    for start in range(0, total, batch_size):
        values = {name: array[start : start + batch_size].tolist() for name, array in columns.items()}
        yield [dict(zip(values, row)) for row in zip(*values.values())]


class _NpyRows:
    """A ``.npy`` file object sliced by rows, read in order: only the rows asked for are read
    (``np.load`` of a file object reads the whole array)."""

    def __init__(self, f: io.BufferedIOBase) -> None:
        import numpy as np

        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        self.shape, fortran_order, self.dtype = read_header(f)
        if fortran_order or self.dtype.hasobject or not self.shape:
            raise ValueError("only C-ordered arrays of numbers, one row per entity, can be imported")
        self.file, self.next_row = f, 0
        self.row_items = int(np.prod(self.shape[1:], dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice):
        import numpy as np

        count = min(rows.stop, len(self)) - rows.start
        assert rows.start == self.next_row, "rows are read in order"
        data = self.file.read(count * self.row_items * self.dtype.itemsize)
        self.next_row += count
        return np.frombuffer(data, dtype=self.dtype).reshape((count, *self.shape[1:]))


def count_rows(item: list[str]) -> int | None:
    """Rows in the item when its format says so cheaply (Parquet, NumPy); else None."""
    kind = file_format(item)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(item[0]).metadata.num_rows
    if kind == "numpy":
        import numpy as np

        return len(np.load(item[0], mmap_mode="r", allow_pickle=False))
    return None


def check_rows(item: list[str], checker, *, limit: int | None, collection_name: str, opener: Opener = None) -> int:
    """Check the item's first ``limit`` rows (all with None) against the collection schema.

    ``checker`` is a ``row_checks.RowChecker``. Returns the rows checked."""
    checked = 0
    for batch in read_rows(item, limit=limit, opener=opener):
        for row in batch:
            why = checker.problem(row)
            if why:
                raise MilvusInputError(
                    f"Import file {', '.join(item)}: row {checked} {why}, so it does not fit collection "
                    f"{collection_name!r}. Fix the file (or the collection's schema) and re-run; nothing was imported."
                )
            checked += 1
    if checked == 0:
        raise MilvusInputError(f"Import file {', '.join(item)} holds no rows; remove it from files.")
    return checked
