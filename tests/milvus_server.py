"""Start and stop a real Milvus standalone server (the ``milvus`` PyPI package) for tests.

Every instance gets free ports, its embedded etcd included (through ETCD_CONFIG_PATH), so
several servers (plain, auth, TLS, crash tests) can run side by side and beside a developer's own.
``SharedServers`` lets every xdist worker of a session use the same one; ``private_server``
gives a fixture one of its own for as long as it needs it. A server costs ~1 s of CPU to start
(binaries unpacked once) and 3-5 % of a core while it idles: on 2 cores, none should idle long.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
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
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: all held until all are picked (one at a time, the kernel
    can hand out a port it has just handed out, and two components then fight for it)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextmanager
def file_lock(path: Path):
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def unpacked_binaries() -> Path:
    """Milvus's binaries, unpacked once per installed package.

    The wrapper unpacks its 246 MB of lzma'd binaries into every new data dir (~6 s of CPU)
    unless ``bin/`` already holds them with the ``.lzma.md5`` stamps it checks."""
    import milvus

    cache = Path(tempfile.gettempdir()) / f"airflow-milvus-tests-milvus-{milvus.__version__}-{os.getuid()}"
    with file_lock(cache.with_suffix(".lock")):
        if not (cache / "done").exists():
            milvus._initialize_data_files(str(cache))
            (cache / "done").touch()
    return cache / "bin"


def link_binaries(data_dir: Path) -> None:
    """Hard-link the unpacked binaries into ``data_dir/bin`` (copy across filesystems)."""
    target = data_dir / "bin"
    if target.exists():
        return
    target.mkdir(parents=True)
    for path in unpacked_binaries().iterdir():
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class MilvusServer:
    """One milvus-server process group with its own data dir and ports."""

    def __init__(self, data_dir: Path, *, extra_config: Sequence[str] = (), **flags: str | int | bool) -> None:
        self.data_dir = Path(data_dir)
        self.flags = flags
        self.extra_config = list(extra_config)  # milvus.yaml keys, "key=value" (e.g. an S3 store's)
        *ports, self.etcd_peer_port = free_ports(len(PORT_FLAGS) + 1)
        self.ports = dict(zip(PORT_FLAGS, ports))
        self.proc: subprocess.Popen | None = None
        self.pgid: int | None = None  # set while running, also for a server another worker started

    def state(self) -> dict:
        return {"data_dir": str(self.data_dir), "flags": self.flags, "ports": self.ports,
                "etcd_peer_port": self.etcd_peer_port, "pgid": self.pgid, "extra_config": self.extra_config}

    @classmethod
    def attach(cls, state: dict) -> MilvusServer:
        """A handle on a running server that another process started (``state()``)."""
        server = cls.__new__(cls)
        server.data_dir, server.flags, server.ports = Path(state["data_dir"]), state["flags"], state["ports"]
        server.etcd_peer_port, server.pgid, server.proc = state["etcd_peer_port"], state["pgid"], None
        server.extra_config = state.get("extra_config", [])
        return server

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
        # The wrapper treats --proxy-port as a first guess: after a crash the port is held in
        # TIME_WAIT for a minute, its bind test (no SO_REUSEADDR) fails, and it moved the server
        # to the next port, where no client looked. The config it writes last pins the port;
        # Milvus itself binds with SO_REUSEADDR.
        cmd += ["--extra-config", f"proxy.port={self.port}"]
        # Idle CPU (~4 % of a core per server, several servers on 2 cores): 2 DML channels
        # rather than 16 (no test collection has more than one shard), quota metrics every 30 s.
        cmd += ["--extra-config", "rootCoord.dmlChannelNum=2",
                "--extra-config", "quotaAndLimits.quotaCenterCollectInterval=30"]
        for item in self.extra_config:
            cmd += ["--extra-config", item]
        return cmd

    def start(self, timeout: float = 180) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        link_binaries(self.data_dir)
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
        self.pgid = self.proc.pid
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

    def _signal(self, sig: int) -> bool:
        """Signal the process group; False once nothing of it is left."""
        if self.proc is not None:
            self.proc.poll()  # reap our child, so that a zombie leader does not count as alive
        try:
            os.killpg(self.pgid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _wait_gone(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._signal(0) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self, grace: float = 10) -> None:
        """SIGTERM the whole group, then SIGKILL: the binary can ignore SIGTERM for >20 s."""
        if self.pgid is None:
            return
        self._signal(signal.SIGTERM)
        self._wait_gone(grace)
        self._signal(signal.SIGKILL)
        self._wait_gone(30)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        self.proc = self.pgid = None
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


@contextmanager
def private_server(data_dir: Path, *, extra_config: Sequence[str] = (), **flags: str | int | bool):
    """A server of one's own for a fixture's lifetime, killed afterwards (its data is thrown
    away; a graceful stop can take 20 s). ``extra_config``: milvus.yaml keys ("key=value")."""
    server = MilvusServer(data_dir, extra_config=extra_config, **flags)
    server.start()
    try:
        yield server
    finally:
        server.kill()


class SharedServers:
    """Servers that every xdist worker of a session shares, under ``root``.

    The first worker to ask for ``name`` starts it and leaves its ``state()`` beside it; the
    others attach. Only the session's controller (``stop_all``, at its end) stops them: a
    worker that finishes early must not take a server from the others. Tests on a shared
    server keep to their own collections and must not stop, kill or reconfigure it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def get(self, name: str, **flags: str | int | bool) -> MilvusServer:
        state = self.root / f"{name}.server.json"
        with file_lock(self.root / f"{name}.lock"):
            if state.exists():
                return MilvusServer.attach(json.loads(state.read_text()))
            server = MilvusServer(self.root / name, **flags)
            server.start()
            state.write_text(json.dumps(server.state()))
            return server

    def stop_all(self) -> None:
        """Kill them (their data is thrown away): a graceful stop can take 20 s each."""
        for state in self.root.glob("*.server.json"):
            MilvusServer.attach(json.loads(state.read_text())).kill()
            state.unlink()
