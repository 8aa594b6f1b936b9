"""Where a bulk-reload benchmark runs: a Milvus 2.3.5 standalone on local storage, or on object
storage (an S3 server on loopback, as the Helm chart runs Milvus on MinIO); and the import files.

On ``local`` the files are Parquet on the worker's disk, written by ``LocalBulkWriter``; on ``s3``
they are keys in Milvus's bucket, written by ``RemoteBulkWriter`` (the documented production path)
and checked from the worker through an Airflow ``aws`` connection.

The S3 server is moto's (no registry here ships MinIO). It is pure Python: it serves Milvus's
reads and writes more slowly than MinIO would, so the object-storage numbers are an upper bound
on what storage costs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from benchmarks import data
from benchmarks.common import log, set_milvus_conn

BUCKET = "milvus-bench"
AWS_CONN_ID = "bench_aws"
ROOT = "files/"  # Milvus's root path in the bucket (tests/s3_server.py); import files live beside it
# Milvus removes a dropped collection's files after dropTolerance, checked every interval
# (defaults 3 h and 1 h): each case drops the previous collection, and at a million rows a run's
# leftovers would otherwise fill the in-memory S3 server.
GC = ["dataCoord.gc.interval=120", "dataCoord.gc.dropTolerance=60"]


class Stack:
    """A running Milvus server on ``storage``; ``stop()`` ends every process it started."""

    def __init__(self, home: Path, storage: str, conn_id: str) -> None:
        from tests.milvus_server import MilvusServer

        self.storage, self.home, self.store = storage, home, None
        extra = list(GC)
        if storage == "s3":
            from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server

            self.store = S3Server(home)
            self.store.start()
            self.store.create_bucket(BUCKET)
            extra += self.store.milvus_config(BUCKET)
            body = {"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
                    "extra": {"endpoint_url": self.store.endpoint, "region_name": REGION,
                              "service_config": {"s3": {"bucket_name": BUCKET}}}}
            os.environ[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = json.dumps(body)
        self.server = MilvusServer(home / "milvus", extra_config=extra)
        self.server.start()
        set_milvus_conn(conn_id, self.server.uri)

    @property
    def uri(self) -> str:
        return self.server.uri

    def server_pid(self) -> int | None:
        return self.server.proc.pid if self.server.proc else None

    def store_pid(self) -> int | None:
        return self.store.proc.pid if self.store and self.store.proc else None

    def import_kwargs(self) -> dict:
        """What MilvusBulkImportOperator needs beyond the files to check them where they are."""
        return {"aws_conn_id": AWS_CONN_ID} if self.storage == "s3" else {}

    def ensure_up(self) -> None:
        # A 2.3.5 standalone can exit when its etcd session lapses under load (see run.py).
        if self.server.proc is None or self.server.proc.poll() is not None:
            log("bulk_reload: the Milvus server has exited; restarting it on the same data")
            self.server.start()

    def export(self, collection: str, *, rows: int, dim: int) -> tuple[list[str], float, float]:
        """Import files holding the N rows; returns (files or keys, wall s, CPU s of this thread)."""
        from pymilvus import CollectionSchema
        from pymilvus.bulk_writer import BulkFileType, LocalBulkWriter, RemoteBulkWriter

        with data.client(self.uri) as c:
            schema = CollectionSchema.construct_from_dict(c.describe_collection(collection))
        folder = self.home / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        wall, cpu = time.time(), time.thread_time()
        if self.store is None:
            writer = LocalBulkWriter(schema=schema, local_path=str(folder), file_type=BulkFileType.PARQUET)
        else:
            from tests.s3_server import ACCESS_KEY, SECRET_KEY

            connect = RemoteBulkWriter.S3ConnectParam(endpoint=self.store.address, access_key=ACCESS_KEY,
                                                      secret_key=SECRET_KEY, bucket_name=BUCKET, secure=False)
            writer = RemoteBulkWriter(schema=schema, remote_path=f"bulk/{collection}", connect_param=connect,
                                      file_type=BulkFileType.PARQUET, local_path=str(folder))
        for i in range(rows):
            writer.append_row({"id": i, "embedding": data.vector(i, dim), "title": f"book {i}"})
        writer.commit()
        files = [f for batch in writer.batch_files for f in batch]
        if self.store is None:
            files = [os.path.abspath(f) for f in files]
        return files, time.time() - wall, time.thread_time() - cpu

    def snapshot(self) -> None:
        """Keep the server's state (its data dir; on s3 also its bucket's files) to restore it per case."""
        self.server.stop()
        shutil.copytree(self.server.data_dir, self.home / "snapshot", ignore=shutil.ignore_patterns("bin"), symlinks=True)
        if self.store is not None:
            self._copy_objects(BUCKET, BUCKET + "-snapshot", create=True)
        self.server.start()

    def restore(self) -> None:
        """Put back the snapshot's state, byte for byte, in a fresh server process."""
        self.server.stop()
        for entry in self.server.data_dir.iterdir():
            if entry.name != "bin":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        shutil.copytree(self.home / "snapshot", self.server.data_dir, symlinks=True, dirs_exist_ok=True)
        if self.store is not None:
            client = self.store.client()
            for key in self._keys(client, BUCKET, ROOT):
                client.delete_object(Bucket=BUCKET, Key=key)
            self._copy_objects(BUCKET + "-snapshot", BUCKET)
        self.server.start()

    def _keys(self, client, bucket: str, prefix: str = "") -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def _copy_objects(self, source: str, target: str, *, create: bool = False) -> None:
        """Milvus's files (under its root path) from one bucket to another, inside the S3 server."""
        client = self.store.client()
        if create:
            client.create_bucket(Bucket=target)
        for key in self._keys(client, source, ROOT):
            client.copy_object(Bucket=target, Key=key, CopySource={"Bucket": source, "Key": key})

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            if self.store is not None:
                self.store.stop()
