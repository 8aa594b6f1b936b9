"""Command definitions only: Airflow imports this on every CLI start, so it stays light."""

from __future__ import annotations

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
ARG_FIELD_REQUIRED = Arg(("-f", "--field"), required=True, help="Field to index")
ARG_INDEX = Arg(("-i", "--index"), help="Index name")
ARG_DRY_RUN = Arg(("--dry-run",), action="store_true", help="Show what would change; change nothing")
ARG_ALL = Arg(("--all",), action="store_true", help="Drop every index when the collection has several")
ARG_INDEX_TYPE = Arg(("--index-type",), required=True, help="Index type, e.g. HNSW, IVF_FLAT, AUTOINDEX, INVERTED")
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

ARG_ONE_COLLECTION = Arg(("-c", "--collection"), required=True, help="Collection name (no glob: an index is created on one collection)")
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
        args=(*_COMMON, ARG_FIELD, ARG_INDEX, ARG_ALL, ARG_DRY_RUN, ARG_YES),
    ),
    ActionCommand(
        name="create",
        help="Create an index and wait until it is built",
        func=lazy_load_command(f"{_COMMANDS}.index_create"),
        args=(
            ARG_ONE_COLLECTION, *_CONNECTION, ARG_FIELD_REQUIRED, ARG_INDEX_TYPE, ARG_METRIC, ARG_PARAMS, ARG_INDEX,
            ARG_IF_EXISTS, ARG_NO_WAIT, ARG_TIMEOUT, ARG_DRY_RUN, ARG_YES,
        ),  # fmt: skip
    ),
)


def get_milvus_cli_commands() -> list[GroupCommand]:
    """Entry point named in the provider info ``cli`` key."""
    return [
        GroupCommand(
            name="milvus",
            help="Manage Milvus collections through an Airflow connection",
            subcommands=(GroupCommand(name="index", help="List, inspect, drop and create indexes", subcommands=INDEX_COMMANDS),),
        )
    ]
