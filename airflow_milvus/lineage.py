"""Lineage: what a Milvus task read and wrote, for Airflow's hook lineage collector and OpenLineage.

The operators report here once the change is final (an import's files as inputs, the
collection as output; a search's collection as input; see docs/lineage.md). They report from
the operator, not from the hook, because a deferred task ends in another process: the
collector lives in one process, and OpenLineage reads it when the task completes, so lineage
must be reported where the task finishes (``execute_complete`` after a deferral).

Collections are the provider's ``milvus://`` asset URIs (:mod:`airflow_milvus.assets`); files
are ``file://`` (or as given when they carry a scheme, e.g. ``s3://bucket/key``).
:func:`to_openlineage` is the ``milvus`` scheme's OpenLineage converter (provider info
``asset-uris``). Nothing here imports pymilvus or openlineage at module level: DAG files import it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow_milvus import assets

if TYPE_CHECKING:
    from openlineage.client.event_v2 import Dataset

    from airflow_milvus.hooks.milvus import MilvusHook

log = logging.getLogger(__name__)


def _collector():
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector  # Airflow 3.2+
    except ImportError:  # Airflow 3.1
        from airflow.lineage.hook import get_hook_lineage_collector
    return get_hook_lineage_collector()


def collection_uri(hook: MilvusHook, collection_name: str) -> str | None:
    """The ``milvus://`` URI of a collection (or alias) behind the hook; None if it has none."""
    config = hook.client_config
    try:
        return assets.uri_for(config["uri"], collection_name, config.get("db_name"))
    except Exception as exc:  # e.g. a unix-socket URI has no asset form; lineage must not fail a task
        log.info("No lineage for collection %s: %s", collection_name, exc)
        return None


def file_uri(path: str, *, local: bool = False, bucket: str | None = None) -> str | None:
    """The URI of an import file: as given if it has a scheme (``s3://bucket/key``), ``file://``
    for an absolute path (or any path the worker itself reads, ``local``), ``s3://bucket/key``
    for a bucket key when the bucket is known; None when it cannot be named."""
    path = str(path)
    if "://" in path:
        return path
    if os.path.isabs(path) or local:
        return "file://" + os.path.abspath(path)  # unquoted, as Airflow's common.io provider names files
    if bucket:
        return f"s3://{bucket}/{path.lstrip('/')}"
    log.info("No lineage for import file %s: a bucket key, and the bucket is unknown here", path)
    return None


def report(
    hook: MilvusHook,
    *,
    inputs: Iterable[str | None] = (),
    outputs: Iterable[str | None] = (),
    input_collections: Iterable[str] = (),
    output_collections: Iterable[str] = (),
) -> None:
    """Report URIs (``inputs``/``outputs``) and collections to the hook lineage collector.

    The hook is the lineage context, as in Airflow's own providers. Never raises: the task's
    work is done by now, and lineage is not worth failing it for.
    """
    try:
        ins = [u for u in (*inputs, *(collection_uri(hook, c) for c in input_collections)) if u]
        outs = [u for u in (*outputs, *(collection_uri(hook, c) for c in output_collections)) if u]
        if not ins and not outs:
            return  # nothing to say: no need to create the collector (it loads every plugin)
        collector = _collector()
        for uri in dict.fromkeys(ins):
            collector.add_input_asset(context=hook, uri=uri)
        for uri in dict.fromkeys(outs):
            collector.add_output_asset(context=hook, uri=uri)
    except Exception:
        log.warning("Could not report lineage to Airflow's hook lineage collector", exc_info=True)


def report_import(hook: MilvusHook, collection_name: str, items: Iterable[Iterable[str]], *, local: bool, bucket: str | None = None) -> None:
    """An import: every file of ``items`` (lists of paths) in, the collection out."""
    files = [file_uri(f, local=local, bucket=bucket) for item in items for f in item]
    report(hook, inputs=files, output_collections=[collection_name])


def to_openlineage(asset: Any, lineage_context: Any = None) -> Dataset:
    """OpenLineage dataset of a ``milvus://`` asset (the ``to_openlineage_converter`` of provider info).

    A server's ``milvus://host:port/db/collection`` is namespace ``milvus://host:port``, name
    ``db.collection``. Milvus Lite's ``milvus://lite/<path>.db/collection`` is namespace
    ``milvus://lite/<path>.db`` (the file is the instance, as host:port is for a server) and name
    ``default.collection`` (Lite has the one database, ``default``).
    """
    from openlineage.client.event_v2 import Dataset

    parsed = urlsplit(assets.normalize(asset.uri))
    if parsed.netloc == assets.LITE_HOST:
        db_path, _, collection = parsed.path.rpartition("/")
        return Dataset(namespace=f"{assets.SCHEME}://{assets.LITE_HOST}{db_path}", name=f"{assets.DEFAULT_DB}.{collection}")
    database, collection = (unquote(p) for p in parsed.path.strip("/").split("/"))
    return Dataset(namespace=f"{assets.SCHEME}://{parsed.netloc}", name=f"{database}.{collection}")
