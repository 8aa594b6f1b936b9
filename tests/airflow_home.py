"""The Airflow metadata database every test home starts from.

Imported by conftest before Airflow itself, so standard library only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path


def migrated_database() -> Path:
    """An empty, migrated sqlite metadata DB for this interpreter's Airflow, to copy.

    Made once per machine under an flock (xdist workers, test sessions and deployments all copy
    it): a migration costs ~15 s on two busy cores. Keyed by Airflow version and environment."""
    try:
        airflow_version = metadata.version("apache-airflow-core")
    except metadata.PackageNotFoundError:
        airflow_version = metadata.version("apache-airflow")
    key = hashlib.sha256(f"{sys.prefix}|{airflow_version}".encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"airflow-milvus-migrated-{key}"
    template = folder / "airflow.db"
    if template.exists():
        return template
    folder.mkdir(exist_ok=True)
    with open(folder / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be migrating right now
        if not template.exists():
            home = Path(tempfile.mkdtemp(prefix="home-", dir=folder))
            env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
            env.update(AIRFLOW_HOME=str(home), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
                       AIRFLOW__CORE__LOAD_EXAMPLES="False")
            subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                           env=env, timeout=300)
            os.replace(home / "airflow.db", template)  # appears whole or not at all
            shutil.rmtree(home, ignore_errors=True)
    return template
