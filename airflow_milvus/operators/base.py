"""Shared plumbing of the Milvus operators: connection id, retry settings, the hook, asset events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import AssetAlias, BaseOperator

from airflow_milvus import assets
from airflow_milvus.errors import MilvusInputError
from airflow_milvus.hooks.milvus import MilvusHook
from airflow_milvus.planning.validation import as_bool, as_int, as_seconds, is_unset


class MilvusConnectedOperator(BaseOperator):
    """The connection and retry arguments, and the ``hook`` they configure.

    Shared by the operators and the sensor. It is itself a ``BaseOperator`` so that Airflow
    wraps its ``__init__`` and ``default_args`` reach these arguments too.

    :param milvus_conn_id: Airflow connection of type ``milvus`` (templated).
    :param retry_attempts: attempts per Milvus call on transient faults.
    :param retry_max_wait: time budget in seconds for retrying one call.
    :param rpc_timeout: per-RPC timeout in seconds; default from the connection.
    """

    template_fields: Sequence[str] = ("milvus_conn_id",)
    # Templated fields render to text ("False" is truthy): these are coerced right after
    # rendering, so execute and every resume (execute_complete after a deferral) see the same values.
    bool_fields: Sequence[str] = ()
    seconds_fields: Sequence[str] = ()
    # Whole numbers: name -> minimum, or (minimum, maximum).
    int_fields: Mapping[str, int | tuple[int, int]] = {}
    # Of int_fields, those that may be unset: None, "" or "None" mean None.
    optional_fields: Sequence[str] = ()

    def __init__(
        self,
        *,
        milvus_conn_id: str = MilvusHook.default_conn_name,
        retry_attempts: int = 5,
        retry_max_wait: float = 60.0,
        rpc_timeout: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.milvus_conn_id = milvus_conn_id
        self.retry_attempts = retry_attempts
        self.retry_max_wait = retry_max_wait
        self.rpc_timeout = rpc_timeout

    def render_template_fields(self, context, jinja_env=None) -> None:
        super().render_template_fields(context, jinja_env)
        self.coerce_rendered_fields()

    def coerce_rendered_fields(self) -> None:
        """Idempotent: a coerced value coerces to itself."""
        for name in self.bool_fields:
            setattr(self, name, as_bool(getattr(self, name), f"{self.task_id}: {name}"))
        for name in self.seconds_fields:
            setattr(self, name, as_seconds(getattr(self, name), f"{self.task_id}: {name}"))
        for name, bound in self.int_fields.items():
            value = getattr(self, name)
            if name in self.optional_fields and is_unset(value):
                setattr(self, name, None)
            else:
                low, high = bound if isinstance(bound, tuple) else (bound, None)
                setattr(self, name, self.coerce_int(name, value, low, high))

    def coerce_int(self, name: str, value: Any, low: int, high: int | None) -> int:
        """One of ``int_fields``; an operator overrides it only to keep its own error wording."""
        return as_int(value, f"{self.task_id}: {name}", low, high)

    @cached_property
    def hook(self) -> MilvusHook:
        return MilvusHook(
            milvus_conn_id=self.milvus_conn_id,
            retry_attempts=self.retry_attempts,
            retry_max_wait=self.retry_max_wait,
            timeout=self.rpc_timeout,
        )


class MilvusBaseOperator(MilvusConnectedOperator):
    """Base for Milvus operators; subclasses implement :meth:`run`.

    Takes the connection and retry arguments of :class:`MilvusConnectedOperator`.
    """

    ui_color = "#e0ecff"

    def execute(self, context) -> Any:
        self.coerce_rendered_fields()  # rendered already; also when execute is called directly
        # Close at the end: a Milvus Lite file can be opened by one process at a time.
        with self.hook:
            return self.run(context)

    def run(self, context) -> Any:
        raise NotImplementedError


class MilvusAssetEventsMixin:
    """For operators that change what a collection serves: announce it as an Airflow asset event.

    The operator declares the asset alias ``milvus_collections`` as an outlet; after a
    successful change it adds one event per changed collection (or alias), for the asset
    ``milvus://host:port/db_name/collection`` (see :mod:`airflow_milvus.assets`), with an
    extra saying what happened. A step that changed nothing, or a dry run, emits nothing.

    :param emit_asset_events: False to emit nothing (the alias is then not declared either).
        Outlets given with ``outlets=`` are kept: Airflow records those on every success.
    :param asset_extra: more keys for every event's extra, e.g. a measured recall from an
        upstream task (templated).
    """

    def __init__(self, *, emit_asset_events: bool = True, asset_extra: dict[str, Any] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.emit_asset_events = emit_asset_events
        self.asset_extra = asset_extra
        if emit_asset_events:
            self.outlets = [*self.outlets, AssetAlias(name=assets.ASSET_ALIAS)]

    def coerce_rendered_fields(self) -> None:
        """Check ``asset_extra`` once rendered (a template may make it anything), before any change."""
        super().coerce_rendered_fields()  # type: ignore[misc]
        if self.asset_extra is not None and not isinstance(self.asset_extra, dict):
            raise MilvusInputError(
                f"asset_extra={self.asset_extra!r} is not a dict: pass a dict (its values may be templates), "
                "or a template that renders one with the DAG's render_template_as_native_obj=True."
            )

    @property
    def wants_asset_events(self) -> bool:
        """Whether a change would be announced; saves the RPCs that gather the extras otherwise."""
        # ``dry_run`` is a rendered, coerced bool on operators that have one, else BaseOperator's method.
        return bool(self.emit_asset_events) and getattr(self, "dry_run", False) is not True

    def announce(self, changes: dict[str, dict[str, Any]], context=None) -> None:
        """Emit an asset event per changed collection: ``{collection: extra}``.

        Outside a task (the ``airflow milvus`` CLI runs operators too) there is nowhere to record
        events, so nothing is emitted.
        """
        if not changes or not self.wants_asset_events:
            return
        if context is None:
            from airflow.sdk import get_current_context

            try:
                context = get_current_context()
            except Exception:  # not running as a task
                return
        events = context.get("outlet_events") if context else None
        if events is None:
            return
        from airflow.sdk import Asset

        config = self.hook.client_config
        extra_keys = dict(self.asset_extra or {})
        for collection, extra in changes.items():
            try:
                uri = assets.uri_for(config["uri"], collection, config.get("db_name"))
            except MilvusInputError as exc:  # the change is done: do not fail the task for its announcement
                self.log.warning("No asset event for %s: %s", collection, exc)
                continue
            events[AssetAlias(name=assets.ASSET_ALIAS)].add(Asset(name=uri, uri=uri), extra={**extra, **extra_keys})
            self.log.info("Asset event for %s: %s", uri, extra)

    def announce_index_builds(self, result: dict[str, Any]) -> None:
        """Announce the collections an index was built on, from a create operator's result."""
        if not self.wants_asset_events:
            return
        changes: dict[str, dict[str, Any]] = {}
        for spec in result["created"]:
            entry = changes.setdefault(spec["collection_name"], {"action": "indexes_built", "indexes": []})
            entry["indexes"].append(spec)
        for name, extra in changes.items():
            extra.update(loaded=name in result["loaded"], row_count=self.hook.row_count(name))
        self.announce(changes)
