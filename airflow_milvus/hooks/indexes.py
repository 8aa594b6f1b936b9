"""Index wrappers of :class:`~airflow_milvus.hooks.milvus.MilvusHook`: list, describe, build status,
create and drop, as JSON-safe specs (see :mod:`airflow_milvus.planning.specs`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_milvus.hooks import lite_params
from airflow_milvus.planning.specs import (
    STORED_KEY,
    spec_from_description,
    stored_request,
)

if TYPE_CHECKING:
    from pymilvus import MilvusClient


class MilvusIndexMixin:
    """Mixed into ``MilvusHook``: uses its ``call``, ``_kw``, ``timeout``, ``is_lite`` and client."""

    def list_index_specs(self, collection_name: str, field_name: str | None = None) -> list[dict[str, Any]]:
        """Every index of the collection (of one field if given) as a JSON-safe spec."""
        descs = [d for d in self._describe_indexes(collection_name) if field_name is None or d["field_name"] == field_name]
        return self._specs(collection_name, descs)

    def _specs(self, collection_name: str, descs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The specs of descriptions; on a server with the pairs as stored, to rebuild them in
        the same layout. Milvus Lite hides build params: its pairs say nothing of a layout, and
        the params are those this hook recorded at build (None where another client built it)."""
        if self.flavour != "lite":
            return [spec_from_description(collection_name, d) for d in descs]
        specs = [spec_from_description(collection_name, {k: v for k, v in d.items() if k != STORED_KEY}) for d in descs]
        return lite_params.fill(self.uri if self.embedded else None, collection_name, specs)

    def _describe_indexes(self, collection_name: str) -> list[dict[str, Any]]:
        """Every index description of the collection, from one DescribeIndex RPC.

        ``MilvusClient.list_indexes`` receives every description and keeps only the names, and
        ``describe_index`` asks again per name (which Milvus Lite ignores). The client's own
        handler returns the whole reply, so one read serves listing, describing and build status
        on both flavours."""
        from pymilvus.grpc_gen import common_pb2

        def describe_all(c: MilvusClient) -> list[dict[str, Any]]:
            reply = c._get_connection().list_indexes(collection_name, timeout=self.timeout, context=c._generate_call_context())
            found = [_description(d, common_pb2.IndexState.Name) for d in reply if d.index_name]
            # A server lists them in map order, which changes between calls: XComs and CLI tables should not.
            return sorted(found, key=lambda d: (d["field_name"], d["index_name"]))

        return self.call(f"describe_indexes({collection_name})", describe_all)

    def _describe_index(self, collection_name: str, index_name: str) -> dict[str, Any] | None:
        found = [d for d in self._describe_indexes(collection_name) if d["index_name"] == index_name]
        return found[0] if found else None

    def get_index_spec(self, collection_name: str, index_name: str) -> dict[str, Any] | None:
        desc = self._describe_index(collection_name, index_name)
        return self._specs(collection_name, [desc])[0] if desc else None

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
        return status

    def drop_index(self, collection_name: str, index_name: str) -> None:
        self.call(
            f"drop_index({collection_name}.{index_name})",
            lambda c: c.drop_index(collection_name, index_name, **self._kw),
        )
        if self.embedded:  # Lite names an index after its field
            lite_params.forget(self.uri, collection_name, index_name)

    def create_index(self, spec: dict[str, Any]) -> None:
        """Start building the index described by ``spec`` and return without waiting.

        A spec read from a server carries the pairs as stored (``stored_params``): they go back
        in that layout, through the handler that ``MilvusClient.create_index`` itself calls
        (``add_index`` would flatten the ORM's and Node SDK's nested params into string keys)."""
        pairs = stored_request(spec)

        def create(c: MilvusClient) -> None:
            if pairs is not None:
                c._get_connection().create_index(
                    spec["collection_name"], spec["field_name"], pairs, timeout=int(self.timeout),
                    index_name=spec.get("index_name") or "", context=c._generate_call_context(), sync=False, retry_times=2,
                )  # fmt: skip
                return
            params = c.prepare_index_params()
            extra: dict[str, Any] = {"params": dict(spec.get("params") or {})}
            if spec.get("metric_type"):
                extra["metric_type"] = spec["metric_type"]
            params.add_index(spec["field_name"], index_type=spec["index_type"], index_name=spec.get("index_name") or "", **extra)
            c.create_index(spec["collection_name"], params, sync=False, timeout=int(self.timeout), retry_times=2)

        self.call(f"create_index({spec['collection_name']}.{spec['field_name']})", create)
        if self.embedded:  # Lite will not report these params: remember them beside the .db
            lite_params.record(self.uri, spec)


def _description(desc: Any, state_name: Any) -> dict[str, Any]:
    """One ``IndexDescription`` message as the dict ``MilvusClient.describe_index`` returns."""
    import json

    info: dict[str, Any] = {kv.key: kv.value for kv in desc.params}
    stored = dict(info)  # the pairs as the server stored them, before any parsing
    if info.get("params"):
        info["params"] = json.loads(info["params"])
    info.update(
        {STORED_KEY: stored},
        field_name=desc.field_name,
        index_name=desc.index_name,
        total_rows=desc.total_rows,
        indexed_rows=desc.indexed_rows,
        pending_index_rows=desc.pending_index_rows,
        state=state_name(desc.state),
        index_state_fail_reason=desc.index_state_fail_reason,
    )
    return info
