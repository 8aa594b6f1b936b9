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
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.conftest import set_connection
from tests.helpers import (
    VECTOR_INDEX,
    index_summary,
    is_lite,
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

    state = load_state(milvus_uri, collection_name)
    again = cli("drop", "-f", "year", "--yes", "-o", "json")  # --missing-ok is the default
    assert again.returncode == 0, again.stderr
    nothing = json.loads(again.stdout)
    assert nothing["dropped"] == [] and nothing["dry_run"] is False  # a real run, though it changed nothing
    # The server: released by the drop before (a scalar index too, before 2.6), whose record says it was
    # loaded, and that counts. Lite: loaded again by re-creating vec, which it had dropped with year.
    assert state == ("Loaded" if is_lite(milvus_uri) else "NotLoad")
    assert nothing["collections"] == {collection_name: {"was_loaded": True, "released": False}}
    assert f"Nothing to drop. Collection '{collection_name}' has no index on field 'year' (it has: vec on vec (HNSW))." in again.stderr
    assert cli("drop", "-f", "year", "--missing-ok", "--yes").returncode == 0

    strict = cli("drop", "-f", "year", "--no-missing-ok", "--yes", "-o", "json")
    assert strict.returncode == 1 and strict.stdout == ""
    assert strict.stderr.strip() == (
        f"Error: Collection '{collection_name}' has no index on field 'year' (it has: vec on vec (HNSW)). "
        "Pass --missing-ok to treat this as done."
    )
    assert index_summary(milvus_uri, collection_name) == {"vec": ("vec", "HNSW", "L2")}
    assert load_state(milvus_uri, collection_name) == state


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


def test_create_from_json_rebuilds_what_a_drop_printed(cli, run_cli, milvus_conn, milvus_uri, collection_name, tmp_path):
    """The shell runbook: ``index drop --all -o json > FILE``, then ``index create --from-json FILE``."""
    before = index_summary(milvus_uri, collection_name)
    dropped = cli("drop", "--all", "--yes", "-o", "json")
    assert dropped.returncode == 0, dropped.stderr
    result = json.loads(dropped.stdout)
    assert result["dry_run"] is False
    assert result["collections"] == {collection_name: {"was_loaded": True, "released": True}}
    vec_params = None if is_lite(milvus_uri) else VECTOR_INDEX["params"]  # Lite reports none; nothing recorded them
    assert sorted((s["index_name"], s["field_name"], s["index_type"], s["metric_type"], s["params"]) for s in result["dropped"]) == [
        ("vec", "vec", "HNSW", "L2", vec_params),
        ("year", "year", scalar_index(milvus_uri)["index_type"], None, {}),
    ]
    # Lite: said on stderr too (the library's warning is a log line, and logs are off at the shell)
    unknown = f"Note: {collection_name}.vec: build parameters of index 'vec' (HNSW) unknown (params null); "
    drop_note = unknown + "a rebuild from this result uses Milvus's defaults."
    assert (drop_note in dropped.stderr) if is_lite(milvus_uri) else ("Note:" not in dropped.stderr)
    assert index_summary(milvus_uri, collection_name) == {}
    # Milvus Lite reports a collection without indexes as Loaded
    dropped_state = "Loaded" if is_lite(milvus_uri) else "NotLoad"
    assert load_state(milvus_uri, collection_name) == dropped_state
    saved = tmp_path / "dropped.json"
    saved.write_text(dropped.stdout)

    def create(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return run_cli("index", "create", *args, "--conn-id", milvus_conn, stdin=stdin)

    mixed = cli("create", "--from-json", str(saved))  # cli adds -c
    assert mixed.returncode == 1 and mixed.stdout == ""
    assert "--from-json takes the indexes from the file; leave out -c." in mixed.stderr, mixed.stderr

    dry = create("--from-json", "-", "--dry-run", "-o", "json", stdin=dropped.stdout)  # stdin
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert (planned["skipped"], planned["loaded"], planned["released"]) == ([], [], [])
    assert ((unknown + "it is built with Milvus's defaults.") in dry.stderr) == is_lite(milvus_uri)
    assert sorted((s["index_name"], s["field_name"], s["index_type"], s["metric_type"], s["params"]) for s in planned["created"]) == [
        ("vec", "vec", "HNSW", "L2", vec_params or {}),  # unknown on Lite: Milvus's defaults
        ("year", "year", scalar_index(milvus_uri)["index_type"], None, {}),
    ]
    assert index_summary(milvus_uri, collection_name) == {}  # a dry run changes nothing
    assert load_state(milvus_uri, collection_name) == dropped_state

    rebuilt = create("--from-json", str(saved), "--yes", "-o", "json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    done = json.loads(rebuilt.stdout)
    assert done["created"] == planned["created"] and done["skipped"] == [] and done["released"] == []
    assert done["loaded"] == [collection_name]  # loaded before the drop: loaded again
    assert index_summary(milvus_uri, collection_name) == before
    assert load_state(milvus_uri, collection_name) == "Loaded"

    again = create("--from-json", str(saved))  # a re-run finds them built: nothing to do
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already there") == 2 and "created" not in again.stdout
    assert index_summary(milvus_uri, collection_name) == before


def test_collection_load_and_release(cli, run_cli, milvus_conn, milvus_uri, collection_name):
    def collection(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return run_cli("collection", *args, "-c", collection_name, "--conn-id", milvus_conn, stdin=stdin)

    unanswered = collection("release", "-o", "json")  # stdin is empty: no is assumed
    assert unanswered.returncode == 1 and unanswered.stdout == ""
    assert f"Release {collection_name}? It stops serving searches until it is loaded again. [y/N]" in unanswered.stderr
    assert "Aborted: nothing was changed" in unanswered.stderr
    assert load_state(milvus_uri, collection_name) == "Loaded"

    released = collection("release", "--yes", "-o", "json")
    assert released.returncode == 0, released.stderr
    assert json.loads(released.stdout) == {"collection_name": collection_name, "was_loaded": True}
    assert load_state(milvus_uri, collection_name) == "NotLoad"

    idle = collection("release", "-o", "json")  # nothing to release: nothing asked
    assert idle.returncode == 0, idle.stderr
    assert json.loads(idle.stdout) == {"collection_name": collection_name, "was_loaded": False}
    assert "[y/N]" not in idle.stderr

    loaded = collection("load", "-o", "json")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout) == {"collection_name": collection_name, "was_loaded": False, "load_state": "Loaded"}
    assert load_state(milvus_uri, collection_name) == "Loaded"
    again = collection("load")
    assert again.returncode == 0 and "already loaded" in again.stdout, again.stderr

    assert cli("drop", "-f", "vec", "--yes").returncode == 0  # releases it
    unindexed = collection("load", "-o", "json")
    if is_lite(milvus_uri):  # Milvus Lite serves a collection without indexes (brute force) and reports it Loaded
        assert unindexed.returncode == 0, unindexed.stderr
        assert json.loads(unindexed.stdout) == {"collection_name": collection_name, "was_loaded": True, "load_state": "Loaded"}
        return
    assert unindexed.returncode == 1 and unindexed.stdout == ""
    assert unindexed.stderr.startswith(
        f"Error: Collection '{collection_name}' cannot be loaded: vector field(s) vec have no index. Create one first"
    ), unindexed.stderr
    assert load_state(milvus_uri, collection_name) == "NotLoad"


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
        (("create",), "index create needs -c, -f, --index-type (or --from-json FILE with a drop's JSON result)."),
        (("create", "-c", "books", "-f", "vec", "--from-json", "dropped.json"),
         "--from-json takes the indexes from the file; leave out -c, -f."),
        (("create", "--from-json", "no/such/dropped.json"),
         "--from-json no/such/dropped.json: cannot read it (No such file or directory)."),
        (("create", "--from-json", __file__), f"--from-json {__file__}: not JSON ("),
        (("create", "--from-json", sys.executable), f"--from-json {sys.executable}: not JSON (not UTF-8 text)"),
        (("create", "--from-json", "-"), "--from-json -: not JSON"),  # stdin is empty
    ],
    ids=["params", "index-name", "conn-id", "create-nothing", "from-json-and-flags", "from-json-missing",
         "from-json-not-json", "from-json-binary", "from-json-empty-stdin"],
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
    loading = run_cli("collection", "load", "-c", collection_name, "--conn-id", milvus_conn)
    assert loading.returncode == 1 and f"Collection '{collection_name}' does not exist" in loading.stderr
    releasing = run_cli("collection", "release", "-c", collection_name, "--conn-id", milvus_conn, "--yes")
    assert releasing.returncode == 1 and f"Collection '{collection_name}' does not exist" in releasing.stderr


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

    loaded = python_m("collection", "load", "-c", collection_name, "--conn-id", milvus_conn, "-o", "json")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout)["load_state"] == "Loaded" and load_state(milvus_uri, collection_name) == "Loaded"


@pytest.mark.slow  # `python -m airflow_milvus` subprocesses
def test_python_m_lite_stop_stops_the_shared_server_and_keeps_the_data(lite_uri, collection_name, airflow_home):
    from airflow_milvus.hooks.lite_server import server_info
    from tests.helpers import row_count

    make_collection(lite_uri, collection_name, rows=10)  # starts the shared server of lite_uri
    sock = server_info(lite_uri)["socket"]

    stopped = python_m("lite", "stop", lite_uri)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"Stopped the Milvus Lite server of {lite_uri}"
    assert server_info(lite_uri) is None
    assert not os.path.exists(sock)  # the server removed its socket on the way out

    again = python_m("lite", "stop", lite_uri)
    assert again.returncode == 0 and again.stdout.strip() == f"No Milvus Lite server was running for {lite_uri}"
    assert row_count(lite_uri, collection_name) == 10  # the next client starts the server again

    default = python_m("lite", "stop")  # without DB: the embedded default of the Airflow home
    assert default.returncode == 0 and str(airflow_home / "milvus_lite.db") in default.stdout
