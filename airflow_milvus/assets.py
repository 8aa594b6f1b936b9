"""The ``milvus`` asset URI scheme: one collection (or alias) on one Milvus.

Forms (see docs/assets_and_approval.md):

- a server or Zilliz Cloud: ``milvus://host:port/db_name/collection``; the port defaults to
  19530 and ``db_name`` to ``default``, so ``milvus://Milvus.internal/books`` normalizes to
  ``milvus://milvus.internal:19530/default/books``;
- Milvus Lite: ``milvus://lite/<absolute path of the .db file>/collection``, e.g.
  ``milvus://lite/data/milvus/books.db/books`` (Lite has one database).

Airflow calls :func:`sanitize_uri` for every ``Asset("milvus://...")`` (registered under
``asset-uris`` in the provider info). Nothing here imports pymilvus: DAG files use it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from airflow_milvus.errors import Fix, MilvusInputError
from airflow_milvus.hooks.connection import DEFAULT_PORT
from airflow_milvus.planning.validation import validate_name

if TYPE_CHECKING:
    from airflow.sdk import Asset

SCHEME = "milvus"
LITE_HOST = "lite"
DEFAULT_DB = "default"
#: The asset alias Milvus operators declare as an outlet and emit their events through.
ASSET_ALIAS = "milvus_collections"

_FORMS = "milvus://host[:port]/[db_name/]collection, or milvus://lite/<path>.db/collection for Milvus Lite"


def _invalid(uri: Any, why: str) -> MilvusInputError:
    return MilvusInputError(f"Milvus asset URI {uri!r} {why}. Use {_FORMS}.")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Normalize a ``milvus://`` asset URI (Airflow's ``asset-uris`` handler).

    Lower-cases the host, fills in the default port and database, drops user info; raises
    ValueError (:class:`MilvusInputError`) naming the URI and the accepted forms otherwise.
    """
    text = urlunsplit(uri._replace(netloc=uri.netloc.rpartition("@")[2]))  # never echo credentials
    if uri.query:
        raise _invalid(text, "has a query; a collection is named by its path only")
    host = (uri.hostname or "").lower()
    if not host:
        raise _invalid(text, "has no host")
    parts = [unquote(p) for p in uri.path.split("/")[1:]]
    if host == LITE_HOST:
        db_at = max((i for i, p in enumerate(parts) if p.endswith(".db")), default=-1)
        if uri.port is not None or db_at < 0 or len(parts) != db_at + 2:
            raise _invalid(text, "is not a Milvus Lite form: give the .db file's absolute path, then the collection")
        _check_name(text, parts[-1], "collection")
        path = "/" + "/".join(parts[: db_at + 1])
        return uri._replace(scheme=SCHEME, netloc=LITE_HOST, path=quote(path) + "/" + parts[-1])
    try:
        port = uri.port or DEFAULT_PORT
    except ValueError as exc:
        raise _invalid(text, f"has a bad port ({exc})") from None
    if len(parts) == 1:
        parts = [DEFAULT_DB, *parts]
    if len(parts) != 2 or not all(parts):
        raise _invalid(text, "needs a collection (and optionally a database) as its path")
    _check_name(text, parts[0], "database")
    _check_name(text, parts[1], "collection")
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return uri._replace(scheme=SCHEME, netloc=netloc, path=f"/{parts[0]}/{parts[1]}")


def _check_name(uri: str, name: str, what: str) -> None:
    try:
        validate_name(name, f"{what} name")
    except MilvusInputError as exc:
        raise _invalid(uri, f"has a bad {what}: {str(exc).rstrip('.')}") from None


def normalize(uri: str) -> str:
    """The normalized form of a ``milvus://`` URI string (what Airflow stores)."""
    parsed = urlsplit(str(uri).strip())
    parsed = parsed._replace(path=parsed.path.rstrip("/"), fragment="")  # as Airflow does first
    if parsed.scheme.lower() != SCHEME:
        raise _invalid(uri, f"does not start with {SCHEME}://")
    return urlunsplit(sanitize_uri(parsed))


def uri_for(client_uri: str, collection_name: str, db_name: str | None = None) -> str:
    """The asset URI of ``collection_name`` behind a ``MilvusClient`` URI (or a Lite .db path)."""
    if "://" not in client_uri and not client_uri.startswith("unix:"):
        return normalize(f"{SCHEME}://{LITE_HOST}{quote(os.path.abspath(client_uri))}/{collection_name}")
    parsed = urlsplit(client_uri)
    if parsed.scheme not in ("http", "https", "tcp") or not parsed.hostname:
        raise MilvusInputError(
            f"Cannot name a Milvus asset for connection URI {client_uri!r}: only http(s) servers and "
            "Milvus Lite .db paths have one.",
            fixes=[Fix("emit_asset_events", False, purpose="and declare outlets yourself")],
        )
    # pymilvus's own default: https without a port is 443 (Zilliz Cloud), otherwise 19530.
    port = parsed.port or (443 if parsed.scheme == "https" else DEFAULT_PORT)
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return normalize(f"{SCHEME}://{host}:{port}/{db_name or DEFAULT_DB}/{collection_name}")


def collection_asset_uri(collection_name: str, milvus_conn_id: str = "milvus_default") -> str:
    """The asset URI of a collection (or alias) on the Milvus an Airflow connection points at.

    Reads the connection only (no Milvus call), as the hook resolves it: the default
    ``milvus_default`` without a connection is Milvus Lite at ``$AIRFLOW_HOME/milvus_lite.db``.
    """
    from airflow_milvus.hooks.milvus import MilvusHook

    config = MilvusHook(milvus_conn_id).client_config
    return uri_for(config["uri"], validate_name(collection_name, "collection name"), config.get("db_name"))


def collection_asset(collection_name: str, milvus_conn_id: str = "milvus_default", **kwargs) -> Asset:
    """An :class:`~airflow.sdk.Asset` for a collection, named by its normalized URI.

    Use it to schedule on a collection: ``schedule=[collection_asset("books")]``. The name is
    the normalized URI too, so it is the same asset the Milvus operators emit events for.
    """
    from airflow.sdk import Asset

    uri = collection_asset_uri(collection_name, milvus_conn_id)
    return Asset(name=uri, uri=uri, **kwargs)
