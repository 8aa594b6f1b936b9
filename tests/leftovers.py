"""Processes a test session leaves running: found by a marker in their environment.

The session's controller sets ``LEFTOVER_MARKER`` before anything starts; every process
started from a test inherits it (Airflow deployments copy the environment, and the Lite
servers, task processes and Milvus servers they start inherit theirs). At the end, any
process still carrying it, other than the controller itself, was left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

LEFTOVER_MARKER = "MILVUS_PROVIDER_TEST_RUN"  # no AIRFLOW prefix: deployments drop those from their environment


def _marked(marker: str, value: str) -> dict[int, str]:
    needle = f"{marker}={value}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as env:
                if needle not in env.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat") as stat:
                if stat.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    continue  # exited; its parent has not reaped it yet
            with open(f"/proc/{entry}/cmdline", "rb") as cmd:
                found[int(entry)] = cmd.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def leftover_processes(value: str, *, settle: float = 15.0) -> dict[int, str]:
    """The marked processes still alive after ``settle`` seconds (xdist workers and servers
    being stopped need a moment), SIGKILLed so that they do not outlive the report."""
    deadline = time.monotonic() + settle
    while (left := _marked(LEFTOVER_MARKER, value)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left
