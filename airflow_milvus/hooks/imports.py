"""Import wrappers of :class:`~airflow_milvus.hooks.milvus.MilvusHook`: start a Milvus import
job, read its state (JSON-safe), and the partition check the bulk import operator needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_milvus.planning.validation import validate_name

if TYPE_CHECKING:
    from pymilvus import MilvusClient

# BulkInsertState codes (pymilvus.client.types), named as Milvus logs them.
STATES = {0: "Pending", 1: "Failed", 2: "Started", 5: "Persisted", 6: "Completed", 7: "Failed and cleaned"}
DONE, FAILED = frozenset({6}), frozenset({1, 7})


def _import_handler(c: MilvusClient):
    """The client's own gRPC handler and call context (its database).

    Private pymilvus access, on purpose: ``MilvusClient`` has no Import call, and
    ``utility.do_bulk_insert`` goes through the ORM's global ``connections`` registry (a second
    connection, keyed by alias). The REST import API arrived with Milvus 2.4, so on 2.3 the gRPC
    Import RPC through this handler is the only route. Kept here so nothing else needs it."""
    return c._get_connection(), c._generate_call_context()


class MilvusImportMixin:
    """Mixed into ``MilvusHook``: uses its ``call`` and ``_kw``."""

    def has_partition(self, collection_name: str, partition_name: str) -> bool:
        validate_name(partition_name, "partition name")
        return bool(self.call(
            f"has_partition({collection_name}.{partition_name})",
            lambda c: c.has_partition(collection_name, partition_name, **self._kw),
        ))

    def start_import_job(self, collection_name: str, partition_name: str | None, files: Sequence[str]) -> int:
        """Start one import job reading ``files``; returns its id. Milvus 2.3 takes one JSON or
        Parquet file, or the NumPy column files of one batch; 2.4+ up to 1,024 JSON/Parquet files
        (``imports.jobs.pack_jobs`` decides). Paths are keys in Milvus's bucket when its storage is
        MinIO/S3. ``partition_name`` None: the default partition."""
        files = list(files)

        def start(c: MilvusClient) -> int:
            handler, context = _import_handler(c)
            return int(handler.do_bulk_insert(collection_name, partition_name or "", files, **self._kw, context=context))

        return self.call(f"import({collection_name} <- {', '.join(files)})", start)

    def import_job_status(self, job_id: int) -> dict[str, Any]:
        """JSON-safe state of one job: job_id, state, state_name, progress, rows, files, reason."""

        def get(c: MilvusClient):
            handler, context = _import_handler(c)
            return handler.get_bulk_insert_state(int(job_id), **self._kw, context=context)

        state = self.call(f"get_import_state({job_id})", get)
        infos = state.infos or {}
        code = int(state.state)
        return {
            "job_id": int(job_id),
            "state": code,
            "state_name": STATES.get(code, f"Unknown ({code})"),
            # Milvus 2.3 reports no percentage until the rows are persisted; 0 until then.
            "progress": int(infos.get("progress_percent") or (100 if code in DONE else 0)),
            "rows": int(state.row_count or 0),
            "files": str(infos.get("files") or ""),
            "reason": str(infos.get("failed_reason") or ""),
        }
