"""Find Debian's Chromium, installing it with apt-get when missing (CI starts bare).

Playwright drives this system browser; `playwright install` is never run (its downloads
are blocked here), so the executable path is passed explicitly.
"""

from __future__ import annotations

import os
import shutil
import subprocess

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _apt(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, timeout=timeout, env=env)


def ensure_chromium() -> tuple[str | None, str]:
    """Return (path, "") or (None, why it cannot be had)."""
    path = shutil.which("chromium")
    if path:
        return path, ""
    if not shutil.which("apt-get"):
        return None, "chromium is not installed and apt-get is not available to install it"
    if os.geteuid() != 0:
        return None, "chromium is not installed and installing it with apt-get needs root"
    try:
        update = _apt("update", "-qq", timeout=600)
        install = _apt("install", "-y", "-qq", "chromium", timeout=1200)
    except subprocess.TimeoutExpired as exc:
        return None, f"installing chromium timed out: {exc}"
    path = shutil.which("chromium")
    if path:
        return path, ""
    tail = (update.stderr + install.stderr).strip()[-800:]
    return None, f"`apt-get install chromium` failed (exit {install.returncode}): {tail}"
