"""Reload a collection from files through Milvus import jobs (or, on Milvus Lite, by inserting them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_milvus.compat import conf
from airflow_milvus.errors import MilvusInputError, MilvusProviderError
from airflow_milvus.hooks.retry import error_message
from airflow_milvus.imports import files as import_files
from airflow_milvus.imports import jobs as import_jobs
from airflow_milvus.imports.rows import RowChecker
from airflow_milvus.lifecycle import waiting
from airflow_milvus.operators.base import MilvusBaseOperator
from airflow_milvus.planning.validation import as_int, validate_name


class MilvusBulkImportOperator(MilvusBaseOperator):
    """Import files into a collection with Milvus import jobs: the reload step for millions of rows.

    Milvus reads the files itself and builds the segments, so no row passes through the
    worker. Each item of ``files`` becomes one job; a job that fails commits none of its rows.

    Re-running is safe: each item's fingerprint (its paths, and the size and modification
    time of every file the worker can see) is remembered per connection and collection once
    its job completes. Items already imported into this collection are skipped, and jobs a
    previous run started and left running are waited for, not started again.

    On Milvus Lite, which has no import jobs, the operator reads the files itself (JSON rows,
    Parquet, NumPy), checks every row, then writes them in batches through the hook (upsert
    when the collection has its own primary keys, so an interrupted run can be re-run).

    :param collection_name: the collection to import into (templated).
    :param files: a list whose items are each one path Milvus can read (an absolute path for a
        standalone server with local storage, a key in its bucket for MinIO/S3), or a list of
        NumPy column files (``<field>.npy``) of one batch (templated).
    :param partition_name: the partition to import into; default the collection's (templated).
    :param wait_for_completion: wait until every job is Completed.
    :param deferrable: wait on the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param timeout: seconds to wait for the jobs.
    :param poll_interval: seconds between job state polls (each logs state, % and rows).
    :param validate_files: check the files on this worker before starting jobs: they exist,
        paths are absolute, and the first ``validate_rows`` rows fit the schema. Set False when
        the worker cannot see them (bucket keys, paths on the Milvus host only).
    :param validate_rows: rows per item checked before a job starts (Milvus checks the rest).
    :param batch_size: rows per write on Milvus Lite.
    :return: ``{"collection_name", "partition_name", "rows", "job_ids", "skipped", "files",
        "skipped_files", "method"}``: ``rows`` imported by this run; ``skipped`` True when every
        item had been imported before (``job_ids`` then lists the earlier jobs); ``method`` is
        ``"import_job"`` or ``"insert"`` (Milvus Lite); ``job_ids`` is empty on Milvus Lite.
    """

    template_fields: Sequence[str] = (
        "milvus_conn_id", "collection_name", "partition_name", "files", "wait_for_completion",
        "timeout", "poll_interval", "validate_files", "validate_rows", "batch_size",
    )
    template_fields_renderers = {"files": "json"}
    bool_fields = ("wait_for_completion", "validate_files")
    seconds_fields = ("timeout", "poll_interval")

    def __init__(
        self,
        *,
        collection_name: str,
        files: list[str | list[str]] | Any,
        partition_name: str | None = None,
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
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.validate_files = validate_files
        self.validate_rows = validate_rows
        self.batch_size = batch_size

    # ------------------------------------------------------------------ plan
    def run(self, context) -> dict[str, Any]:
        hook, name = self.hook, validate_name(self.collection_name, "collection name")
        items = import_files.normalize_items(self.files)
        for field in ("validate_rows", "batch_size"):
            value = getattr(self, field)
            try:
                setattr(self, field, as_int(value, field, 1))
            except MilvusInputError:  # the operator's wording, which names the task
                raise MilvusInputError(f"{self.task_id}: {field}={value!r}: use a whole number >= 1.") from None
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
        todo, adopted, done = [], [], []
        for item in items:
            fp = import_files.fingerprint(item)
            entry = memory.get(fp) or {}
            if entry.get("state") == "started" and not lite:
                status = hook.import_job_status(entry["job_id"])
                if status["state"] in import_jobs.DONE:
                    memory[fp] = {**entry, "state": "completed", "rows": status["rows"]}
                    entry = memory[fp]
                elif status["state"] not in import_jobs.FAILED:
                    self.log.info("Job %s for %s is still running (started by an earlier run): waiting for it", entry["job_id"], item)
                    adopted.append({"fp": fp, "job_id": entry["job_id"], "files": item})
                    continue
            if entry.get("state") == "completed":
                self.log.info("Already imported into %s (job %s, %s rows): %s", name, entry.get("job_id"), entry.get("rows"), item)
                done.append(entry)
                continue
            todo.append((fp, item))
        result = {
            "collection_name": name, "partition_name": self.partition_name or None, "rows": 0,
            "job_ids": [], "skipped": not todo and not adopted, "files": len(items),
            "skipped_files": len(done), "method": "insert" if lite else "import_job",
        }
        if result["skipped"]:
            result["job_ids"] = [e["job_id"] for e in done if e.get("job_id") is not None]
            self.log.info("Every file was imported into %s before; nothing to do", name)
            return result
        self._validate(todo, description, name, lite)
        if lite:
            return self._insert_on_lite(result, todo, memory, description, collection_id)
        jobs = adopted + [self._start(name, fp, item, memory, collection_id) for fp, item in todo]
        result["job_ids"] = [j["job_id"] for j in jobs]
        payload = {"result": result, "jobs": jobs, "collection_id": collection_id}
        if not self.wait_for_completion:
            self.log.info("Started import jobs %s into %s without waiting; a re-run waits for them", result["job_ids"], name)
            return result
        if self.deferrable:
            from airflow_milvus.triggers.bulk_import import MilvusImportJobTrigger

            self.defer(
                trigger=MilvusImportJobTrigger(
                    job_ids=result["job_ids"], milvus_conn_id=self.milvus_conn_id,
                    poll_interval=self.poll_interval, timeout=self.timeout, payload=payload,
                ),
                method_name="execute_complete",
            )
        return self._finish(self._wait(name, result["job_ids"]), payload)

    def _validate(self, todo, description, name: str, lite: bool) -> None:
        """Check before any job starts, so a bad file changes nothing. Lite checks every row."""
        if not (self.validate_files or lite):
            return
        checker = RowChecker(description, "insert")
        limit = None if lite else int(self.validate_rows)
        for _, item in todo:
            import_files.check_visible(item, need_absolute=not lite)
            checked = import_files.check_rows(item, checker, limit=limit, collection_name=name)
            self.log.info("Checked %d rows of %s against %s", checked, ", ".join(item), name)

    def _start(self, name: str, fp: str, item: list[str], memory: dict, collection_id: Any) -> dict[str, Any]:
        try:
            job_id = self.hook.start_import_job(name, self.partition_name, item)
        except MilvusProviderError:
            raise
        except Exception as exc:
            raise MilvusInputError(
                f"Milvus refused to import {', '.join(item)} into {name!r}: {self.hook.redact(error_message(exc))}. "
                "Fix the file or path and re-run."
            ) from exc
        self.log.info("Started import job %s into %s: %s", job_id, name, ", ".join(item))
        # Remember at once: if this task dies now, the re-run waits for the job instead of importing again.
        memory[fp] = {"files": item, "job_id": job_id, "state": "started"}
        import_jobs.save(self.milvus_conn_id, name, collection_id, memory)
        return {"fp": fp, "job_id": job_id, "files": item}

    # ------------------------------------------------------------------ wait and finish
    def _wait(self, name: str, job_ids: list[int]) -> dict[str, Any]:
        # The state machine the trigger drives; the worker logs "Import into", the trigger "Import progress".
        return waiting.poll(
            lambda: import_jobs.check_jobs(self.hook, job_ids), timeout=float(self.timeout),
            poll_interval=float(self.poll_interval), logger=self.log,
            describe=lambda event: f"Import into {name}: {import_jobs.describe_progress(event['statuses'])}",
            timeout_message=lambda event: f"Import jobs not finished after {float(self.timeout):.0f}s",
        )

    def execute_complete(self, context, event: dict[str, Any]) -> dict[str, Any]:
        self.coerce_rendered_fields()
        with self.hook:
            return self._finish(event, event["payload"])

    def _finish(self, event: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        result, jobs = dict(payload["result"]), payload["jobs"]
        name = result["collection_name"]
        memory = import_jobs.load(self.milvus_conn_id, name, payload["collection_id"])
        by_id = {s["job_id"]: s for s in event.get("statuses") or []}
        for job in jobs:
            status = by_id.get(job["job_id"]) or {}
            if status.get("state") in import_jobs.DONE:
                memory[job["fp"]] = {"files": job["files"], "job_id": job["job_id"], "state": "completed", "rows": status["rows"]}
            elif status.get("state") in import_jobs.FAILED:
                memory.pop(job["fp"], None)  # a failed job committed nothing: the re-run imports again
        import_jobs.save(self.milvus_conn_id, name, payload["collection_id"], memory)
        if event.get("status") == "error":
            raise MilvusInputError(
                f"Import into {name!r}: {event['message']}. Milvus committed none of that file's rows; fix the file "
                "and re-run (files already imported are skipped)."
            )
        if event.get("status") != "success":
            raise MilvusProviderError(
                f"Import into {name!r}: {event.get('message')} ({import_jobs.describe_progress(event.get('statuses') or [])}). "
                "The jobs keep running in Milvus; a re-run waits for them instead of importing again, or raise timeout."
            )
        result["rows"] = sum(by_id[j["job_id"]]["rows"] for j in jobs)
        self.log.info("Imported %d rows into %s with jobs %s", result["rows"], name, result["job_ids"])
        return result

    # ------------------------------------------------------------------ Milvus Lite
    def _insert_on_lite(self, result, todo, memory, description, collection_id) -> dict[str, Any]:
        """Milvus Lite has no import jobs: stream the (already checked) rows through batched writes.

        One Python process parses and sends every row, as MilvusIngestOperator does; see
        docs/operators.md for where this stops scaling."""
        name, hook = result["collection_name"], self.hook
        own_keys = not (description.get("auto_id") or any(f.get("auto_id") for f in description["fields"] if f.get("is_primary")))
        mode = "upsert" if own_keys else "insert"
        for fp, item in todo:
            rows = 0
            for batch in import_files.read_rows(item, batch_size=int(self.batch_size)):
                rows += hook.write_rows(name, batch, mode=mode, partition_name=self.partition_name)
                self.log.info("Milvus Lite: %s %d rows of %s into %s so far", mode, rows, ", ".join(item), name)
            memory[fp] = {"files": item, "job_id": None, "state": "completed", "rows": rows}
            import_jobs.save(self.milvus_conn_id, name, collection_id, memory)
            result["rows"] += rows
        hook.flush(name)
        self.log.info("Milvus Lite: %d rows from %d files into %s", result["rows"], len(todo), name)
        return result
