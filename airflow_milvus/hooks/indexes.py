"""Index wrappers of :class:`~airflow_milvus.hooks.milvus.MilvusHook`: list, describe, build status,
create and drop, as JSON-safe specs (see :mod:`airflow_milvus.index_specs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_milvus.errors import MilvusProviderError
from airflow_milvus.index_specs import spec_from_description
from airflow_milvus.retry import error_message

if TYPE_CHECKING:
    from pymilvus import MilvusClient


class MilvusIndexMixin:
    """Mixed into ``MilvusHook``: uses its ``call``, ``_kw``, ``timeout``, ``flavour``, ``is_lite`` and client."""

    def list_index_specs(self, collection_name: str, field_name: str | None = None) -> list[dict[str, Any]]:
        """Every index of the collection (of one field if given) as a JSON-safe spec."""
        names = self.call(
            f"list_indexes({collection_name})",
            lambda c: c.list_indexes(collection_name, field_name=field_name or "", **self._kw),
        )
        specs = []
        for name in names:
            spec = self.get_index_spec(collection_name, name)
            if spec is not None and (field_name is None or spec["field_name"] == field_name):
                specs.append(spec)
        return specs

    def _describe_index(self, collection_name: str, index_name: str) -> dict[str, Any] | None:
        from pymilvus import MilvusException

        what = f"describe_index({collection_name}.{index_name})"
        try:
            lite = self.flavour == "lite"  # read before the call: on first use it is an RPC with its own retries
        except MilvusProviderError as exc:  # say what the version was read for, naming the collection
            raise type(exc)(f"{what}: {exc.facts}", fixes=exc.fixes) from exc

        def describe(c: MilvusClient) -> dict[str, Any] | None:
            # Milvus Lite answers an unknown name with "multiple indexes" or with another index.
            if lite and index_name not in c.list_indexes(collection_name, **self._kw):
                return None
            try:
                return c.describe_index(collection_name, index_name, **self._kw) or None
            except MilvusException as exc:
                if "not found" in str(exc.message).lower() or "not exist" in str(exc.message).lower():
                    return None
                raise

        return self.call(what, describe)

    def get_index_spec(self, collection_name: str, index_name: str) -> dict[str, Any] | None:
        desc = self._describe_index(collection_name, index_name)
        return spec_from_description(collection_name, desc) if desc else None

    def index_build_status(self, collection_name: str, index_name: str) -> dict[str, Any]:
        """Build progress: state, indexed_rows, total_rows, pending_index_rows, fail_reason."""
        desc = self._describe_index(collection_name, index_name)
        if not desc:
            return {"state": "NotExist", "indexed_rows": 0, "total_rows": 0, "pending_index_rows": 0, "fail_reason": ""}
        status = {
            "state": str(desc.get("state", "")),
            "indexed_rows": int(desc.get("indexed_rows") or 0),
            "total_rows": int(desc.get("total_rows") or 0),
            "pending_index_rows": int(desc.get("pending_index_rows") or 0),
            "fail_reason": str(desc.get("index_state_fail_reason") or ""),
        }
        if status["state"] == "Failed" and not status["fail_reason"]:
            status["fail_reason"] = self._index_fail_reason(collection_name, index_name)
        return status

    def _index_fail_reason(self, collection_name: str, index_name: str) -> str:
        # MilvusClient.describe_index drops the fail reason; the handler still has it.
        try:
            handler = self.get_conn()._get_connection()
            _, reason = handler.get_index_state(collection_name, index_name, timeout=self.timeout)
            return str(reason or "")
        except Exception as exc:
            return f"(fail reason unavailable: {error_message(exc)})"

    def drop_index(self, collection_name: str, index_name: str) -> None:
        self.call(
            f"drop_index({collection_name}.{index_name})",
            lambda c: c.drop_index(collection_name, index_name, **self._kw),
        )

    def create_index(self, spec: dict[str, Any]) -> None:
        """Start building the index described by ``spec`` and return without waiting."""

        def create(c: MilvusClient) -> None:
            params = c.prepare_index_params()
            extra: dict[str, Any] = {"params": dict(spec.get("params") or {})}
            if spec.get("metric_type"):
                extra["metric_type"] = spec["metric_type"]
            params.add_index(spec["field_name"], index_type=spec["index_type"], index_name=spec.get("index_name") or "", **extra)
            c.create_index(spec["collection_name"], params, sync=False, timeout=int(self.timeout), retry_times=2)

        self.call(f"create_index({spec['collection_name']}.{spec['field_name']})", create)
        if self.is_lite:  # Lite does not report build params: record them for snapshots, whoever builds
            from airflow_milvus import snapshots

            snapshots.record_built(self.milvus_conn_id, [spec])
