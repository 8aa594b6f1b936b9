"""MilvusHook: the one place that talks to Milvus.

It owns the client, ``call`` (the retry policy), ``test_connection`` and the flavour; the
wrappers are mixed in, one module per topic: collections and data (``hooks/collections.py``),
indexes, aliases, search, the recall check, import jobs and compaction. Connection mapping,
secrets and diagnostics are pure, in ``hooks/connection.py``.

pymilvus is imported inside methods only: importing it costs ~0.6 s CPU and ~100 MiB,
which would otherwise land on every DAG parse.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook

from airflow_milvus.compat import AirflowNotFoundException
from airflow_milvus.errors import (
    MilvusAuthenticationError,
    MilvusUnavailableError,
)
from airflow_milvus.hooks import connection
from airflow_milvus.hooks.aliases import MilvusAliasMixin
from airflow_milvus.hooks.collections import MilvusCollectionMixin
from airflow_milvus.hooks.compaction import MilvusCompactionMixin
from airflow_milvus.hooks.connection import (
    DEFAULT_TIMEOUT,
    build_client_config,
    default_lite_path,
)
from airflow_milvus.hooks.imports import MilvusImportMixin
from airflow_milvus.hooks.indexes import MilvusIndexMixin
from airflow_milvus.hooks.quality import MilvusQualityMixin
from airflow_milvus.hooks.retry import (
    RetryPolicy,
    call_with_retry,
    error_message,
    is_auth_failure,
)
from airflow_milvus.hooks.search import MilvusSearchMixin
from airflow_milvus.planning.rules import is_lite_version

if TYPE_CHECKING:
    from pymilvus import MilvusClient

T = TypeVar("T")


class MilvusHook(
    MilvusCollectionMixin,
    MilvusIndexMixin,
    MilvusAliasMixin,
    MilvusImportMixin,
    MilvusQualityMixin,
    MilvusSearchMixin,
    MilvusCompactionMixin,
    BaseHook,
):
    """Interact with Milvus (a server, Zilliz Cloud, or embedded Milvus Lite).

    Every call goes through the provider's retry policy: transient faults are retried with
    exponential back-off and jitter, permanent ones fail at once with the server's message.

    :param milvus_conn_id: Airflow connection of type ``milvus``. When it is the default
        ``milvus_default`` and no such connection exists, an embedded Milvus Lite database
        at ``$AIRFLOW_HOME/milvus_lite.db`` is used.
    :param retry_attempts: attempts per call for transient faults (first one included).
    :param retry_max_wait: time budget in seconds for retrying one call.
    :param timeout: per-RPC timeout in seconds; overrides the connection's ``extra.timeout``.
    """

    conn_name_attr = "milvus_conn_id"
    default_conn_name = "milvus_default"
    conn_type = "milvus"
    hook_name = "Milvus"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's extra fields for Airflow 3.1, from the provider info's ``conn-fields``.

        Airflow 3.2+ reads ``conn-fields`` itself and never calls this. Airflow 3.1's UI calls it with
        wtforms and flask_appbuilder stand-ins when they are not installed; their field classes take
        only string, integer, password and boolean fields, so a ``number`` is an integer there.
        """
        from flask_appbuilder.fieldwidgets import (
            BS3PasswordFieldWidget,
            BS3TextFieldWidget,
        )
        from wtforms import BooleanField, IntegerField, PasswordField, StringField

        from airflow_milvus.get_provider_info import CONN_FIELDS

        widgets: dict[str, Any] = {}
        for name, definition in CONN_FIELDS.items():
            schema = definition["schema"]
            kind = schema["type"][0]
            text = {"label": definition["label"], "description": definition["description"]}
            if kind == "boolean":
                widgets[name] = BooleanField(**text, default=schema.get("default"))
            elif schema.get("format") == "password":
                widgets[name] = PasswordField(**text, widget=BS3PasswordFieldWidget())
            elif kind in ("number", "integer"):
                widgets[name] = IntegerField(**text, widget=BS3TextFieldWidget())
            else:
                widgets[name] = StringField(**text, widget=BS3TextFieldWidget())
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields for Airflow 3.1, from ``ui-field-behaviour``."""
        from airflow_milvus.get_provider_info import UI_FIELD_BEHAVIOUR

        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    def __init__(
        self,
        milvus_conn_id: str = default_conn_name,
        *,
        retry_attempts: int = 5,
        retry_max_wait: float = 60.0,
        timeout: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.milvus_conn_id = milvus_conn_id
        self.retry_policy = RetryPolicy(attempts=int(retry_attempts), max_wait=float(retry_max_wait))
        self._timeout_override = timeout
        self._client: MilvusClient | None = None

    # ------------------------------------------------------------------ connection
    @cached_property
    def client_config(self) -> dict[str, Any]:
        """Keyword arguments for ``pymilvus.MilvusClient``, built from the connection."""
        try:
            conn = self.get_connection(self.milvus_conn_id)
        except AirflowNotFoundException:
            if self.milvus_conn_id != self.default_conn_name:
                raise
            self.log.info("No connection %r: using embedded Milvus Lite at %s", self.milvus_conn_id, default_lite_path())
            return {"uri": default_lite_path(), "timeout": self._timeout_override or DEFAULT_TIMEOUT}
        extra = conn.extra_dejson or {}
        return build_client_config(
            host=conn.host,
            port=conn.port,
            schema=conn.schema,
            login=conn.login,
            password=conn.password,
            extra=extra,
            timeout_override=self._timeout_override,
        )

    @property
    def uri(self) -> str:
        return self.client_config["uri"]

    @property
    def embedded(self) -> bool:
        """Whether the URI is a Milvus Lite ``.db`` (served by its shared local server)."""
        return connection.is_lite_uri(self.uri)

    @property
    def timeout(self) -> float:
        return self.client_config["timeout"]

    @cached_property
    def _secrets(self) -> list[str]:
        found = connection.secrets_in(self.client_config)
        try:
            from airflow.sdk.log import mask_secret

            for secret in found:
                mask_secret(secret)
        except Exception:  # outside a task the masker may not be configured
            pass
        return found

    def redact(self, text: str) -> str:
        return connection.redact(text, self._secrets)

    def port_open(self) -> bool:
        """Whether the server's TCP port accepts connections (False for Milvus Lite)."""
        return connection.port_open(self.uri)

    def tls_hint(self) -> str:
        """Why a port that accepts TCP refuses the gRPC connection, when TLS explains it ('' if not)."""
        return connection.tls_hint(self.client_config)

    def get_conn(self) -> MilvusClient:
        """Return the cached ``MilvusClient``, creating it on first use."""
        if self._client is None:
            self._secrets  # register with the masker before anything can log them
            cfg = dict(self.client_config)
            if connection.is_lite_uri(cfg["uri"]):
                from airflow_milvus.hooks.lite_server import ensure_server

                connection.check_lite_path(cfg["uri"])
                # Through the .db's shared server: tasks, the triggerer and the CLI all see one load state.
                cfg = {"uri": ensure_server(cfg["uri"]), "timeout": cfg["timeout"]}
            from pymilvus import MilvusClient

            # Not shared: pymilvus pools channels by address and token only, so a client with
            # other TLS settings would silently reuse this one's channel (and vice versa).
            self._client = MilvusClient(**cfg, dedicated=True)
        return self._client

    def connect(self) -> None:
        """Open the client now, under the retry policy (it opens on first use otherwise)."""
        self.call("connect", lambda c: None)

    def close(self) -> None:
        """Release the client. A Milvus Lite ``.db``'s shared server keeps running (see lite_server)."""
        if self._client is not None:
            client, self._client = self._client, None
            try:
                client.close()
            except Exception as exc:
                self.log.debug("Closing the Milvus client failed: %s", exc)

    def __enter__(self) -> MilvusHook:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def call(self, what: str, fn: Callable[[MilvusClient], T], *, policy: RetryPolicy | None = None) -> T:
        """Run ``fn(client)`` under the retry policy; ``what`` names it in logs and errors."""
        try:
            return call_with_retry(
                lambda: self._attempt(fn),
                policy=policy or self.retry_policy,
                what=what,
                log=self.log,
                port_open=self.port_open,
                redact=self.redact,
            )
        except MilvusUnavailableError as exc:
            hint = self.tls_hint()  # gRPC reports a failed TLS handshake as plain UNAVAILABLE
            if not hint:
                raise
            raise MilvusUnavailableError(f"{exc} {hint}") from exc.__cause__

    def _attempt(self, fn: Callable[[MilvusClient], T]) -> T:
        try:
            return fn(self.get_conn())
        except Exception:
            if self.embedded:  # the shared Lite server may have died: the next attempt finds or starts one
                self.close()
            raise

    @property
    def _kw(self) -> dict[str, Any]:
        # A per-call timeout also bounds pymilvus's own retry loop (75 tries otherwise).
        return {"timeout": self.timeout, "retry_times": 2}

    def test_connection(self) -> tuple[bool, str]:
        """Tell apart: unreachable server, refused credentials, success (with version).

        One attempt only: the UI's Test button should answer at once, not after back-offs.
        """
        try:
            version = self.call(
                "connection test", lambda c: c.get_server_version(timeout=self.timeout), policy=RetryPolicy(attempts=1)
            )
        except MilvusAuthenticationError as exc:
            return False, str(exc)
        except MilvusUnavailableError as exc:
            return False, f"Cannot reach Milvus at {self.redact(self.uri)}: {exc}"
        except Exception as exc:
            if is_auth_failure(exc, self.port_open):
                return False, f"Authentication failed at {self.redact(self.uri)}: {self.redact(error_message(exc))}"
            if not self.embedded and not self.port_open():
                return False, f"Cannot reach Milvus at {self.redact(self.uri)}: nothing answers on that port."
            return False, f"Milvus connection failed: {self.redact(error_message(exc))}"
        finally:
            self.close()
        return True, f"Connected to Milvus {version} at {self.redact(self.uri)}"

    @cached_property
    def server_version(self) -> str:
        return str(self.call("get_server_version", lambda c: c.get_server_version(timeout=self.timeout)))

    @cached_property
    def flavour(self) -> str:
        """'lite' for Milvus Lite (a ``.db``, or a server that reports a Lite version), 'server'
        otherwise: the one place that decides where the flavours' rules disagree."""
        return "lite" if self.embedded or is_lite_version(self.server_version) else "server"

    @property
    def is_lite(self) -> bool:
        return self.flavour == "lite"
