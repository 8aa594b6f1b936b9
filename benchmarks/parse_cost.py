"""Parse cost: what importing the provider, and parsing a DAG that uses it, adds.

Each sample is a fresh interpreter (the DAG processor re-imports DAG files again and
again). The parent measures wall time; ``os.wait4`` gives that child's own CPU time and
peak RSS, so nothing is measured from inside the code under test. Variants run
interleaved, round-robin with a rotating start, so drift and other users' load hit all of
them alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import BENCH, REPO, log, median, quartiles

MILVUS_OPS = (
    "from airflow_milvus.operators.index import MilvusDropIndexOperator, MilvusCreateIndexOperator"
)
MILVUS_ALL = (
    MILVUS_OPS + "; from airflow_milvus.operators.collection import MilvusLoadCollectionOperator, "
    "MilvusReleaseCollectionOperator; from airflow_milvus.sensors.index import MilvusIndexBuiltSensor; "
    "from airflow_milvus.hooks.milvus import MilvusHook"
)
PEERS = {
    "qdrant": "from airflow.providers.qdrant.operators.qdrant import QdrantIngestOperator",
    "weaviate": "from airflow.providers.weaviate.operators.weaviate import WeaviateIngestOperator",
    "pinecone": "from airflow.providers.pinecone.operators.pinecone import PineconeIngestOperator",
}
EXAMPLE_DAG = REPO / "example_dags" / "milvus_reindex.py"
SDK_DAG = BENCH / "dags" / "sdk_reindex.py"

# The child reports the in-process parse time and how much the peak RSS grew during it:
# the DAG processor's per-file work, with airflow already imported.
_DAGBAG = """
import json, resource, time
from airflow.dag_processing.dagbag import DagBag
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
bag = DagBag(dag_folder={path!r})
elapsed = time.perf_counter() - t
assert not bag.import_errors and len(bag.dags) == 1, (bag.import_errors, list(bag.dags))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"parse_s": elapsed, "parse_rss_kib": after - before}}))
"""


@dataclass
class Variant:
    name: str
    python: str
    code: str
    baseline: str | None = None  # the variant this one is compared with
    samples: list[dict] = field(default_factory=list)


def run_once(python: str, code: str) -> dict:
    """One fresh interpreter: wall (parent clock), CPU and peak RSS of that child only."""
    start = time.perf_counter()
    proc = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{code!r} failed with {proc.returncode}:\n{err.decode()[-2000:]}")
    sample = {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_kib": usage.ru_maxrss}
    lines = out.decode().strip().splitlines()
    if lines and lines[-1].startswith("{"):
        sample.update(json.loads(lines[-1]))
    return sample


def variants(main_python: str, peers_python: str | None) -> list[Variant]:
    out = [
        Variant("import: airflow.sdk", main_python, "import airflow.sdk"),
        Variant("import: + Milvus drop/create operators", main_python, f"import airflow.sdk; {MILVUS_OPS}", "import: airflow.sdk"),
        Variant("import: + every Milvus operator, sensor, hook", main_python, f"import airflow.sdk; {MILVUS_ALL}", "import: airflow.sdk"),
        Variant("DagBag: sdk-only reindex DAG", main_python, _DAGBAG.format(path=str(SDK_DAG))),
        Variant("DagBag: example_dags/milvus_reindex.py", main_python, _DAGBAG.format(path=str(EXAMPLE_DAG)), "DagBag: sdk-only reindex DAG"),
    ]
    if peers_python:
        base = "peers venv import: airflow.sdk"
        out.append(Variant(base, peers_python, "import airflow.sdk"))
        out.append(Variant("peers venv import: + Milvus drop/create operators", peers_python, f"import airflow.sdk; {MILVUS_OPS}", base))
        for peer, stmt in PEERS.items():
            out.append(Variant(f"peers venv import: + {peer} operator", peers_python, f"import airflow.sdk; {stmt}", base))
    return out


def measure(main_python: str, peers_python: str | None, repeats: int) -> dict:
    todo = variants(main_python, peers_python)
    for v in todo:  # warm the page cache and .pyc files once, unmeasured
        run_once(v.python, v.code)
    for rep in range(repeats):
        log(f"parse cost: round {rep + 1}/{repeats}")
        shift = rep % len(todo)
        for v in todo[shift:] + todo[:shift]:
            v.samples.append(run_once(v.python, v.code))
    by_name = {v.name: v for v in todo}
    rows = []
    for v in todo:
        row = _summary(v)
        if v.baseline:
            base = _summary(by_name[v.baseline])
            row["extra_wall_pct"] = 100 * (row["wall_s"] / base["wall_s"] - 1)
            row["extra_cpu_pct"] = 100 * (row["cpu_s"] / base["cpu_s"] - 1)
            row["extra_peak_mib"] = (row["peak_kib"] - base["peak_kib"]) / 1024
            row["paired_extra_wall_ms"] = 1000 * median(
                [a["wall_s"] - b["wall_s"] for a, b in zip(v.samples, by_name[v.baseline].samples)]
            )
            if "parse_s" in row:
                row["extra_parse_ms"] = 1000 * (row["parse_s"] - base["parse_s"])
                row["extra_parse_rss_mib"] = (row["parse_rss_kib"] - base["parse_rss_kib"]) / 1024
        rows.append(row)
    return {"repeats": repeats, "rows": rows, "modules": extra_modules(main_python), "python_heap_kib": python_heap_kib(main_python),
            "import_breakdown": import_breakdown(main_python)}


def _summary(v: Variant) -> dict:
    row = {"name": v.name, "baseline": v.baseline, "n": len(v.samples)}
    for key in ("wall_s", "cpu_s", "peak_kib", "parse_s", "parse_rss_kib"):
        values = [s[key] for s in v.samples if key in s]
        if values:
            row[key] = median(values)
            if key == "wall_s":
                row["wall_q1"], row["wall_q3"] = quartiles(values)
    return row


def extra_modules(python: str) -> list[str]:
    """Modules the provider's imports load beyond ``airflow.sdk``: where extra cost comes from."""
    code = (
        "import sys, json; import airflow.sdk; before = set(sys.modules); "
        f"{MILVUS_ALL}; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def python_heap_kib(python: str) -> float:
    """Python-level allocations of the operators' import (tracemalloc): RSS moves in whole
    allocator arenas and pages, this shows what the import itself allocates."""
    code = (
        "import tracemalloc, airflow.sdk; tracemalloc.start(); "
        f"{MILVUS_OPS}; print(tracemalloc.get_traced_memory()[0])"
    )
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def import_breakdown(python: str, top: int = 8) -> list[tuple[str, int, int]]:
    """The modules the operators' import loads after ``airflow.sdk``, slowest (self time) first."""
    code = f"import airflow.sdk; {MILVUS_OPS}"
    err = subprocess.run([python, "-X", "importtime", "-c", code], check=True, capture_output=True, text=True).stderr
    rows, after_sdk = [], False
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, self_us, cumulative, raw_name = line.replace("import time:", "|", 1).split("|")
        name, self_us = raw_name.strip(), self_us.strip()
        if after_sdk and self_us.isdigit():
            rows.append((name, int(self_us), int(cumulative)))
        if raw_name == " airflow.sdk":  # the top-level import: everything after it is the operators'
            after_sdk = True
    return sorted(rows, key=lambda r: -r[1])[:top]


def peers_python_default() -> str | None:
    path = Path(os.environ.get("BENCH_PEERS_PYTHON", "/tmp/bench-peers-venv/bin/python"))
    return str(path) if path.exists() else None


def measure_in_launcher(main_python: str, peers_python: str | None, repeats: int) -> dict:
    """Run ``measure`` from a small fresh process: a child's ru_maxrss starts from its
    parent's RSS at fork, so a parent holding Airflow and pymilvus would mask the peaks."""
    cmd = [main_python, "-m", "benchmarks.parse_cost", "--repeats", str(repeats), "--peers-python", peers_python or "none"]
    out = subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--peers-python", default="none")
    args = parser.parse_args()
    peers = None if args.peers_python == "none" else args.peers_python
    print(json.dumps(measure(sys.executable, peers, args.repeats)))
