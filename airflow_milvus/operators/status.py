"""Report indexes, their build progress and the load state; changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus.lifecycle.collections import status_report
from airflow_milvus.operators.base import MilvusBaseOperator


class MilvusIndexStatusOperator(MilvusBaseOperator):
    """Log and return every index of the matched collections with build progress and load state.

    :param collection_name: a name, a list of names or a glob such as ``"books_*"`` (templated).
    :param field_name: report only the index on this field (templated).
    :param missing_collection_ok: report nothing for a missing collection instead of failing.
    :return: ``[{"collection_name", "load_state", "row_count", "indexes": [{spec...,
        "build": {"state", "indexed_rows", "total_rows", "pending_index_rows",
        "fail_reason"}}]}, ...]``
    """

    template_fields: Sequence[str] = ("milvus_conn_id", "collection_name", "field_name")

    def __init__(
        self,
        *,
        collection_name: str | list[str],
        field_name: str | None = None,
        missing_collection_ok: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.field_name = field_name
        self.missing_collection_ok = missing_collection_ok

    def run(self, context) -> list[dict[str, Any]]:
        report = status_report(self.hook, self.collection_name, field_name=self.field_name, missing_ok=bool(self.missing_collection_ok))
        for status in report:
            name = status["collection_name"]
            self.log.info("Collection %s: %s, %d rows", name, status["load_state"], status["row_count"])
            for index in status["indexes"]:
                build = index["build"]
                self.log.info(
                    "  index %s on %s: %s %s %s, %s (%d/%d rows indexed, %d pending)%s",
                    index["index_name"], index["field_name"], index["index_type"], index["metric_type"] or "",
                    index["params"], build["state"], build["indexed_rows"], build["total_rows"],
                    build["pending_index_rows"], f", failed: {build['fail_reason']}" if build["fail_reason"] else "",
                )  # fmt: skip
            if not status["indexes"]:
                self.log.info("  no index%s", f" on field {self.field_name}" if self.field_name else "")
        return report
