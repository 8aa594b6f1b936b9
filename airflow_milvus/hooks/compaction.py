"""Compaction wrappers of :class:`~airflow_milvus.hooks.milvus.MilvusHook`: start a manual
compaction of one collection, read its state, and count the collection's persisted segments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymilvus import MilvusClient


class MilvusCompactionMixin:
    """Mixed into ``MilvusHook``: uses its ``call``, ``_kw``, ``timeout`` and ``describe_collection``."""

    def start_compaction(self, collection_name: str) -> int:
        """Start a manual compaction of ``collection_name``; returns its compaction id.

        Private pymilvus access, on purpose: ``MilvusClient.compact`` sends the collection's name
        only, and Milvus 2.3 reads only the collection *id* from ManualCompaction: given id 0, a
        2.3.5 server compacts *every* collection it holds (tests/test_compact.py shows it), even
        for a name that does not exist. The request here carries both, which every version reads."""
        collection_id = int(self.describe_collection(collection_name)["collection_id"])

        def start(c: MilvusClient) -> int:
            from pymilvus.client.call_context import _api_level_md
            from pymilvus.client.prepare import Prepare
            from pymilvus.client.utils import check_status

            request = Prepare.manual_compaction(
                collection_name=collection_name, is_clustering=False, is_l0=False, collection_id=collection_id
            )
            reply = c._get_connection()._stub.ManualCompaction(
                request, timeout=self.timeout, metadata=_api_level_md(c._generate_call_context())
            )
            check_status(reply.status)
            return int(reply.compactionID)

        return self.call(f"compact({collection_name})", start)

    def compaction_state(self, compaction_id: int) -> dict[str, Any]:
        """JSON-safe state of one compaction: compaction_id, state ("Executing", "Completed" or
        "UndefiedState", Milvus's spelling), and its plans executing, completed and timed out.

        Through the client's handler: ``MilvusClient.get_compaction_state`` keeps the state's
        name only and drops the plan counts."""

        def get(c: MilvusClient):
            return c._get_connection().get_compaction_state(int(compaction_id), **self._kw, context=c._generate_call_context())

        state = self.call(f"get_compaction_state({compaction_id})", get)
        return {
            "compaction_id": int(compaction_id),
            "state": state.state_name,
            "executing": int(state.in_executing),
            "completed": int(state.completed),
            "timed_out": int(state.in_timeout),
        }

    def segment_summary(self, collection_name: str) -> dict[str, int]:
        """``{"segments": n, "segment_rows": rows}`` of the persisted (flushed) segments, as the
        server counts them: rows deleted but not yet compacted still count."""
        segments = self.call(
            f"list_persistent_segments({collection_name})",
            lambda c: c.list_persistent_segments(collection_name, **self._kw),
        )
        return {"segments": len(segments), "segment_rows": sum(int(s.num_rows) for s in segments)}
