"""``airflow milvus index ...``: thin shells over the operators, so a shell and a DAG act alike.

Failures exit non-zero with the error on stderr (``--verbose`` adds the traceback); stdout
carries only the result, so ``--output json`` can be piped.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

from airflow.utils.cli import suppress_logs_and_warning

from airflow_milvus.errors import MilvusProviderError
from airflow_milvus.planning.specs import describe_specs
from airflow_milvus.planning.validation import parse_params


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def _command(func: Callable[[Any], None]) -> Callable[[Any], None]:
    """Turn every failure into a message on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(args) -> None:
        try:
            func(args)
        except SystemExit:
            raise
        except Exception as exc:
            if args.verbose:
                raise
            if not isinstance(exc, MilvusProviderError):
                raise SystemExit(f"Error: {type(exc).__name__}: {exc}") from None
            raise SystemExit(f"Error: {exc.render('flag')}") from None  # a fix named as its flag

    return wrapper


def _print(args, rows: list[dict[str, Any]], full: Any) -> None:
    """JSON prints the operator's full result; other formats a flat table."""
    if args.output == "json":
        print(json.dumps(full, indent=2, sort_keys=True, default=str))
        return
    from airflow.cli.simple_table import AirflowConsole

    AirflowConsole().print_as(data=rows, output=args.output)


def _confirm(question: str, args) -> None:
    """Ask on stderr (stdout carries only the result). Not Airflow's ask_yesno: its output_fn
    arrived after 3.1, where it prints the question to stdout."""
    if args.yes:
        return
    _stderr(f"{question} [y/N]")
    try:
        answer = input()
    except EOFError:  # no terminal: never assume yes
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise SystemExit("Aborted: nothing was changed. Pass --yes to skip this question.")


def _spec_row(spec: dict[str, Any], **extra) -> dict[str, Any]:
    return {
        "collection": spec["collection_name"],
        "index_name": spec.get("index_name") or "(default)",
        "field": spec["field_name"],
        "index_type": spec["index_type"],
        "metric": spec.get("metric_type") or "",
        "params": json.dumps(spec.get("params") or {}, sort_keys=True),
        **extra,
    }


def _status_op(args):
    from airflow_milvus.operators.status import MilvusIndexStatusOperator

    return MilvusIndexStatusOperator(
        task_id="milvus_cli_index_status",
        milvus_conn_id=args.conn_id,
        collection_name=args.collection,
        field_name=args.field,
    )


@suppress_logs_and_warning
@_command
def index_list(args) -> None:
    """airflow milvus index list -c COLLECTION"""
    report = _status_op(args).execute({})
    specs = [{k: v for k, v in i.items() if k != "build"} for c in report for i in c["indexes"]]
    _print(args, [_spec_row(s) for s in specs], specs)


@suppress_logs_and_warning
@_command
def index_status(args) -> None:
    """airflow milvus index status -c COLLECTION"""
    report = _status_op(args).execute({})
    rows = []
    for c in report:
        head = {"load_state": c["load_state"], "rows": c["row_count"]}
        for i in c["indexes"] or [None]:
            if i is None:
                rows.append({"collection": c["collection_name"], **head, "index_name": "(none)"})
                continue
            b = i["build"]
            rows.append(
                {**_spec_row(i), **head, "build": b["state"], "indexed": f"{b['indexed_rows']}/{b['total_rows']}",
                 "pending": b["pending_index_rows"], "fail_reason": b["fail_reason"]}
            )  # fmt: skip
    _print(args, rows, report)


@suppress_logs_and_warning
@_command
def index_drop(args) -> None:
    """airflow milvus index drop -c COLLECTION [-f FIELD | -i INDEX]"""
    from airflow_milvus.operators.index import MilvusDropIndexOperator

    op = MilvusDropIndexOperator(
        task_id="milvus_cli_index_drop",
        milvus_conn_id=args.conn_id,
        collection_name=args.collection,
        field_name=args.field,
        index_name=args.index,
        drop_all=args.all,
        dry_run=args.dry_run,
    )
    with op.hook:
        plans = op.plan()
        result = op.result(plans, applied=False)
        if result["dropped"] and not args.dry_run:
            released = [n for n, c in result["collections"].items() if c["was_loaded"]]
            _stderr("Will drop:\n" + "\n".join(f"  {s['collection_name']}.{s['field_name']}: {s['index_name']} ({s['index_type']})" for s in result["dropped"]))
            if released:
                _stderr(f"Loaded collections are released first and stay released: {', '.join(released)}")
            _confirm(f"Drop {len(result['dropped'])} index(es)?", args)
            op.apply(plans)  # exactly what was shown: a collection matched since then is not touched
            result = op.result(plans, applied=True)
    if not result["dropped"]:
        _stderr("Nothing to drop.")
    action = "would drop" if args.dry_run else "dropped"
    _print(args, [_spec_row(s, action=action) for s in result["dropped"]], result)


@suppress_logs_and_warning
@_command
def index_create(args) -> None:
    """airflow milvus index create -c COLLECTION -f FIELD --index-type T [--metric M] [--params JSON]"""
    from airflow_milvus.operators.index import MilvusCreateIndexOperator

    op = MilvusCreateIndexOperator(
        task_id="milvus_cli_index_create",
        milvus_conn_id=args.conn_id,
        collection_name=args.collection,
        field_name=args.field,
        index_type=args.index_type,
        metric_type=args.metric,
        index_params=parse_params(args.params, "--params"),
        index_name=args.index,
        if_exists=args.if_exists,
        wait_for_completion=not args.no_wait,
        timeout=args.timeout,
        poll_interval=1.0,
        deferrable=False,
        dry_run=args.dry_run,
    )
    with op.hook:
        plan = op.plan()
        if plan.replacements and not args.dry_run:
            _stderr("Will replace:\n" + "\n".join(
                f"  {step.spec['collection_name']}.{step.spec['field_name']}: {describe_specs(step.existing)} "
                f"-> {step.spec['index_type']} {step.spec['metric_type'] or ''} {step.spec['params']}"
                for step in plan.replacements
            ))  # fmt: skip
            _stderr("A loaded collection is released for the rebuild and loaded again.")
            _confirm(f"Replace {len(plan.replacements)} index(es)?", args)
        result = op.apply(plan)  # exactly what was shown: read once, decided once
    rows = [_spec_row(s, action="would create" if args.dry_run else "created") for s in result["created"]]
    rows += [_spec_row(s, action="already there") for s in result["skipped"]]
    _print(args, rows, result)
