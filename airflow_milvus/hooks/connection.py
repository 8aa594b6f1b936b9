"""Connection mapping and diagnostics: pure functions from Airflow connection fields to
``MilvusClient`` arguments, and probes that explain why a server cannot be reached.

See docs/connection.md for the fields. Nothing here imports pymilvus.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_milvus.errors import MilvusInputError
from airflow_milvus.planning.validation import as_bool, as_seconds

DEFAULT_PORT = 19530
DEFAULT_TIMEOUT = 30.0
SERVER_SCHEMES = ("http", "https", "tcp", "unix")
_PATH_EXTRAS = ("server_pem_path", "client_pem_path", "client_key_path", "ca_pem_path")


def default_lite_path() -> str:
    """Where the embedded Milvus Lite database lives when no connection says otherwise."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.path.join(home, "milvus_lite.db")


def build_client_config(
    *,
    host: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    login: str | None = None,
    password: str | None = None,
    extra: dict[str, Any] | None = None,
    timeout_override: float | None = None,
) -> dict[str, Any]:
    """Map connection fields to ``MilvusClient`` arguments (see docs/connection.md)."""
    extra = dict(extra or {})

    def get(name: str) -> Any:
        value = extra.get(name)
        if value in (None, ""):
            value = extra.get(f"extra__milvus__{name}")
        return None if value == "" else value

    config: dict[str, Any] = {"uri": resolve_uri(get("uri"), host, port, schema, get("secure"))}
    if login:
        config["user"] = login
    if password:
        config["password"] = password
    if get("token"):
        config["token"] = str(get("token"))
    if get("db_name"):
        config["db_name"] = str(get("db_name"))
    if get("secure") is not None:
        config["secure"] = as_bool(get("secure"), "Connection extra.secure")
    for key in (*_PATH_EXTRAS, "server_name"):
        if get(key):
            config[key] = str(get(key))
    for key in _PATH_EXTRAS:
        if key in config and not os.path.isfile(config[key]):
            raise MilvusInputError(
                f"Connection extra.{key} points to {config[key]!r}, which is not a file; "
                "fix the path or remove the extra."
            )
    timeout = timeout_override if timeout_override is not None else get("timeout")
    config["timeout"] = as_seconds(timeout, "Connection extra.timeout") if timeout is not None else DEFAULT_TIMEOUT
    return config


def secrets_in(config: dict[str, Any]) -> list[str]:
    """The values of a client config that must never be shown: password, token, URI password."""
    found = [config.get("password"), config.get("token")]
    if not is_lite_uri(config["uri"]):
        found.append(urlsplit(config["uri"]).password)
    return [secret for secret in found if secret]


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def is_lite_uri(uri: str) -> bool:
    return "://" not in uri and not uri.startswith("unix:")


def resolve_uri(uri: Any, host: str | None, port: int | None, schema: str | None, secure: Any) -> str:
    if uri:
        uri = str(uri).strip()
        if "://" in uri:
            scheme = uri.split("://", 1)[0].lower()
            if scheme not in SERVER_SCHEMES:
                raise MilvusInputError(
                    f"Connection URI scheme {scheme!r} is not supported: use http:// or https:// "
                    "for a server or Zilliz Cloud, or a local path ending in .db for Milvus Lite."
                )
            return uri
        if uri.startswith("unix:"):
            return uri
        if not uri.endswith(".db"):
            raise MilvusInputError(
                f"Connection URI {uri!r} is neither an http(s):// URL nor a Milvus Lite path "
                "ending in .db; fix extra.uri."
            )
        return os.path.abspath(os.path.expanduser(uri))
    if not host:
        return default_lite_path()
    if "://" in host:
        return resolve_uri(host, None, None, None, secure)
    scheme = (schema or "").lower() or ("https" if as_bool(secure, "Connection extra.secure") else "http")
    if scheme not in ("http", "https"):
        raise MilvusInputError(
            f"Connection schema {schema!r} is not supported: use http or https (or leave it empty)."
        )
    return urlunsplit((scheme, f"{host}:{port or DEFAULT_PORT}", "", "", ""))


def check_lite_path(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(directory):
        raise MilvusInputError(
            f"Milvus Lite database {path!r}: directory {directory!r} does not exist. Create it, "
            "or point extra.uri at an existing directory."
        )


def server_address(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    return parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else DEFAULT_PORT)


def port_open(uri: str) -> bool:
    """Whether the server's TCP port accepts connections (False for Milvus Lite)."""
    if is_lite_uri(uri):
        return False
    try:
        with socket.create_connection(server_address(uri), timeout=2):
            return True
    except OSError:
        return False


def tls_hint(cfg: dict[str, Any]) -> str:
    """Why a port that accepts TCP refuses the gRPC connection, when TLS explains it.

    Probes the port with a TLS handshake that trusts anything: the answer says whether
    the server speaks TLS and whether it wants a client certificate. '' when unknown.
    """
    import ssl

    if is_lite_uri(cfg["uri"]) or not port_open(cfg["uri"]):
        return ""
    parts = urlsplit(cfg["uri"])
    host, port = server_address(cfg["uri"])
    secure = bool(cfg.get("secure")) or parts.scheme == "https"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if cfg.get("client_pem_path") and cfg.get("client_key_path"):
        context.load_cert_chain(cfg["client_pem_path"], cfg["client_key_path"])
    speaks_tls = wants_client_cert = False
    try:
        with socket.create_connection((host, port), timeout=2) as raw, context.wrap_socket(raw, server_hostname=host) as tls:
            speaks_tls = True
            tls.settimeout(1)
            tls.recv(1)  # TLS 1.3 servers reject a missing client certificate only now
    except ssl.SSLError as exc:
        wants_client_cert = speaks_tls and "CERTIFICATE_REQUIRED" in str(exc).upper()
    except OSError:
        pass
    where = f"Milvus at {host}:{port}"
    if speaks_tls and not secure:
        return f"{where} expects TLS: use an https:// URI (or extra.secure=true) with extra.server_pem_path or ca_pem_path."
    if wants_client_cert:
        return f"{where} requires a client certificate (mutual TLS): set extra.client_pem_path, client_key_path and ca_pem_path."
    if speaks_tls and not (cfg.get("server_pem_path") or cfg.get("ca_pem_path")):
        return (
            f"The TLS handshake with {where} failed: its certificate is not trusted. Set extra.server_pem_path "
            "(one-way TLS) or ca_pem_path (mutual TLS) to the certificate or CA, and server_name to its host name."
        )
    if speaks_tls:
        return (
            f"The TLS handshake with {where} failed: check that extra.server_pem_path / ca_pem_path hold the CA "
            "that signed the server certificate and that server_name matches it."
        )
    if secure and _answers_plain_http(host, port):
        return f"{where} does not speak TLS: use an http:// URI and extra.secure=false, or enable TLS on the server."
    return ""

def _answers_plain_http(host: str, port: int) -> bool:
    """Whether the port answers an HTTP/2 preface in clear text (a plain gRPC server)."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            sock.settimeout(2)
            return sock.recv(9)[3:4] == b"\x04"  # the server's SETTINGS frame
    except OSError:
        return False
