"""Import files as keys in Milvus's bucket (MinIO, S3), seen from the worker through the S3 API.

Milvus reads import files from its own bucket (``minio.bucketName`` in milvus.yaml) by key. To
check them before any job starts, the worker reaches the same bucket through an Airflow
connection of type ``aws``, read as the Amazon provider reads it (that provider is not
needed): login and password, or extra ``aws_access_key_id``/``aws_secret_access_key``/
``aws_session_token``; extra ``endpoint_url`` (or ``service_config.s3.endpoint_url``) for
MinIO and other S3-compatible stores; ``region_name``; ``verify``;
``config_kwargs.s3.addressing_style``; and ``service_config.s3.bucket_name`` as the bucket
when the operator names none.

boto3 is imported inside functions only (DAG-parse cost).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from airflow_milvus.errors import Fix, MilvusInputError

READ_BUFFER = 1 << 20  # bytes per ranged GET: Parquet footers and JSON chunks need a few


def connection_settings(conn: Any, bucket_name: str | None) -> dict[str, Any]:
    """boto3 client arguments and the bucket from an ``aws`` connection (pure, for tests)."""
    extra = dict(conn.extra_dejson or {})
    s3_service = (extra.get("service_config") or {}).get("s3") or {}
    client: dict[str, Any] = {
        "aws_access_key_id": conn.login or extra.get("aws_access_key_id"),
        "aws_secret_access_key": conn.password or extra.get("aws_secret_access_key"),
        "aws_session_token": extra.get("aws_session_token"),
        "endpoint_url": s3_service.get("endpoint_url") or extra.get("endpoint_url"),
        "region_name": extra.get("region_name") or s3_service.get("region_name"),
    }
    if "verify" in extra:
        client["verify"] = extra["verify"]
    style = ((extra.get("config_kwargs") or {}).get("s3") or {}).get("addressing_style")
    # MinIO and most S3-compatible stores serve path-style URLs; AWS itself chooses.
    client["addressing_style"] = style or ("path" if client["endpoint_url"] else "auto")
    return {"client": {k: v for k, v in client.items() if v is not None}, "bucket": bucket_name or s3_service.get("bucket_name")}


@dataclass
class Bucket:
    """Milvus's bucket, reached from the worker: key stats and ranged reads."""

    name: str
    conn_id: str
    client_args: dict[str, Any]

    @classmethod
    def from_connection(cls, get_connection, aws_conn_id: str, bucket_name: str | None) -> Bucket:
        conn = get_connection(aws_conn_id)
        settings = connection_settings(conn, bucket_name)
        secrets = [settings["client"].get(k) for k in ("aws_secret_access_key", "aws_session_token")]
        try:
            from airflow.sdk.log import mask_secret

            for secret in filter(None, secrets):
                mask_secret(secret)
        except Exception:  # outside a task the masker may not be configured
            pass
        if not settings["bucket"]:
            raise MilvusInputError(
                f"aws_conn_id={aws_conn_id!r} names no bucket: give bucket_name (Milvus's minio.bucketName), "
                "or set service_config.s3.bucket_name in the connection's extra."
            )
        return cls(settings["bucket"], aws_conn_id, settings["client"])

    def __post_init__(self) -> None:
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            args = dict(self.client_args)
            style = args.pop("addressing_style")
            config = Config(s3={"addressing_style": style}, retries={"max_attempts": 5, "mode": "standard"})
            self._client = boto3.session.Session().client("s3", config=config, **args)
        return self._client

    def where(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def stat(self, key: str) -> dict[str, Any] | None:
        """``{"size", "etag"}`` of the key; None when it does not exist."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._refused(key, exc) from exc
        except BotoCoreError as exc:
            raise self._refused(key, exc) from exc
        return {"size": int(head["ContentLength"]), "etag": str(head.get("ETag", "")).strip('"')}

    def check_exists(self, key: str) -> dict[str, Any]:
        found = self.stat(key)
        if found is None:
            raise MilvusInputError(
                f"Import file {self.where(key)} does not exist (checked through connection {self.conn_id!r}); "
                "nothing was imported. Fix the key (keys are relative to the bucket, as RemoteBulkWriter's "
                "batch_files give them), or upload the file first.",
                fixes=[Fix("validate_files", False, purpose="if the worker sees another store than Milvus does")],
            )
        return found

    def open(self, key: str, size: int) -> io.BufferedReader:
        """A seekable binary reader of the key: ranged GETs, so only what is read travels."""
        return io.BufferedReader(_RangedObject(self, key, size), buffer_size=READ_BUFFER)

    def _refused(self, key: str, exc: Exception) -> MilvusInputError:
        return MilvusInputError(
            f"Cannot read {self.where(key)} through connection {self.conn_id!r}: {exc}. Fix the connection's "
            "endpoint_url, credentials or region (the worker must reach the bucket Milvus reads).",
            fixes=[Fix("validate_files", False, purpose="if the worker cannot reach the bucket")],
        )


class _RangedObject(io.RawIOBase):
    """An S3 object as a seekable raw file: each read is one ranged GET."""

    def __init__(self, bucket: Bucket, key: str, size: int) -> None:
        self.bucket, self.key, self.size, self.pos = bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:
        if self.pos >= self.size or not len(buffer):
            return 0
        end = min(self.size, self.pos + len(buffer)) - 1
        reply = self.bucket.client.get_object(Bucket=self.bucket.name, Key=self.key, Range=f"bytes={self.pos}-{end}")
        data = reply["Body"].read()
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)
