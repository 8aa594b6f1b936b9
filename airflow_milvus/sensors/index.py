"""Wait until an index is built."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator

from airflow_milvus.compat import conf
from airflow_milvus.errors import MilvusIndexBuildError, MilvusInputError
from airflow_milvus.lifecycle import waiting
from airflow_milvus.operators.base import MilvusConnectedOperator
from airflow_milvus.planning.validation import validate_name


class MilvusIndexBuiltSensor(MilvusConnectedOperator, BaseSensorOperator):
    """Succeed when the index is Finished with no pending rows; fail on a Failed or missing index.

    :param collection_name: the collection (templated).
    :param index_name: the index; or give ``field_name`` (templated).
    :param field_name: the field whose index to wait for (templated).
    :param deferrable: wait on the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.

    Takes the connection and retry arguments of the operators
    (:class:`~airflow_milvus.operators.base.MilvusConnectedOperator`).
    :return: the build status dict of the index.
    """

    template_fields: Sequence[str] = ("milvus_conn_id", "collection_name", "index_name", "field_name")

    def __init__(
        self,
        *,
        collection_name: str,
        index_name: str | None = None,
        field_name: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.index_name = index_name
        self.field_name = field_name
        self.deferrable = deferrable

    def _target(self) -> dict[str, str]:
        collection = validate_name(self.collection_name, "collection name")
        if self.index_name:
            return {"collection_name": collection, "index_name": validate_name(self.index_name, "index name")}
        if not self.field_name:
            raise MilvusInputError("MilvusIndexBuiltSensor needs index_name or field_name.")
        specs = self.hook.list_index_specs(collection, validate_name(self.field_name, "field name"))
        if not specs:
            raise MilvusIndexBuildError(
                f"Field {collection}.{self.field_name} has no index to wait for; create it first."
            )
        return {"collection_name": collection, "index_name": specs[0]["index_name"]}

    def execute(self, context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_milvus.triggers.index import MilvusIndexBuiltTrigger

        with self.hook:  # check on the worker first: a finished build never reaches the triggerer
            target = self._target()
            event = waiting.raise_for_event(waiting.check_builds(self.hook, [target]))
        if event["status"] == "success":
            return next(iter(event["statuses"].values()))
        self.defer(
            trigger=MilvusIndexBuiltTrigger(
                targets=[target],
                milvus_conn_id=self.milvus_conn_id,
                poll_interval=float(self.poke_interval),
                timeout=float(self.timeout) if self.timeout else None,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def poke(self, context) -> Any:
        with self.hook:
            event = waiting.raise_for_event(waiting.check_builds(self.hook, [self._target()]))
        self.log.info("Index build status: %s", event["statuses"])
        if event["status"] == "success":
            from airflow.sdk import PokeReturnValue

            return PokeReturnValue(is_done=True, xcom_value=next(iter(event["statuses"].values())))
        return False

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        return next(iter(waiting.raise_for_event(event)["statuses"].values()))
