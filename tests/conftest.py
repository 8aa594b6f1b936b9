"""Test harness: a throwaway Airflow home, a real Milvus server, and Milvus Lite.

Airflow reads its configuration at import time, so the environment is set here, before
anything imports airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="airflow-milvus-tests-"))
DAGS_FOLDER = _HOME / "dags"
DAGS_FOLDER.mkdir()
os.environ.update(
    AIRFLOW_HOME=str(_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{_HOME}/airflow.db",
    AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    # Read once, when airflow.models.dag is imported (DagModel.is_paused's column default): a
    # DAG that dag.test() registers must be unpaused for an asset event to queue a run of it.
    AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
)

import pytest  # noqa: E402

from tests.airflow_home import migrated_database  # noqa: E402
from tests.leftovers import LEFTOVER_MARKER, leftover_processes  # noqa: E402
from tests.milvus_server import SharedServers, private_server  # noqa: E402
from tests.scheduling import spread_slow_tests  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"

shutil.copyfile(migrated_database(), _HOME / "airflow.db")  # a migration per xdist worker cost ~15 s each

# The session's shared Milvus servers: the controller imports this module first and sets the
# variable; the xdist workers it then spawns inherit it.
if "AIRFLOW_MILVUS_TEST_SERVERS" not in os.environ:
    os.environ["AIRFLOW_MILVUS_TEST_SERVERS"] = tempfile.mkdtemp(prefix="airflow-milvus-servers-")
SERVERS = SharedServers(os.environ["AIRFLOW_MILVUS_TEST_SERVERS"])
# Inherited by every process the session starts (xdist workers, servers, Airflow components,
# task processes, Lite servers): found again at the end to prove none is left running.
os.environ.setdefault(LEFTOVER_MARKER, uuid.uuid4().hex)


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session, exitstatus):
    result = yield  # after xdist has shut its workers down
    if not hasattr(session.config, "workerinput"):  # the controller, or a run without xdist
        SERVERS.stop_all()
        left = leftover_processes(os.environ[LEFTOVER_MARKER])
        if left:
            session.config.get_terminal_writer().line(
                "\nFAILED: processes started by this test session are still running (killed now):\n"
                + "\n".join(f"  {pid}: {cmd}" for pid, cmd in left.items()),
                red=True,
                bold=True,
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    return result


_RERUNS: list[str] = []


def pytest_runtest_logreport(report):
    """Keep why a test failed before its rerun: the summary names a rerun but not its failure."""
    if report.outcome == "rerun":
        _RERUNS.append(f"{report.nodeid} ({report.when}):\n{report.longreprtext[-4000:]}")


def pytest_terminal_summary(terminalreporter):
    for text in _RERUNS:
        terminalreporter.write_sep("-", "failure before a rerun")
        terminalreporter.write_line(text)


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):
        shutil.rmtree(SERVERS.root, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def milvus_server():
    """A real Milvus 2.3.5 standalone, shared by the session's workers. Tests that stop or
    kill a server start their own (``tests.milvus_server.MilvusServer``)."""
    return SERVERS.get("plain")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """A second real server, with authorization enabled (root / Milvus), for one module's tests:
    the two modules that need it use it for a minute, and an idle server costs CPU."""
    with private_server(tmp_path_factory.mktemp("milvus-auth"), authorization_enabled=True) as server:
        yield server


@pytest.fixture(scope="session")
def server_deployment(milvus_server, tmp_path_factory):
    """A real Airflow deployment on the shared server, for every test that needs Airflow's
    services and no setting of its own (tests/server_deployment.py): operators defer, tasks get
    one retry."""
    from tests.server_deployment import new_server_deployment

    with new_server_deployment(milvus_server.uri, tmp_path_factory.mktemp("airflow-server")) as airflow:
        yield airflow


def pytest_collection_modifyitems(items):
    """Mark every test that needs the real server, however it asks for it, so that the fast
    tier (``-m "not server and not slow and not browser"``) starts none. Under xdist, deal the
    slow tests out evenly (tests/scheduling.py)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if {"milvus_server", "auth_server", "s3_milvus_server"} & set(item.fixturenames) or params.get("flavour") == "server":
            item.add_marker(pytest.mark.server)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))  # set in xdist's workers
    if workers > 1:
        items[:] = spread_slow_tests(items, workers)


@pytest.fixture(scope="session", autouse=True)
def _stop_lite_servers(tmp_path_factory):
    """Stop the shared Lite servers that tests started on other paths (the default .db, CLI runs)."""
    yield
    from airflow_milvus.hooks.lite_server import stop_server

    for root in (_HOME, tmp_path_factory.getbasetemp()):
        for state in Path(root).rglob("*.db.server.json"):
            stop_server(str(state)[: -len(".server.json")])


@pytest.fixture
def lite_uri(tmp_path) -> str:
    """A fresh Milvus Lite database for each test; its shared server is stopped afterwards."""
    from airflow_milvus.hooks.lite_server import stop_server

    path = str(tmp_path / "milvus.db")
    yield path
    stop_server(path)


@pytest.fixture(params=["server", "lite"])
def flavour(request) -> str:
    return request.param


@pytest.fixture
def milvus_uri(flavour, request) -> str:
    if flavour == "server":
        return request.getfixturevalue("milvus_server").uri
    return request.getfixturevalue("lite_uri")


@pytest.fixture
def collection_name(request) -> str:
    """A fresh name. Afterwards the shared server drops what the test made under it (its
    aliases first): every collection it keeps costs the server CPU while it idles."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    if "milvus_server" in request.fixturenames:
        drop_collections(request.getfixturevalue("milvus_server").uri, prefix=name)


def drop_collections(uri: str, *, prefix: str) -> None:
    try:
        with milvus_client(uri, timeout=10) as client:
            for name in client.list_collections():
                if name.startswith(prefix):
                    for alias in client.list_aliases(name).get("aliases", []):
                        client.drop_alias(alias)
                    client.drop_collection(name)
    except Exception as error:  # a server a test left broken is that test's failure, not this one's
        print(f"could not drop {prefix}* on {uri}: {error!r}")


def conn_env_value(uri: str | None = None, *, login: str | None = None, password: str | None = None, **extra) -> str:
    """The ``AIRFLOW_CONN_*`` value of a Milvus connection: ``uri`` and ``extra`` (token,
    timeout, TLS paths...) go in its extra; ``login``/``password`` in the connection itself."""
    body: dict = {"conn_type": "milvus", "extra": {"uri": uri, **extra} if uri is not None else extra}
    if login is not None:
        body["login"] = login
    if password is not None:
        body["password"] = password
    return json.dumps(body)


def set_connection(monkeypatch, uri: str | None = None, **kwargs) -> str:
    """A new Airflow connection (an env var, undone with ``monkeypatch``); returns its conn id.
    Takes what ``conn_env_value`` takes."""
    conn_id = f"milvus_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_env_value(uri, **kwargs))
    return conn_id


@pytest.fixture
def milvus_conn(milvus_uri, monkeypatch) -> str:
    """An Airflow connection (env var) to the current flavour; returns its conn id."""
    return set_connection(monkeypatch, milvus_uri)


@contextmanager
def milvus_client(uri: str, **kwargs):
    """A raw pymilvus client for arranging and checking state.

    A Milvus Lite path goes through its shared server, as the hook does: opening the .db in
    this process would lock it for the rest of the session."""
    from pymilvus import MilvusClient

    if "://" not in uri:
        from airflow_milvus.hooks.lite_server import ensure_server

        uri = ensure_server(uri)
    # Dedicated: a pooled channel idles between tests, and milvus-lite's server answers pymilvus's
    # 10 s keepalive pings on an idle channel with GOAWAY "Too many pings".
    client = MilvusClient(uri, dedicated=True, **kwargs)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def variables_outside_a_task(monkeypatch):
    """For tests that call ``operator.execute()`` directly, outside any task: Airflow Variables
    are read and written in the metadata database, as a task's execution API would (the Task
    SDK's Variable needs a running task). DAG runs in other tests use the SDK path itself."""
    from airflow_milvus.lifecycle import snapshots

    monkeypatch.setattr(snapshots, "TaskVariables", snapshots.MetadataVariables)


S3_BUCKET = "milvus-bucket"  # the S3 server's bucket that the Milvus server of s3_milvus_server keeps its data in


@pytest.fixture(scope="module")
def s3_store(tmp_path_factory):
    """An S3-compatible store on loopback (moto's server mode, tests/s3_server.py) for one module."""
    # The test extra installs both; scripts/matrix.sh's virtualenvs pin only the bounds it proves.
    pytest.importorskip("moto", reason="moto (the test extra's S3 server) is not installed")
    pytest.importorskip("boto3", reason="boto3 (the test extra's S3 client) is not installed")
    from tests.s3_server import s3_server

    with s3_server(tmp_path_factory.mktemp("s3")) as store:
        yield store


@pytest.fixture(scope="module")
def s3_milvus_server(s3_store, tmp_path_factory):
    """A Milvus 2.3.5 standalone whose storage (segments, and the files it imports) is the
    bucket ``S3_BUCKET`` of ``s3_store``: common.storageType=minio, as the Helm chart runs it."""
    s3_store.create_bucket(S3_BUCKET)
    data_dir = tmp_path_factory.mktemp("milvus-s3")
    with private_server(data_dir, extra_config=s3_store.milvus_config(S3_BUCKET)) as server:
        yield server
