"""``airflow milvus index|collection ...``: thin shells over :mod:`airflow_milvus.lifecycle`, so a
shell and a DAG act alike (the same plan, the same checks), with no operator in between.

Failures exit non-zero with the error on stderr (``--verbose`` adds the traceback); stdout
carries only the result, so ``--output json`` can be piped.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow.utils.cli import suppress_logs_and_warning

from airflow_milvus.errors import MilvusInputError, MilvusProviderError
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

    return suppress_logs_and_warning(wrapper)


@contextmanager
def _connected(args):
    """The hook of ``--conn-id`` and the snapshot store, outside a task: Variables live in the
    metadata database there (as for ``airflow variables``)."""
    from airflow_milvus.hooks.milvus import MilvusHook
    from airflow_milvus.lifecycle.snapshots import MetadataVariables, SnapshotStore

    with MilvusHook(milvus_conn_id=args.conn_id) as hook:
        yield hook, SnapshotStore(args.conn_id, variables=MetadataVariables())


def _print(args, rows: list[dict[str, Any]], full: Any) -> None:
    """JSON prints the full result; other formats a flat table."""
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
    params = spec.get("params")
    return {
        "collection": spec["collection_name"],
        "index_name": repr(spec["index_name"]) if spec.get("index_name") else "(default)",  # repr: spaces show
        "field": spec["field_name"],
        "index_type": spec["index_type"],
        "metric": spec.get("metric_type") or "",
        "params": "(not reported)" if params is None else json.dumps(params, sort_keys=True),
        **extra,
    }


def _report(args) -> list[dict[str, Any]]:
    from airflow_milvus.lifecycle.collections import status_report

    with _connected(args) as (hook, _):
        return status_report(hook, args.collection, field_name=args.field)


@_command
def index_list(args) -> None:
    """airflow milvus index list -c COLLECTION"""
    specs = [{k: v for k, v in i.items() if k != "build"} for c in _report(args) for i in c["indexes"]]
    _print(args, [_spec_row(s) for s in specs], specs)


@_command
def index_status(args) -> None:
    """airflow milvus index status -c COLLECTION"""
    report = _report(args)
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


@_command
def index_drop(args) -> None:
    """airflow milvus index drop -c COLLECTION [-f FIELD | -i INDEX]"""
    from airflow_milvus.lifecycle import drop

    with _connected(args) as (hook, store):
        plan = drop.plan_drop(
            hook, store, collection_name=args.collection, field_name=args.field, index_name=args.index,
            drop_all=args.all, missing_ok=args.missing_ok,
        )  # fmt: skip
        shown = plan.to_xcom(dry_run=True)
        if shown["dropped"] and not args.dry_run:
            released = [c.collection for c in plan.collections if c.release]
            _stderr("Will drop:\n" + "\n".join(f"  {s['collection_name']}.{s['field_name']}: {s['index_name']!r} ({s['index_type']})" for s in shown["dropped"]))
            if released:
                _stderr(f"Loaded collections are released first and stay released: {', '.join(released)}")
            _confirm(f"Drop {len(shown['dropped'])} index(es)?", args)
            drop.apply_drop(hook, store, plan)  # exactly what was shown: a collection matched since then is not touched
    result = plan.to_xcom(dry_run=args.dry_run)
    _warn_unknown_params(result["dropped"], "a rebuild from this result uses Milvus's defaults")
    if not result["dropped"]:
        notes = [c.note for c in plan.collections if c.note] or ["No collection matched."]
        _stderr("Nothing to drop. " + " ".join(notes))
    action = "would drop" if args.dry_run else "dropped"
    _print(args, [_spec_row(s, action=action) for s in result["dropped"]], result)


def _warn_unknown_params(specs: list[dict[str, Any]], consequence: str) -> None:
    """Say on stderr what the library logs say (logs are off at the shell without --verbose):
    Milvus Lite did not report these indexes' build parameters (params null)."""
    for spec in specs:
        if "params" in spec and spec["params"] is None:
            _stderr(
                f"Note: {spec.get('collection_name')}.{spec.get('field_name')}: build parameters of index "
                f"{spec.get('index_name')!r} ({spec.get('index_type')}) unknown (params null); {consequence}."
            )


def _read_specs(path: str) -> Any:
    """The specs of ``--from-json``: a file (``-``: stdin) holding ``index drop --output json``'s
    result, a list of specs or one spec."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MilvusInputError(f"--from-json {path}: cannot read it ({exc.strerror}).") from None
    except UnicodeDecodeError:
        raise MilvusInputError(
            f"--from-json {path}: not JSON (not UTF-8 text); pass the output of `index drop --output json`."
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MilvusInputError(
            f"--from-json {path}: not JSON ({exc.msg} at line {exc.lineno}); pass the output of "
            "`index drop --output json`."
        ) from None


def _wanted(args) -> tuple[list[dict[str, Any]], Any]:
    from airflow_milvus.planning.create import wanted_specs

    if args.from_json is not None:
        given = [flag for flag, value in (("-c", args.collection), ("-f", args.field), ("--index-type", args.index_type),
                 ("--metric", args.metric), ("--params", args.params), ("-i", args.index)) if value is not None]  # fmt: skip
        if given:
            raise MilvusInputError(f"--from-json takes the indexes from the file; leave out {', '.join(given)}.")
        index_specs = _read_specs(args.from_json)
        return wanted_specs(collection_name=None, field_name=None, index_type=None, metric_type=None,
                            index_params=None, index_name=None, index_specs=index_specs), index_specs  # fmt: skip
    missing = [flag for flag, value in (("-c", args.collection), ("-f", args.field), ("--index-type", args.index_type)) if not value]
    if missing:
        raise MilvusInputError(f"index create needs {', '.join(missing)} (or --from-json FILE with a drop's JSON result).")
    wanted = wanted_specs(
        collection_name=args.collection, field_name=args.field, index_type=args.index_type, metric_type=args.metric,
        index_params=parse_params(args.params, "--params"), index_name=args.index, index_specs=None,
    )  # fmt: skip
    return wanted, None


@_command
def index_create(args) -> None:
    """airflow milvus index create (-c COLLECTION -f FIELD --index-type T [...] | --from-json FILE)"""
    from airflow_milvus.lifecycle import create
    from airflow_milvus.planning.create import unknown_params

    wanted, index_specs = _wanted(args)
    _warn_unknown_params(unknown_params(index_specs), "it is built with Milvus's defaults")
    with _connected(args) as (hook, store):
        plan = create.plan_indexes(hook, wanted, if_exists=args.if_exists)
        if plan.replacements and not args.dry_run:
            _stderr("Will replace:\n" + "\n".join(
                f"  {step.spec['collection_name']}.{step.spec['field_name']}: {describe_specs(step.existing)} "
                f"-> {step.spec['index_type']} {step.spec['metric_type'] or ''} {step.spec['params']}"
                for step in plan.replacements
            ))  # fmt: skip
            _stderr("A loaded collection is released for the rebuild and loaded again.")
            _confirm(f"Replace {len(plan.replacements)} index(es)?", args)
        outcome = create.apply_create(hook, store, plan, index_specs=index_specs, timeout=args.timeout, dry_run=args.dry_run)
        if args.dry_run:
            result = outcome.to_xcom()
        else:
            if not args.no_wait:
                create.wait_for_builds(hook, outcome, timeout=args.timeout, poll_interval=1.0)
            result = create.finish_create(
                hook, outcome, states=dict(plan.states), load=False, restore_load_state=not args.no_wait,
                index_specs=index_specs, timeout=args.timeout,
            )  # fmt: skip
    rows = [_spec_row(s, action="would create" if args.dry_run else "created") for s in result["created"]]
    rows += [_spec_row(s, action="already there") for s in result["skipped"]]
    _print(args, rows, result)


@_command
def collection_load(args) -> None:
    """airflow milvus collection load -c COLLECTION"""
    from airflow_milvus.lifecycle.collections import ensure_loaded

    with _connected(args) as (hook, _):
        loaded_now = ensure_loaded(hook, args.collection, timeout=args.timeout)
        state = hook.get_load_state(args.collection)
    result = {"collection_name": args.collection, "was_loaded": not loaded_now, "load_state": state}
    _print(args, [{"collection": args.collection, "action": "loaded" if loaded_now else "already loaded", "load_state": state}], result)


@_command
def collection_release(args) -> None:
    """airflow milvus collection release -c COLLECTION"""
    from airflow_milvus.lifecycle.collections import ensure_released
    from airflow_milvus.planning.specs import LOADED_STATES

    with _connected(args) as (hook, _):
        loaded = hook.get_load_state(args.collection) in LOADED_STATES
        if loaded:
            _confirm(f"Release {args.collection}? It stops serving searches until it is loaded again.", args)
        released = ensure_released(hook, args.collection)
    result = {"collection_name": args.collection, "was_loaded": released}
    _print(args, [{"collection": args.collection, "action": "released" if released else "was not loaded"}], result)
