"""``python -m airflow_milvus``: the provider's commands on every supported Airflow.

``airflow milvus index ...`` needs provider CLI commands, which Airflow has only from 3.2 on.
This entry point builds the same commands from the same definitions (``cli/definition.py``),
so ``python -m airflow_milvus index list -c books`` works on 3.1 too. It adds
``lite stop [DB]``, which stops the shared Milvus Lite server of a ``.db``.
"""

from __future__ import annotations

import argparse
import sys


def _lite_stop(args: argparse.Namespace) -> None:
    from airflow_milvus.hooks.connection import default_lite_path
    from airflow_milvus.hooks.lite_server import stop_server

    db = args.db or default_lite_path()
    if stop_server(db):
        print(f"Stopped the Milvus Lite server of {db}")
    else:
        print(f"No Milvus Lite server was running for {db}")


def _add(subparsers, command) -> None:
    """Add an Airflow ``GroupCommand`` or ``ActionCommand`` as argparse sub-commands."""
    from airflow.cli.cli_config import GroupCommand

    parser = subparsers.add_parser(command.name, help=command.help, description=command.description or command.help)
    if isinstance(command, GroupCommand):
        children = parser.add_subparsers(metavar="COMMAND", required=True)
        for child in command.subcommands:
            _add(children, child)
        return
    for arg in command.args:
        arg.add_to_parser(parser)
    parser.set_defaults(func=command.func)


def build_parser() -> argparse.ArgumentParser:
    from airflow_milvus.cli.definition import get_milvus_cli_commands

    (milvus,) = get_milvus_cli_commands()
    parser = argparse.ArgumentParser(prog="python -m airflow_milvus", description=milvus.help)
    groups = parser.add_subparsers(metavar="GROUP", required=True)
    for group in milvus.subcommands:
        _add(groups, group)
    lite = groups.add_parser("lite", help="Manage the shared Milvus Lite server of a .db file")
    lite_commands = lite.add_subparsers(metavar="COMMAND", required=True)
    stop = lite_commands.add_parser(
        "stop",
        help="Stop the shared Milvus Lite server of DB (it starts again on next use)",
        description="Stop the shared Milvus Lite server of DB; the next hook call starts it again.",
    )
    stop.add_argument("db", nargs="?", help="Path of the .db file (default: $AIRFLOW_HOME/milvus_lite.db)")
    stop.set_defaults(func=_lite_stop)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
