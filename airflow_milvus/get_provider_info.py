"""Provider metadata read by Airflow's ProvidersManager (no hook import needed for the UI)."""

from __future__ import annotations

from airflow_milvus import __version__


def _field(label: str, description: str, type_: str = "string", **schema) -> dict:
    return {"label": label, "description": description, "schema": {"type": [type_, "null"], **schema}}


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-milvus",
        "name": "Milvus",
        "description": "Milvus vector database: index lifecycle (drop, rebuild, wait, load) with snapshots, "
        "idempotency and retries.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Milvus",
                "external-doc-url": "https://milvus.io/docs",
                "tags": ["software"],
            }
        ],
        "hooks": [{"integration-name": "Milvus", "python-modules": ["airflow_milvus.hooks.milvus"]}],
        "operators": [
            {
                "integration-name": "Milvus",
                "python-modules": [
                    "airflow_milvus.operators.index",
                    "airflow_milvus.operators.collection",
                    "airflow_milvus.operators.ingest",
                    "airflow_milvus.operators.alias",
                    "airflow_milvus.operators.status",
                    "airflow_milvus.operators.bulk_import",
                    "airflow_milvus.operators.quality",
                ],
            }
        ],
        "sensors": [{"integration-name": "Milvus", "python-modules": ["airflow_milvus.sensors.index"]}],
        "triggers": [{"integration-name": "Milvus", "python-modules": ["airflow_milvus.triggers.index", "airflow_milvus.triggers.bulk_import"]}],
        "cli": ["airflow_milvus.cli.definition.get_milvus_cli_commands"],
        # milvus://host:port/db_name/collection (or milvus://lite/<path>.db/collection), normalized on use.
        "asset-uris": [{"schemes": ["milvus"], "handler": "airflow_milvus.assets.sanitize_uri"}],
        "connection-types": [
            {
                "hook-class-name": "airflow_milvus.hooks.milvus.MilvusHook",
                "connection-type": "milvus",
                "hook-name": "Milvus",
                "ui-field-behaviour": {
                    "hidden-fields": ["extra"],
                    "relabeling": {"schema": "Scheme (http/https)", "login": "User", "password": "Password"},
                    "placeholders": {
                        "host": "localhost (leave empty for Milvus Lite or when URI is set)",
                        "port": "19530",
                        "schema": "http",
                        "uri": "http://localhost:19530, https://<id>.zillizcloud.com or ./milvus.db",
                    },
                },
                "conn-fields": {
                    "uri": _field(
                        "URI",
                        "Full URI (http(s)://host:port) or a Milvus Lite path ending in .db. Wins over host/port.",
                    ),
                    "token": _field(
                        "Token",
                        "API key or user:password token (Zilliz Cloud). Kept secret.",
                        format="password",
                    ),
                    "db_name": _field("Database", "Milvus database name (default: default)."),
                    "secure": _field("TLS (secure)", "Connect with TLS.", "boolean", default=False),
                    "server_pem_path": _field("Server PEM path", "Server certificate for one-way TLS."),
                    "server_name": _field("Server name", "Name the server certificate was issued to."),
                    "ca_pem_path": _field("CA PEM path", "CA certificate for mutual TLS."),
                    "client_pem_path": _field("Client PEM path", "Client certificate for mutual TLS."),
                    "client_key_path": _field("Client key path", "Client private key for mutual TLS."),
                    "timeout": _field("RPC timeout (s)", "Per-call timeout in seconds (default 30).", "number"),
                },
            }
        ],
    }
