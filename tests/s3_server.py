"""An S3-compatible store on loopback for tests: moto's server mode (``moto[server]``).

No registry here ships MinIO; moto speaks enough of S3 for Milvus 2.3.5's MinIO client
(bucket check, put, ranged get, list, stat, remove) and for boto3 and pymilvus's
``RemoteBulkWriter``. It keeps objects in memory: a store lives as long as its process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from tests.milvus_server import free_port, port_open

# moto accepts any credentials; Milvus and the bulk writer need some to sign requests with.
ACCESS_KEY, SECRET_KEY, REGION = "testing-access-key", "testing-secret-key", "us-east-1"


class S3Server:
    """One ``python -m moto.server`` process group on a free loopback port."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = Path(log_dir) / "moto-server.out"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, as Milvus's ``minio.address``/``minio.port`` and the MinIO client take it."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION=REGION)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if port_open(self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto server did not start on port {self.port}:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # in-memory store: nothing to flush
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None

    def client(self):
        """A boto3 S3 client of this store."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, region_name=REGION,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def milvus_config(self, bucket: str, root_path: str = "files") -> list[str]:
        """``--extra-config`` values that put a Milvus 2.3.5 server's storage in ``bucket``."""
        return [
            "common.storageType=minio",
            "minio.address=127.0.0.1",
            f"minio.port={self.port}",
            f"minio.accessKeyID={ACCESS_KEY}",
            f"minio.secretAccessKey={SECRET_KEY}",
            "minio.useSSL=false",
            f"minio.bucketName={bucket}",
            f"minio.rootPath={root_path}",
            "minio.useIAM=false",
            "minio.cloudProvider=aws",
            f"minio.region={REGION}",
            "minio.useVirtualHost=false",
        ]


@contextmanager
def s3_server(log_dir: Path):
    """A running store for a fixture's lifetime; killed afterwards."""
    server = S3Server(log_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
