"""Reload a collection from files through Milvus import jobs (or, on Milvus Lite, by inserting them)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow_milvus import lineage
from airflow_milvus.compat import conf
from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.imports import files as import_files
from airflow_milvus.imports import jobs as import_jobs
from airflow_milvus.imports.rows import RowChecker
from airflow_milvus.lifecycle import waiting
from airflow_milvus.operators.base import MilvusBaseOperator
from airflow_milvus.planning.validation import validate_name


class MilvusBulkImportOperator(MilvusBaseOperator):
    """Import files into a collection with Milvus import jobs: the reload step for millions of rows.

    Milvus reads the files itself and builds the segments, so no row passes through the
    worker. Files are packed into as few jobs as the server takes (one JSON or Parquet file per
    job on Milvus 2.3, up to 1,024 per job on 2.4+; a NumPy batch is a job of its own), and at
    most ``max_concurrent_jobs`` run at once. A job that fails commits none of its rows.

    Re-running is safe: each item's fingerprint (its paths, and the size and modification
    time of every file the worker can see, or the size and ETag of every key in the bucket) is
    remembered per connection and collection once its job completes. Items already imported
    into this collection are skipped, and jobs a previous run started and left running are
    waited for, not started again.

    On Milvus Lite, which has no import jobs, the operator reads the files itself (JSON rows,
    Parquet, NumPy), checks every row, then writes them in batches through the hook (upsert
    when the collection has its own primary keys, so an interrupted run can be re-run).

    :param collection_name: the collection to import into (templated).
    :param files: a list whose items are each one path Milvus can read (an absolute path for a
        standalone server with local storage; a key in its bucket, or ``s3://bucket/key``, for
        MinIO/S3), or a list of NumPy column files (``<field>.npy``) of one batch (templated).
    :param partition_name: the partition to import into; default the collection's (templated).
    :param aws_conn_id: an Airflow ``aws`` connection that reaches Milvus's bucket from the
        worker (extra ``endpoint_url`` for MinIO): ``files`` are then keys in that bucket,
        checked through the S3 API before any job starts (templated).
    :param bucket_name: Milvus's bucket (``minio.bucketName``); default the connection's extra
        ``service_config.s3.bucket_name`` (templated).
    :param max_concurrent_jobs: import jobs running at once (1-1,024); more wait for a free slot
        (templated).
    :param wait_for_completion: wait until every job is Completed. Without waiting, only
        ``max_concurrent_jobs`` jobs start; a re-run waits for them and starts the rest.
    :param deferrable: wait on the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param timeout: seconds to wait for all the jobs.
    :param poll_interval: seconds between job state polls (each logs state, % and rows).
    :param validate_files: check the files before starting jobs: they exist (on this worker, or
        in the bucket through ``aws_conn_id``), local paths are absolute, and the first
        ``validate_rows`` rows fit the schema. Set False when the worker cannot see them.
    :param validate_rows: rows per item checked before a job starts (Milvus checks the rest).
    :param batch_size: rows per write on Milvus Lite.
    :return: ``{"collection_name", "partition_name", "rows", "job_ids", "skipped", "files",
        "skipped_files", "method", "not_started_files"}``: ``rows`` imported by this run;
        ``skipped`` True when every item had been imported before (``job_ids`` then lists the
        earlier jobs); ``method`` is ``"import_job"`` or ``"insert"`` (Milvus Lite); ``job_ids``
        is empty on Milvus Lite; ``not_started_files`` counts the items left for a re-run when
        not waiting.
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id", "collection_name", "partition_name", "files", "aws_conn_id", "bucket_name",
        "max_concurrent_jobs", "wait_for_completion", "timeout", "poll_interval", "validate_files",
        "validate_rows", "batch_size",
    )
    template_fields_renderers = {"files": "json"}
    bool_fields = ("wait_for_completion", "validate_files")
    seconds_fields = ("timeout", "poll_interval")
    int_fields = {"validate_rows": 1, "batch_size": 1, "max_concurrent_jobs": (1, import_jobs.MAX_JOBS)}

    def __init__(
        self,
        *,
        collection_name: str,
        files: list[str | list[str]] | Any,
        partition_name: str | None = None,
        aws_conn_id: str | None = None,
        bucket_name: str | None = None,
        max_concurrent_jobs: int = 8,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        timeout: float = 3600.0,
        poll_interval: float = 5.0,
        validate_files: bool = True,
        validate_rows: int = 1000,
        batch_size: int = 1000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.collection_name = collection_name
        self.files = files
        self.partition_name = partition_name
        self.aws_conn_id = aws_conn_id
        self.bucket_name = bucket_name
        self.max_concurrent_jobs = max_concurrent_jobs
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.validate_files = validate_files
        self.validate_rows = validate_rows
        self.batch_size = batch_size

    def coerce_int(self, name: str, value: Any, low: int, high: int | None) -> int:
        try:
            return super().coerce_int(name, value, low, high)
        except MilvusInputError:  # the operator's wording, which names the task
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise MilvusInputError(f"{self.task_id}: {name}={value!r}: use a whole number {bound}.") from None

    # ------------------------------------------------------------------ plan
    def run(self, context) -> dict[str, Any]:
        hook, name = self.hook, validate_name(self.collection_name, "collection name")
        items = import_files.normalize_items(self.files)
        bucket = self._bucket()
        # Milvus reads keys of its own bucket: s3://bucket/ is the worker's business only.
        items = [[import_files.split_key(p, bucket.name if bucket else None)[1] for p in item] for item in items]
        if not hook.has_collection(name):
            raise MilvusInputError(f"Collection {name!r} does not exist in {hook.redact(hook.uri)}; create it before importing into it.")
        if self.partition_name:
            partition = validate_name(self.partition_name, "partition name")
            if not hook.has_partition(name, partition):
                raise MilvusInputError(f"Partition {partition!r} does not exist in collection {name!r}; create it or leave partition_name unset.")
        description = hook.describe_collection(name)
        collection_id = description.get("collection_id")
        memory = import_jobs.load(self.milvus_conn_id, name, collection_id)
        if any(e.get("state") == "completed" and e.get("rows") for e in memory.values()) and hook.row_count(name) == 0:
            self.log.warning("Collection %s is empty although earlier imports completed: importing again", name)
            memory = {}
        lite = hook.flavour == "lite"
        # Keys count by size and ETag, read where the worker is to reach the bucket anyway.
        stats = {key: bucket.stat(key) for item in items for key in item} if bucket and (self.validate_files or lite) else {}
        fps = [import_files.fingerprint(item, [stats[k] for k in item] if stats else None) for item in items]
        todo, adopted, done = import_jobs.sort_items(hook, items, fps, memory, lite=lite)
        result = {
            "collection_name": name, "partition_name": self.partition_name or None, "rows": 0,
            "job_ids": [j["job_id"] for j in adopted], "skipped": not todo and not adopted, "files": len(items),
            "skipped_files": len(done), "method": "insert" if lite else "import_job", "not_started_files": 0,
        }
        if result["skipped"]:
            result["job_ids"] = list(dict.fromkeys(e["job_id"] for e in done if e.get("job_id") is not None))
            self.log.info("Every file was imported into %s before; nothing to do", name)
            return result
        self._validate(todo, description, name, lite, bucket, stats)
        opener = (lambda key: bucket.open(key, stats[key]["size"])) if bucket else None
        if lite:
            return self._insert_on_lite(result, [(t["fp"], t["files"]) for t in todo], memory, description, collection_id, opener)
        formats = [import_files.file_format(t["files"]) for t in todo]
        queue = [
            {"items": [todo[i] for i in group], "files": [f for i in group for f in todo[i]["files"]]}
            for group in import_jobs.pack_jobs(formats, hook.server_version)
        ]
        self.log.info("%d items to import into %s in %d jobs, at most %d at once", len(todo), name, len(queue), self.max_concurrent_jobs)
        payload = {"result": result, "queue": queue, "running": adopted, "done": [], "collection_id": collection_id,
                   "started_at": time.time()}
        return self._drive(payload)

    def _lineage_bucket(self) -> str | None:
        """Milvus's bucket, for lineage's s3://bucket/key: run() made the files keys in it."""
        if self.bucket_name or self.aws_conn_id:
            return self.bucket_name or self._bucket().name
        named = {import_files.split_key(p, None)[0] for item in import_files.normalize_items(self.files) for p in item}
        return next(iter(named - {None}), None)  # from s3:// URIs

    def _bucket(self):
        if not self.aws_conn_id:
            return None
        from airflow_milvus.imports.bucket import Bucket

        return Bucket.from_connection(self.hook.get_connection, self.aws_conn_id, self.bucket_name or None)

    def _validate(self, todo, description, name: str, lite: bool, bucket, stats) -> None:
        """Check before any job starts, so a bad file changes nothing. Lite checks every row."""
        if not (self.validate_files or lite):
            return
        checker = RowChecker(description, "insert")
        limit = None if lite else int(self.validate_rows)
        for entry in todo:
            item = entry["files"]
            if bucket:
                for key in item:
                    stats[key] = stats.get(key) or bucket.check_exists(key)
                shown, opener = [bucket.where(k) for k in item], lambda uri: bucket.open(*self._key_size(uri, stats))
            else:
                import_files.check_visible(item, need_absolute=not lite)
                shown, opener = item, None
            checked = import_files.check_rows(shown, checker, limit=limit, collection_name=name, opener=opener)
            self.log.info("Checked %d rows of %s against %s", checked, ", ".join(shown), name)

    @staticmethod
    def _key_size(uri: str, stats) -> tuple[str, int]:
        key = import_files.split_key(uri, None)[1]
        return key, stats[key]["size"]

    # ------------------------------------------------------------------ start, wait, repeat
    def _drive(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Start queued jobs while fewer than ``max_concurrent_jobs`` run; wait for a free slot
        (or for all, once none are queued); repeat. Deferring resumes in :meth:`execute_complete`."""
        name = payload["result"]["collection_name"]
        while True:
            self._start_queued(payload)
            job_ids = [j["job_id"] for j in payload["running"]]
            if not job_ids:
                return self._finish(payload)
            if not self.wait_for_completion:
                left = sum(len(j["items"]) for j in payload["queue"])
                payload["result"]["not_started_files"] = left
                self.log.info("Started import jobs %s into %s without waiting (%d items not started); a re-run "
                              "waits for them and starts the rest", job_ids, name, left)
                return payload["result"]
            need_slot = bool(payload["queue"])
            if self.deferrable:
                from airflow_milvus.triggers.bulk_import import MilvusImportJobTrigger

                self.defer(
                    trigger=MilvusImportJobTrigger(
                        job_ids=job_ids, need_slot=need_slot, milvus_conn_id=self.milvus_conn_id,
                        poll_interval=self.poll_interval, timeout=self.timeout, started_at=payload["started_at"],
                        payload=payload,
                    ),
                    method_name="execute_complete",
                )
            event = waiting.poll(
                lambda ids=job_ids, slot=need_slot: import_jobs.check_jobs(self.hook, ids, need_slot=slot), timeout=float(self.timeout),
                poll_interval=float(self.poll_interval), logger=self.log, started_at=payload["started_at"],
                # The worker logs "Import into", the trigger "Import progress".
                describe=lambda event: f"Import into {name}: {import_jobs.describe_progress(event['statuses'])}",
                timeout_message=lambda event: f"Import jobs not finished after {float(self.timeout):.0f}s",
            )
            self._record(event, payload)

    def _start_queued(self, payload: dict[str, Any]) -> None:
        name, collection_id = payload["result"]["collection_name"], payload["collection_id"]
        if not payload["queue"] or len(payload["running"]) >= self.max_concurrent_jobs:
            return
        memory = import_jobs.load(self.milvus_conn_id, name, collection_id)
        while payload["queue"] and len(payload["running"]) < self.max_concurrent_jobs:
            job = payload["queue"].pop(0)
            try:
                job_id = self.hook.start_import_job(name, self.partition_name, job["files"])
            except MilvusProviderError:
                raise
            except Exception as exc:
                raise MilvusInputError(
                    f"Milvus refused to import {', '.join(job['files'])} into {name!r}: {self.hook.redact(error_message(exc))}. "
                    "Fix the file or path and re-run (files already imported are skipped)."
                ) from exc
            self.log.info("Started import job %s into %s: %s", job_id, name, ", ".join(job["files"]))
            # Remember at once: if this task dies now, the re-run waits for the job instead of importing again.
            for item in job["items"]:
                memory[item["fp"]] = {"files": item["files"], "job_id": job_id, "state": "started"}
            import_jobs.save(self.milvus_conn_id, name, collection_id, memory)
            payload["running"].append({**job, "job_id": job_id})
            payload["result"]["job_ids"].append(job_id)

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        self.coerce_rendered_fields()
        payload = event["payload"]
        with self.hook:
            self._record(event, payload)
            return self._drive(payload)

    def _record(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        """Remember completed jobs' items and forget failed ones; raise on failure or timeout."""
        name = payload["result"]["collection_name"]
        memory = import_jobs.load(self.milvus_conn_id, name, payload["collection_id"])
        by_id = {s["job_id"]: s for s in event.get("statuses") or []}
        running = []
        for job in payload["running"]:
            status = by_id.get(job["job_id"]) or {}
            if status.get("state") in import_jobs.DONE:
                for item in job["items"]:
                    memory[item["fp"]] = {"files": item["files"], "job_id": job["job_id"], "state": "completed", "rows": status["rows"]}
                payload["done"].append({"job_id": job["job_id"], "files": job["files"], "rows": status["rows"]})
            elif status.get("state") in import_jobs.FAILED:
                for item in job["items"]:
                    memory.pop(item["fp"], None)  # a failed job committed nothing: the re-run imports again
            else:
                running.append(job)
        payload["running"] = running
        import_jobs.save(self.milvus_conn_id, name, payload["collection_id"], memory)
        not_started = f" {sum(len(j['items']) for j in payload['queue'])} items were not started." if payload["queue"] else ""
        if event.get("status") == "error":
            raise MilvusInputError(
                f"Import into {name!r}: {event['message']}. Milvus committed none of that job's rows;{not_started} fix the "
                "file and re-run (files already imported are skipped, running jobs are waited for)."
            )
        if event.get("status") not in ("success", "pending"):
            raise MilvusProviderError(
                f"Import into {name!r}: {event.get('message')} ({import_jobs.describe_progress(event.get('statuses') or [])}).{not_started} "
                "The jobs keep running in Milvus; a re-run waits for them instead of importing again, or raise timeout."
            )

    def _finish(self, payload: dict[str, Any]) -> dict[str, Any]:
        result, jobs = dict(payload["result"]), payload["done"]
        name = result["collection_name"]
        result["rows"] = sum(j["rows"] for j in jobs)
        self.log.info("Imported %d rows into %s with jobs %s", result["rows"], name, result["job_ids"])
        lineage.report_import(self.hook, name, [job["files"] for job in jobs], local=False, bucket=self._lineage_bucket())
        return result

    # ------------------------------------------------------------------ Milvus Lite
    def _insert_on_lite(self, result, todo, memory, description, collection_id, opener) -> dict[str, Any]:
        """Milvus Lite has no import jobs: stream the (already checked) rows through batched writes.

        One Python process parses and sends every row, as MilvusIngestOperator does; see
        docs/operators.md for where this stops scaling."""
        name, hook = result["collection_name"], self.hook
        own_keys = not (description.get("auto_id") or any(f.get("auto_id") for f in description["fields"] if f.get("is_primary")))
        mode = "upsert" if own_keys else "insert"
        for fp, item in todo:
            rows = 0
            for batch in import_files.read_rows(item, batch_size=int(self.batch_size), opener=opener):
                rows += hook.write_rows(name, batch, mode=mode, partition_name=self.partition_name)
                self.log.info("Milvus Lite: %s %d rows of %s into %s so far", mode, rows, ", ".join(item), name)
            memory[fp] = {"files": item, "job_id": None, "state": "completed", "rows": rows}
            import_jobs.save(self.milvus_conn_id, name, collection_id, memory)
            result["rows"] += rows
        hook.flush(name)
        self.log.info("Milvus Lite: %d rows from %d files into %s", result["rows"], len(todo), name)
        lineage.report_import(hook, name, [item for _, item in todo], local=not opener, bucket=self._lineage_bucket())
        return result
