"""``airflow milvus index ...`` against the server and Milvus Lite.

The commands' behaviour (tables and JSON, prompts, exit codes, what goes to stdout and
stderr) is tested through Airflow's own CLI parser in this process, as Airflow tests its own
commands: an ``airflow`` subprocess spends ~5 s of CPU on imports and ORM setup before the
command runs. The entry points themselves run as real processes: ``airflow milvus`` and
``python -m airflow_milvus`` here, in tests/test_cli_plan.py (a prompt answered late) and in
the deployment tests (beside running DAGs).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import set_connection
from tests.helpers import (
    VECTOR_INDEX,
    index_summary,
    load_state,
    make_collection,
    scalar_index,
)

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
# Providers can add `airflow` sub-commands from Airflow 3.2 on; before, `python -m airflow_milvus` serves.
PROVIDER_CLI = tuple(int(p) for p in version("apache-airflow-core").split(".")[:2]) >= (3, 2)


def airflow(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    if args[0] == "milvus" and not PROVIDER_CLI:
        pytest.skip("`airflow milvus` needs Airflow 3.2 (provider CLI commands); python -m airflow_milvus is tested instead")
    return subprocess.run(
        [AIRFLOW, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),  # AIRFLOW_HOME and the AIRFLOW_CONN_* of the test
        timeout=300,
    )


def command_parser():
    """Airflow's CLI parser (with the provider's commands from 3.2 on), else ``python -m airflow_milvus``'s."""
    if PROVIDER_CLI:
        from airflow.cli.cli_parser import get_parser

        return get_parser(), ["milvus"]
    from airflow_milvus.__main__ import build_parser

    return build_parser(), []


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """``airflow milvus ARGS`` in this process: parsed by the real parser, run by the command
    function; a ``SystemExit`` ends it as the interpreter would (a message goes to stderr, exit 1)."""

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        parser, prefix = command_parser()
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))  # no terminal: a prompt reads this
        capsys.readouterr()
        try:
            parsed = parser.parse_args([*prefix, *args])
            parsed.func(parsed)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
            if exit_.code is not None and not isinstance(exit_.code, int):
                print(exit_.code, file=sys.stderr)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["airflow", "milvus", *args], code, out, err)

    return run


@pytest.fixture
def cli(run_cli, milvus_conn, milvus_uri, collection_name):
    make_collection(milvus_uri, collection_name, rows=40, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)), load=True)

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return run_cli("index", *args, "-c", collection_name, "--conn-id", milvus_conn, stdin=stdin)

    return run


def test_list_and_status_print_tables_and_json(cli, milvus_uri, collection_name):
    table = cli("list")
    assert table.returncode == 0, table.stderr
    assert "HNSW" in table.stdout and scalar_index(milvus_uri)["index_type"] in table.stdout

    listed = cli("list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    specs = json.loads(listed.stdout)  # stdout holds only the JSON
    assert {(s["collection_name"], s["field_name"], s["index_type"]) for s in specs} == {
        (collection_name, "vec", "HNSW"),
        (collection_name, "year", scalar_index(milvus_uri)["index_type"]),
    }

    status = cli("status", "--output", "json")
    assert status.returncode == 0, status.stderr
    (report,) = json.loads(status.stdout)
    # The CLI is a process of its own: on Lite it sees the load through the .db's shared server.
    assert report["load_state"] == "Loaded" and report["row_count"] == 40
    assert {i["field_name"]: i["build"]["state"] for i in report["indexes"]} == {"vec": "Finished", "year": "Finished"}


def test_drop_asks_first_and_exits_non_zero_when_refused(cli, milvus_uri, collection_name):
    before = index_summary(milvus_uri, collection_name)

    ambiguous = cli("drop")
    assert ambiguous.returncode == 1
    assert "has 2 indexes" in ambiguous.stderr
    assert "Pass -f FIELD or -i INDEX to drop one, or pass --all to drop them all." in ambiguous.stderr
    assert "drop_all" not in ambiguous.stderr  # the operator's argument is not named at a shell

    no_answer = cli("drop", "-f", "year")  # stdin is empty: no is assumed
    assert no_answer.returncode == 1
    assert "Drop 1 index(es)?" in no_answer.stderr and "Aborted: nothing was changed" in no_answer.stderr

    dry = cli("drop", "-f", "year", "--dry-run", "-o", "json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["dry_run"] is True
    assert index_summary(milvus_uri, collection_name) == before
    assert load_state(milvus_uri, collection_name) == "Loaded"  # a dry run releases nothing

    confirmed = cli("drop", "-f", "year", stdin="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "dropped" in confirmed.stdout and "year" in confirmed.stdout
    assert [v[0] for v in index_summary(milvus_uri, collection_name).values()] == ["vec"]

    again = cli("drop", "-f", "year", "--yes", "-o", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["dropped"] == [] and "Nothing to drop." in again.stderr


def test_create_is_idempotent_and_replaces_only_when_told(cli, milvus_uri, collection_name):
    dropped = cli("drop", "-f", "vec", "--yes")
    assert dropped.returncode == 0, dropped.stderr

    created = cli("create", "-f", "vec", "--index-type", "IVF_FLAT", "--metric", "L2", "--params", '{"nlist": 16}', "-o", "json")
    assert created.returncode == 0, created.stderr
    assert [s["index_type"] for s in json.loads(created.stdout)["created"]] == ["IVF_FLAT"]

    same = cli("create", "-f", "vec", "--index-type", "IVF_FLAT", "--metric", "L2", "--params", '{"nlist": 16}')
    assert same.returncode == 0, same.stderr
    assert "already there" in same.stdout

    different = cli("create", "-f", "vec", "--index-type", "HNSW", "--metric", "L2", "--params", '{"M": 8, "efConstruction": 64}')
    assert different.returncode == 1
    assert "already has a different index" in different.stderr
    assert "Pass --if-exists replace to rebuild it, or pass --if-exists skip to keep it." in different.stderr
    assert {v[0]: v[1] for v in index_summary(milvus_uri, collection_name).values()}["vec"] == "IVF_FLAT"

    hnsw = ("create", "-f", "vec", "--index-type", "HNSW", "--metric", "L2", "--params", '{"M": 8, "efConstruction": 64}',
            "--if-exists", "replace")  # fmt: skip
    refused = cli(*hnsw)  # stdin is empty: no is assumed, after the plan was shown
    assert refused.returncode == 1 and "Aborted: nothing was changed" in refused.stderr
    assert f"{collection_name}.vec: vec on vec (IVF_FLAT) -> HNSW L2 {{'M': 8, 'efConstruction': 64}}" in refused.stderr
    assert "Replace 1 index(es)?" in refused.stderr
    assert {v[0]: v[1] for v in index_summary(milvus_uri, collection_name).values()}["vec"] == "IVF_FLAT"

    replaced = cli(*hnsw, stdin="y\n")
    assert replaced.returncode == 0, replaced.stderr
    assert {v[0]: v[1] for v in index_summary(milvus_uri, collection_name).values()}["vec"] == "HNSW"


def test_a_missing_field_fails_with_the_reason_on_stderr(cli, milvus_uri, collection_name):
    before = index_summary(milvus_uri, collection_name)
    out = cli("create", "-f", "nope", "--index-type", "HNSW", "--metric", "L2")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().startswith("Error: ") and "Field 'nope' does not exist" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert index_summary(milvus_uri, collection_name) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "-c", "books", "-f", "vec", "--index-type", "HNSW", "--metric", "L2", "--params", "{M: 16}"),
         "--params '{M: 16}' is not valid JSON"),
        (("drop", "-c", "books", "-i", "bad-name", "--yes"), "index name 'bad-name' is not a valid Milvus name"),
        (("status", "-c", "books", "--conn-id", "no_such_conn"), "no_such_conn"),
    ],
    ids=["params", "index-name", "conn-id"],
)
def test_bad_arguments_fail_before_anything_is_contacted(args, message, run_cli, monkeypatch):
    """Refused before any connection: the connection points at a port where nothing listens,
    so an attempt to reach Milvus would end in a connection error, not in this message."""
    from tests.milvus_server import free_port

    if "--conn-id" not in args:
        args = (*args, "--conn-id", set_connection(monkeypatch, f"http://localhost:{free_port()}", timeout=3))
    out = run_cli("index", *args)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().startswith("Error: ") and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_a_missing_collection_fails(run_cli, milvus_conn, collection_name):
    out = run_cli("index", "list", "-c", collection_name, "--conn-id", milvus_conn)
    assert out.returncode == 1 and f"Collection '{collection_name}' does not exist" in out.stderr
    assert "missing_collection_ok" not in out.stderr  # an operator argument: no flag does that at a shell


def test_default_connection_falls_back_to_embedded_lite(run_cli, airflow_home, collection_name, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MILVUS_DEFAULT", raising=False)
    make_collection(str(airflow_home / "milvus_lite.db"), collection_name, rows=10)
    out = run_cli("index", "list", "-c", collection_name, "-o", "json")
    assert out.returncode == 0, out.stderr
    assert [s["field_name"] for s in json.loads(out.stdout)] == ["vec"]


def python_m(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m airflow_milvus ...``: the same commands where the provider CLI does not exist (Airflow 3.1)."""
    return subprocess.run(
        [sys.executable, "-m", "airflow_milvus", *args],
        input="", capture_output=True, text=True, env=env or os.environ.copy(), timeout=300,
    )  # fmt: skip


@pytest.mark.slow  # `python -m airflow_milvus` and `airflow` subprocesses
def test_python_m_offers_the_provider_commands(lite_uri, collection_name, monkeypatch):
    """The entry point is under test, not the flavour: on Milvus Lite only (every command's
    server path is the other tests' in this module)."""
    milvus_uri, milvus_conn = lite_uri, set_connection(monkeypatch, lite_uri)
    make_collection(milvus_uri, collection_name, rows=20, indexes=(VECTOR_INDEX, scalar_index(milvus_uri)))
    listed = python_m("index", "list", "-c", collection_name, "--conn-id", milvus_conn, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    specs = json.loads(listed.stdout)  # stdout holds only the JSON
    assert {(s["field_name"], s["index_type"]) for s in specs} == {("vec", "HNSW"), ("year", scalar_index(milvus_uri)["index_type"])}
    if PROVIDER_CLI:  # registered through the provider, it answers the same
        assert specs == json.loads(airflow("milvus", "index", "list", "-c", collection_name, "--conn-id", milvus_conn, "-o", "json").stdout)

    refused = python_m("index", "drop", "-c", collection_name, "--conn-id", milvus_conn)
    assert refused.returncode == 1 and "-f FIELD or -i INDEX" in refused.stderr
    assert len(index_summary(milvus_uri, collection_name)) == 2


@pytest.mark.slow  # `python -m airflow_milvus` subprocesses
def test_python_m_lite_stop_stops_the_shared_server_and_keeps_the_data(lite_uri, collection_name, airflow_home):
    from airflow_milvus.hooks.lite_server import server_info
    from tests.helpers import row_count

    make_collection(lite_uri, collection_name, rows=10)  # starts the shared server of lite_uri
    port = server_info(lite_uri)["port"]

    stopped = python_m("lite", "stop", lite_uri)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"Stopped the Milvus Lite server of {lite_uri}"
    assert server_info(lite_uri) is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    again = python_m("lite", "stop", lite_uri)
    assert again.returncode == 0 and again.stdout.strip() == f"No Milvus Lite server was running for {lite_uri}"
    assert row_count(lite_uri, collection_name) == 10  # the next client starts the server again

    default = python_m("lite", "stop")  # without DB: the embedded default of the Airflow home
    assert default.returncode == 0 and str(airflow_home / "milvus_lite.db") in default.stdout
