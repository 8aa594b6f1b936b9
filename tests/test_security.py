"""Security on real servers: authentication, one-way and mutual TLS, and secrets kept out of
the logs of real task runs (dag.test with debug logging)."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest

from airflow_milvus.errors import MilvusAuthenticationError, MilvusProviderError
from airflow_milvus.hooks.milvus import MilvusHook
from tests.conftest import SERVERS, conn_env_value, milvus_client, set_connection
from tests.fault_proxy import FaultProxy
from tests.helpers import make_collection
from tests.milvus_server import file_lock, private_server
from tests.reliability import index_definitions

pytestmark = pytest.mark.server
ROOT_PASSWORD = "Milvus"  # Milvus's documented default
ONE_ATTEMPT = {"retry_attempts": 1}  # the refusal and its hint are tested here; retrying is test_hook's


@pytest.fixture(scope="module")
def auth_user(auth_server):
    """A created user with the admin role; (name, password)."""
    user, password = f"etl_bot_{uuid.uuid4().hex[:8]}", f"Pw-{uuid.uuid4().hex}"
    with milvus_client(auth_server.uri, user="root", password=ROOT_PASSWORD) as c:
        c.create_user(user, password)
        c.grant_role(user, "admin")
    return user, password


# ------------------------------------------------------------------ authentication
def test_root_with_default_password_works(auth_server, monkeypatch):
    conn = set_connection(monkeypatch, auth_server.uri, login="root", password=ROOT_PASSWORD)
    ok, message = MilvusHook(conn).test_connection()
    assert ok, message
    with MilvusHook(conn) as hook:
        assert isinstance(hook.list_collections(), list)


def test_created_user_with_token_works(auth_server, auth_user, monkeypatch, collection_name):
    user, password = auth_user
    conn = set_connection(monkeypatch, auth_server.uri, token=f"{user}:{password}")
    with milvus_client(auth_server.uri, token=f"root:{ROOT_PASSWORD}") as c:
        c.create_collection(collection_name, dimension=8)
    with MilvusHook(conn) as hook:
        assert collection_name in hook.list_collections()


def test_wrong_password_is_not_retried_and_says_authentication_failed(auth_server, monkeypatch):
    """On a call: one attempt, an authentication error, the password not in it (test_hook
    covers test_connection with a wrong password)."""
    conn = set_connection(monkeypatch, auth_server.uri, login="root", password="not-the-password")
    hook = MilvusHook(conn, retry_attempts=5, retry_max_wait=30)
    attempts: list[int] = []
    original = hook.get_conn
    monkeypatch.setattr(hook, "get_conn", lambda: attempts.append(1) or original())
    with pytest.raises(MilvusAuthenticationError) as err:
        hook.list_collections()
    assert len(attempts) == 1, "a refused password was retried"
    message = str(err.value)
    assert "authentication failed" in message and "server unavailable" not in message
    assert "not-the-password" not in message


# ------------------------------------------------------------------ TLS
def _certificates(directory):
    """A CA, a server certificate for localhost and a client certificate, all signed by the CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write(name, key_, cert):
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            key_.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
        )
        return str(directory / f"{name}.pem"), str(directory / f"{name}.key")

    def issue(subject, subject_key, issuer, issuer_key, *, ca=False, san=None, usage=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(subject_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key, client_key = key(), key(), key()
    ca_cert = issue("test-ca", ca_key, "test-ca", ca_key, ca=True)
    ca_pem, _ = write("ca", ca_key, ca_cert)
    server_pem, server_key_path = write(
        "server", server_key, issue("localhost", server_key, "test-ca", ca_key, san=["localhost"], usage=ExtendedKeyUsageOID.SERVER_AUTH)
    )
    client_pem, client_key_path = write(
        "client", client_key, issue("airflow", client_key, "test-ca", ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    )
    return {"ca": ca_pem, "server_pem": server_pem, "server_key": server_key_path, "client_pem": client_pem, "client_key": client_key_path}


@pytest.fixture(scope="session")
def certs():
    """Made once per session (every worker's TLS servers use the same)."""
    paths = SERVERS.root / "certs.json"
    with file_lock(SERVERS.root / "certs.lock"):
        if not paths.exists():
            (SERVERS.root / "certs").mkdir()
            paths.write_text(json.dumps(_certificates(SERVERS.root / "certs")))
    return json.loads(paths.read_text())


@pytest.fixture(scope="module", params=[1, 2], ids=["tls", "mtls"])
def tls_server(request, certs, tmp_path_factory):
    """One-way and mutual TLS servers, each only while this module's tests use it."""
    with private_server(tmp_path_factory.mktemp(f"milvus-tls{request.param}"), tls_mode=request.param,
                        server_pem_path=certs["server_pem"], server_key_path=certs["server_key"],
                        ca_pem_path=certs["ca"]) as server:
        yield server


def tls_extras(server, certs, *, ca=True, client_cert=True) -> dict:
    extra = {"uri": server.uri, "secure": True, "server_name": "localhost", "timeout": 3}
    mutual = int(server.flags["tls_mode"]) == 2
    if ca:
        extra["ca_pem_path" if mutual else "server_pem_path"] = certs["ca"] if mutual else certs["server_pem"]
    if mutual and client_cert:
        extra.update(client_pem_path=certs["client_pem"], client_key_path=certs["client_key"])
    return extra


def test_tls_connects_through_connection_extras(tls_server, certs, monkeypatch, collection_name):
    conn = set_connection(monkeypatch, **tls_extras(tls_server, certs))
    ok, message = MilvusHook(conn).test_connection()
    assert ok, message
    with MilvusHook(conn) as hook:
        hook.call("create_collection", lambda c: c.create_collection(collection_name, dimension=8))
        assert collection_name in hook.list_collections()
        assert [s["field_name"] for s in hook.list_index_specs(collection_name)] == ["vector"]


@pytest.mark.parametrize("missing", ["ca", "client_cert", "plain_http"])
def test_tls_refuses_a_client_without_the_right_credentials(missing, tls_server, certs, monkeypatch):
    mutual = int(tls_server.flags["tls_mode"]) == 2
    if missing == "client_cert" and not mutual:
        pytest.skip("one-way TLS asks no client certificate")
    if missing == "plain_http":
        extra = {"uri": tls_server.uri.replace("https://", "http://"), "timeout": 3}
    else:
        extra = tls_extras(tls_server, certs, ca=missing != "ca", client_cert=missing != "client_cert")
    conn = set_connection(monkeypatch, **extra)
    with pytest.raises(MilvusProviderError) as err:
        MilvusHook(conn, **ONE_ATTEMPT).list_collections()
    message = str(err.value)
    assert "TLS" in message, message
    ok, text = MilvusHook(conn, **ONE_ATTEMPT).test_connection()
    assert not ok and "TLS" in text, text


# ------------------------------------------------------------------ secrets stay out of logs
SECRETS_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_milvus.operators.index import MilvusCreateIndexOperator, MilvusDropIndexOperator
RETRY = dict(retry_attempts=8, retry_max_wait=30)
with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    previous = None
    for kind in ("sec_password", "sec_token", "sec_uri"):
        drop = MilvusDropIndexOperator(task_id=f"drop_{kind}", milvus_conn_id=kind, collection_name=COLLECTION, drop_all=True, **RETRY)
        create = MilvusCreateIndexOperator(task_id=f"create_{kind}", milvus_conn_id=kind, index_specs=drop.output, load=True, poll_interval=0.5, **RETRY)
        if previous is not None:
            previous >> drop
        drop >> create
        previous = create
    previous >> MilvusDropIndexOperator(task_id="drop_wrong_password", milvus_conn_id="sec_wrong", collection_name=COLLECTION, **RETRY)
"""


def test_secrets_never_appear_in_task_logs(auth_server, auth_user, airflow_home, collection_name):
    """A real `airflow dags test` at DEBUG level: password, token and credentials in a URI are
    used (three connections, with link blips forcing retries) and refused (a wrong password);
    none of them appears in the output or in the task log files."""
    import os
    import subprocess
    import threading

    from tests.dag_runner import dags_test_command, write_dag

    user, password = auth_user
    admin_uri = f"http://root:{ROOT_PASSWORD}@localhost:{auth_server.port}"
    make_collection(admin_uri, collection_name, load=True)
    definitions = index_definitions(admin_uri, collection_name)
    wrong = f"Wrong-{uuid.uuid4().hex}"
    with FaultProxy(auth_server.port) as proxy:
        embedded = f"http://{user}:{password}@localhost:{proxy.port}"
        conns = {
            "sec_password": {"uri": proxy.uri, "login": user, "password": password, "timeout": 3},
            "sec_token": {"uri": proxy.uri, "token": f"{user}:{password}", "timeout": 3},
            "sec_uri": {"uri": embedded, "timeout": 3},
            "sec_wrong": {"uri": proxy.uri, "login": user, "password": wrong, "timeout": 3},
        }
        env = dict(os.environ, AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG")
        env.update({f"AIRFLOW_CONN_{k.upper()}": conn_env_value(**v) for k, v in conns.items()})
        dag_id = write_dag(f"COLLECTION = {collection_name!r}\n" + SECRETS_DAG)
        done = threading.Event()

        def blips():  # the first connection meets a blocked link, then one blip every 8 s
            while proxy.connections == 0 and not done.wait(0.05):
                pass
            while not done.is_set():
                proxy.block_for(2)
                done.wait(8)

        threading.Thread(target=blips, daemon=True).start()
        try:
            run = subprocess.run(
                dags_test_command(dag_id),
                env=env, capture_output=True, text=True, timeout=480,
            )
        finally:
            done.set()
    text = run.stdout + run.stderr
    logs = airflow_home / "logs"
    if logs.exists():
        text += "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())
    # Airflow's in-process test supervisor (dag.test / `airflow dags test` only) logs each
    # MaskSecret request at DEBUG with its value, the one request whose job is to hide it.
    # A separate supervisor, as in production, logs "(body omitted)". Not provider output.
    echo = [line for line in text.splitlines() if "Sending request" in line and "MaskSecret(" in line]
    text = "\n".join(line for line in text.splitlines() if line not in echo)
    (airflow_home / f"secrets-run-{collection_name}.log").write_text(text)
    # The run really used and refused the credentials, and really retried.
    for kind in ("sec_password", "sec_token", "sec_uri"):
        assert f"create_{kind}" in text
    assert "retrying in" in text, text[-3000:]
    assert "authentication failed" in text, text[-3000:]
    assert index_definitions(admin_uri, collection_name) == definitions
    for secret in (password, f"{user}:{password}", embedded, wrong):
        assert secret not in text, f"a secret ({secret[:5]}…) leaked into the logs"
