"""Start and stop a real Milvus standalone server (the ``milvus`` PyPI package) for tests.

Every instance gets free ports, its embedded etcd included (through ETCD_CONFIG_PATH), so
several servers (plain, auth, TLS) can run side by side and beside a developer's own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PORT_FLAGS = (
    "etcd-port",
    "proxy-port",
    "proxy-internal-port",
    "root-coord-port",
    "query-coord-port",
    "query-node-port",
    "index-coord-port",
    "index-node-port",
    "data-coord-port",
    "data-node-port",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class MilvusServer:
    """One milvus-server process group with its own data dir and ports."""

    def __init__(self, data_dir: Path, **flags: str | int | bool) -> None:
        self.data_dir = Path(data_dir)
        self.flags = flags
        self.ports = {name: free_port() for name in PORT_FLAGS}
        self.etcd_peer_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def port(self) -> int:
        return self.ports["proxy-port"]

    @property
    def uri(self) -> str:
        scheme = "https" if int(self.flags.get("tls_mode", 0) or 0) else "http"
        return f"{scheme}://localhost:{self.port}"

    def _command(self) -> list[str]:
        exe = shutil.which("milvus-server", path=os.path.dirname(sys.executable)) or "milvus-server"
        cmd = [exe, "--data", str(self.data_dir)]
        for name, port in self.ports.items():
            cmd += [f"--{name}", str(port)]
        for key, value in self.flags.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        return cmd

    def start(self, timeout: float = 180) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        etcd = self.data_dir / "embedEtcd.yaml"
        client = f"http://127.0.0.1:{self.ports['etcd-port']}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        etcd.write_text(
            f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
            f"initial-cluster: default={peer}\n"
        )
        env = dict(os.environ, ETCD_CONFIG_PATH=str(etcd))
        self.log_path = self.data_dir / "milvus-server.out"
        # The log is appended to across restarts: only this start's lines count.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.proc = subprocess.Popen(
            self._command(),
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                started = b"Ctrl+C to exit" in log.read()
            if started and port_open(self.port):
                return
            time.sleep(0.5)
        log = self.logs()
        self.stop()
        raise RuntimeError(f"Milvus server did not start within {timeout}s on port {self.port}.\n{log}")

    def logs(self, tail: int = 60) -> str:
        parts = []
        for path in (self.data_dir / "milvus-server.out", self.data_dir / "logs" / "milvus-stderr.log"):
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"--- {path} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def _signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float = 10) -> None:
        """SIGTERM the whole group, then SIGKILL: the binary can ignore SIGTERM for >20 s."""
        if not self.proc:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self._signal(signal.SIGKILL)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=30)
        self.proc = None
        deadline = time.monotonic() + 30
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL without grace, as a crash would."""
        self.stop(grace=0)

    def restart(self, **flags: str | int | bool) -> None:
        self.stop()
        if flags:
            self.flags.update(flags)
        self.start()
