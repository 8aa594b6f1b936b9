"""Provider metadata read by Airflow's ProvidersManager (no hook import needed for the UI).

``CONN_FIELDS`` and ``UI_FIELD_BEHAVIOUR`` are the one definition of the Milvus connection form:
Airflow 3.2+ reads them from here (``conn-fields``, ``ui-field-behaviour``); Airflow 3.1 reads
only the hook's ``get_connection_form_widgets``/``get_ui_field_behaviour``, which MilvusHook
builds from the same two constants.
"""

from __future__ import annotations

from typing import Any

from airflow_milvus import __version__

INTEGRATION = "Milvus"


def _field(label: str, description: str, type_: str = "string", **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": [type_, "null"], **schema}}


#: The extra fields of a ``milvus`` connection, in the provider.yaml ``conn-fields`` format.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "uri": _field("URI", "Full URI (http(s)://host:port) or a Milvus Lite path ending in .db. Wins over host/port."),
    "token": _field("Token", "API key or user:password token (Zilliz Cloud). Kept secret.", format="password"),
    "db_name": _field("Database", "Milvus database name (default: default)."),
    "secure": _field("TLS (secure)", "Connect with TLS.", "boolean", default=False),
    "server_pem_path": _field("Server PEM path", "Server certificate for one-way TLS."),
    "server_name": _field("Server name", "Name the server certificate was issued to."),
    "ca_pem_path": _field("CA PEM path", "CA certificate for mutual TLS."),
    "client_pem_path": _field("Client PEM path", "Client certificate for mutual TLS."),
    "client_key_path": _field("Client key path", "Client private key for mutual TLS."),
    "timeout": _field("RPC timeout (s)", "Per-call timeout in seconds (default 30).", "number"),
}

#: How the standard connection fields show, in the provider.yaml ``ui-field-behaviour`` format.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["extra"],
    "relabeling": {"schema": "Scheme (http/https)", "login": "User", "password": "Password"},
    "placeholders": {
        "host": "localhost (leave empty for Milvus Lite or when URI is set)",
        "port": "19530",
        "schema": "http",
        "uri": "http://localhost:19530, https://<id>.zillizcloud.com or ./milvus.db",
    },
}


def _modules(kind: str, *names: str) -> list[dict[str, Any]]:
    return [{"integration-name": INTEGRATION, "python-modules": [f"airflow_milvus.{kind}.{name}" for name in names]}]


def get_provider_info() -> dict[str, Any]:
    # Airflow's provider check: every .py module under hooks/, operators/, sensors/ and triggers/
    # (private and base modules too) is listed, and nothing else; tests/test_conformance.py holds it.
    return {
        "package-name": "airflow-milvus",
        "name": "Milvus",
        "description": "Milvus vector database: index lifecycle (drop, rebuild, wait, load) with snapshots, "
        "idempotency and retries.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://milvus.io/docs",
                "tags": ["software"],
            }
        ],
        "hooks": _modules(
            "hooks", "aliases", "collections", "compaction", "connection", "imports", "indexes", "lite_params", "lite_serve", "lite_server", "milvus", "quality", "retry", "search"
        ),
        "operators": _modules(
            "operators",
            "alias",
            "base",
            "bulk_import",
            "collection",
            "create_index",
            "drop_index",
            "index",
            "ingest",
            "listing",
            "quality",
            "search",
            "status",
        ),
        "sensors": _modules("sensors", "index"),
        "triggers": _modules("triggers", "base", "bulk_import", "compaction", "index"),
        "config": {
            "milvus": {
                "description": "Milvus provider settings.",
                "options": {
                    "lite_server_idle_timeout": {
                        "description": "Seconds without a request after which the shared server of a Milvus Lite "
                        ".db stops (0: never). The data stays; the next use starts the server again, "
                        "without the load state.",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "3600",
                        "default": "600",
                    }
                },
            }
        },
        "task-decorators": [{"name": "milvus", "class-name": "airflow_milvus.decorators.milvus.milvus_task"}],
        "cli": ["airflow_milvus.cli.definition.get_milvus_cli_commands"],
        # milvus://host:port/db_name/collection (or milvus://lite/<path>.db/collection), normalized on use;
        # OpenLineage names it namespace milvus://host:port, name db_name.collection (docs/lineage.md).
        "asset-uris": [
            {
                "schemes": ["milvus"],
                "handler": "airflow_milvus.assets.sanitize_uri",
                "to_openlineage_converter": "airflow_milvus.lineage.to_openlineage",
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_milvus.hooks.milvus.MilvusHook",
                "connection-type": "milvus",
                "hook-name": "Milvus",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
