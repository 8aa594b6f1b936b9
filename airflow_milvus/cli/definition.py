"""Command definitions only: Airflow imports this on every CLI start, so it stays light."""

from __future__ import annotations

import argparse

from airflow.cli.cli_config import (
    ARG_OUTPUT,
    ARG_VERBOSE,
    ARG_YES,
    ActionCommand,
    Arg,
    GroupCommand,
    lazy_load_command,
)

_COMMANDS = "airflow_milvus.cli.commands"

ARG_COLLECTION = Arg(("-c", "--collection"), required=True, help="Collection name or glob, e.g. book or 'book_*'")
ARG_CONN_ID = Arg(
    ("--conn-id",),
    default="milvus_default",
    help="Milvus connection id (default milvus_default; without such a connection: embedded Milvus Lite)",
)
ARG_FIELD = Arg(("-f", "--field"), help="Field name")
ARG_INDEX = Arg(("-i", "--index"), help="Index name")
ARG_DRY_RUN = Arg(("--dry-run",), action="store_true", help="Show what would change; change nothing")
ARG_ALL = Arg(("--all",), action="store_true", help="Drop every index when the collection has several")
ARG_INDEX_TYPE = Arg(("--index-type",), help="Index type, e.g. HNSW, IVF_FLAT, AUTOINDEX, INVERTED (required without --from-json)")
ARG_METRIC = Arg(("--metric",), help="Metric type for vector indexes: L2, IP or COSINE")
ARG_PARAMS = Arg(("--params",), help='Build parameters as a JSON object, e.g. \'{"M": 16}\'')
ARG_IF_EXISTS = Arg(
    ("--if-exists",),
    choices=("fail", "skip", "replace"),
    default="fail",
    help="When the field has a different index: fail (default), skip, or replace it (asks to confirm)",
)
ARG_NO_WAIT = Arg(("--no-wait",), action="store_true", help="Return once the build has started")
ARG_TIMEOUT = Arg(("--timeout",), type=float, default=3600.0, help="Seconds to wait for the build (default 3600)")

ARG_ONE_COLLECTION = Arg(("-c", "--collection"), required=True, help="Collection name")
ARG_CREATE_COLLECTION = Arg(("-c", "--collection"), help="Collection name (no glob: an index is created on one collection)")
ARG_CREATE_FIELD = Arg(("-f", "--field"), help="Field to index (required without --from-json)")
ARG_FROM_JSON = Arg(
    ("--from-json",),
    metavar="FILE",
    help="Rebuild the indexes of a drop's JSON result (`index drop --output json > FILE`), or of a "
    "list of index specs; '-' reads stdin. Replaces -c, -f, --index-type, --metric, --params and -i",
)
ARG_MISSING_OK = Arg(
    ("--missing-ok",),
    action=argparse.BooleanOptionalAction,
    default=True,
    help="An index that is already absent is success (default); --no-missing-ok makes it an error",
)
ARG_LOAD_TIMEOUT = Arg(("--timeout",), type=float, default=600.0, help="Seconds to wait until Loaded (default 600)")
_CONNECTION = (ARG_CONN_ID, ARG_OUTPUT, ARG_VERBOSE)
_COMMON = (ARG_COLLECTION, *_CONNECTION)

INDEX_COMMANDS = (
    ActionCommand(
        name="list",
        help="List the indexes of collections",
        func=lazy_load_command(f"{_COMMANDS}.index_list"),
        args=(*_COMMON, ARG_FIELD),
    ),
    ActionCommand(
        name="status",
        help="Show indexes with build progress, and the load state",
        func=lazy_load_command(f"{_COMMANDS}.index_status"),
        args=(*_COMMON, ARG_FIELD),
    ),
    ActionCommand(
        name="drop",
        help="Drop indexes (releases a loaded collection first); asks to confirm unless --yes",
        func=lazy_load_command(f"{_COMMANDS}.index_drop"),
        args=(*_COMMON, ARG_FIELD, ARG_INDEX, ARG_ALL, ARG_MISSING_OK, ARG_DRY_RUN, ARG_YES),
    ),
    ActionCommand(
        name="create",
        help="Create an index, or rebuild a drop's indexes (--from-json), and wait until built; "
        "a rebuild loads what was loaded before the drop",
        func=lazy_load_command(f"{_COMMANDS}.index_create"),
        args=(
            ARG_CREATE_COLLECTION, *_CONNECTION, ARG_CREATE_FIELD, ARG_INDEX_TYPE, ARG_METRIC, ARG_PARAMS, ARG_INDEX,
            ARG_FROM_JSON, ARG_IF_EXISTS, ARG_NO_WAIT, ARG_TIMEOUT, ARG_DRY_RUN, ARG_YES,
        ),  # fmt: skip
    ),
)

COLLECTION_COMMANDS = (
    ActionCommand(
        name="load",
        help="Load a collection and wait until Loaded (a Loaded collection is left as it is)",
        func=lazy_load_command(f"{_COMMANDS}.collection_load"),
        args=(ARG_ONE_COLLECTION, *_CONNECTION, ARG_LOAD_TIMEOUT),
    ),
    ActionCommand(
        name="release",
        help="Release a loaded collection; asks to confirm unless --yes",
        func=lazy_load_command(f"{_COMMANDS}.collection_release"),
        args=(ARG_ONE_COLLECTION, *_CONNECTION, ARG_YES),
    ),
)


def get_milvus_cli_commands() -> list[GroupCommand]:
    """Entry point named in the provider info ``cli`` key."""
    return [
        GroupCommand(
            name="milvus",
            help="Manage Milvus collections through an Airflow connection",
            subcommands=(
                GroupCommand(name="index", help="List, inspect, drop and create indexes", subcommands=INDEX_COMMANDS),
                GroupCommand(name="collection", help="Load and release collections", subcommands=COLLECTION_COMMANDS),
            ),
        )
    ]
