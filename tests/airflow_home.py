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


def migrated_database(python: str = sys.executable) -> Path:
    """An empty, migrated sqlite metadata DB for ``python``'s Airflow (this interpreter's by default), to copy.

    Made once per machine under an flock (xdist workers, test sessions and deployments all copy
    it): a migration costs ~15 s on two busy cores. Keyed by Airflow version and environment."""
    if python == sys.executable:
        try:
            airflow_version = metadata.version("apache-airflow-core")
        except metadata.PackageNotFoundError:
            airflow_version = metadata.version("apache-airflow")
        prefix = sys.prefix
    else:  # another virtualenv (the 3.1 browser test): ask it
        probe = "import sys, importlib.metadata as m; print(sys.prefix, m.version('apache-airflow-core'))"
        prefix, airflow_version = subprocess.run([python, "-c", probe], capture_output=True, text=True,
                                                 check=True).stdout.split()
    key = hashlib.sha256(f"{prefix}|{airflow_version}".encode()).hexdigest()[:12]
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
            subprocess.run([python, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                           env=env, timeout=300)
            os.replace(home / "airflow.db", template)  # appears whole or not at all
            shutil.rmtree(home, ignore_errors=True)
    return template
