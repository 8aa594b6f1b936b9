"""The reindex cycle at scale, three ways, in one run:

- drop first: example_dags/milvus_reindex.py itself (release, drop, reload, rebuild, load);
- index in place: reload into the loaded, indexed collection, wait until it is indexed;
- blue-green: reload into a new collection, index, load, switch the alias.

All three start from the same state (N rows, HNSW, loaded) and reload the same rows the
same way. Beside the DAG run, a prober searches the live name every 0.5 s (serving or
not) and samples the Milvus server's RSS, and a watcher stamps build-done and Loaded.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

from benchmarks import data
from benchmarks.common import BENCH, REPO, log, median

ALIAS = "bench_books"
SEARCH_PARAMS = {"params": {"ef": 1024}}
EXAMPLE = REPO / "example_dags" / "milvus_reindex.py"
ALTERNATIVES = BENCH / "dags" / "reindex_alternatives.py"


class Prober(threading.Thread):
    """Search ``name`` every ``interval`` s; sample the server's RSS (all its processes)."""

    def __init__(self, uri: str, name: str, dim: int, server_pid: int | None, interval: float = 0.5):
        super().__init__(daemon=True)
        self.uri, self.name, self.interval, self.server_pid = uri, name, interval, server_pid
        self.query = data.vector(7, dim)
        self.stop_event = threading.Event()
        self.probes: list[tuple[float, bool]] = []
        self.peak_rss = 0

    def _rss(self) -> int:
        import psutil

        try:
            root = psutil.Process(self.server_pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return 0

    def run(self) -> None:
        with data.client(self.uri) as c:
            while not self.stop_event.is_set():
                t = time.time()
                try:
                    ok = bool(c.search(self.name, data=[self.query], limit=1, anns_field="embedding", timeout=5)[0])
                except Exception:
                    ok = False
                self.probes.append((t, ok))
                if self.server_pid:
                    self.peak_rss = max(self.peak_rss, self._rss())
                self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=15)

    def not_serving_s(self) -> float:
        """Time covered by failed probes (each failure counts until the next probe)."""
        total = 0.0
        for (t, ok), (t_next, _) in zip(self.probes, self.probes[1:]):
            if not ok:
                total += t_next - t
        return total


def _install_dags(dags: Path, dim: int) -> tuple[Path, Path]:
    source = EXAMPLE.read_text()
    patched, n = re.subn(r"^DIM = \d+$", f"DIM = {dim}", source, flags=re.M)
    if n != 1:
        raise RuntimeError(f"{EXAMPLE} no longer has one 'DIM = <n>' line to set the vector size")
    # At 100 000 uniform random 128-dim rows the example's search (HNSW, default ef) misses
    # row 7 (measured; ef 128 missed it too, ef 1024 finds it); search wider, as the alternatives do.
    patched, n = re.subn(r'limit=3, anns_field="embedding"\)', f'limit=3, anns_field="embedding", search_params={SEARCH_PARAMS!r})', patched)
    if n != 1:
        raise RuntimeError(f"{EXAMPLE}: cannot find its search call to set search_params")
    example = dags / "milvus_reindex.py"
    example.write_text(patched)
    alternatives = dags / "reindex_alternatives.py"
    shutil.copy(ALTERNATIVES, alternatives)
    return example, alternatives


def _task_times(tis) -> dict[str, tuple[float, float]]:
    return {t: (ti.start_date.timestamp(), ti.end_date.timestamp()) for t, ti in tis.items() if ti.start_date and ti.end_date}


def _first(changes, state, after):
    return next((t for t, s in changes if s == state and t >= after), None)


def run_cycle(strategy: str, uri: str, *, rows: int, dim: int, server_pid: int | None, paths) -> dict:
    from tests.dag_runner import run_dag

    with data.client(uri) as c:
        live = c.describe_alias(ALIAS)["collection_name"]
    dag_id, path, conf = {
        "drop first (example DAG)": ("milvus_reindex", paths[0], {"collection": live, "rows": rows}),
        "index in place": ("bench_reindex_in_place", paths[1], {"collection": live, "rows": rows}),
        "blue-green": ("bench_reindex_blue_green", paths[1], {"collection": ALIAS, "rows": rows}),
    }[strategy]
    # The watcher follows the collection whose index is rebuilt: the green one for blue-green.
    target = f"{ALIAS}_b" if live == f"{ALIAS}_a" else f"{ALIAS}_a"
    watched = target if strategy == "blue-green" else live
    probe_name = ALIAS if strategy == "blue-green" else live
    watcher = data.Watcher(uri, watched, interval=0.2)
    prober = Prober(uri, probe_name, dim, server_pid)
    watcher.start()
    prober.start()
    try:
        start = time.time()
        dag_run, tis = run_dag(dag_id, path=path, conf=conf)
        end = time.time()
    finally:
        prober.stop()
        watcher.stop()
    if dag_run.state != "success":
        raise RuntimeError(f"{strategy}: DAG run ended {dag_run.state}: { {t: ti.state for t, ti in tis.items()} }")
    times = _task_times(tis)
    times.pop("seed", None)  # the example's first-run setup step: not part of the cycle
    cycle_start = min(s for s, _ in times.values())
    phases: dict[str, float] = {}
    if strategy == "drop first (example DAG)":
        rebuild_start, rebuild_end = times["rebuild_indexes"]
        built = watcher.index_first_done_after(rebuild_start) or rebuild_end
        loaded = _first(watcher.load_changes, "Loaded", built) or rebuild_end
        phases = {
            "drop": times["drop_indexes"][1] - times["drop_indexes"][0],
            "reload": times["reload"][1] - times["reload"][0],
            "rebuild": built - rebuild_start,
            "load": loaded - built,
        }
        ready = loaded
    elif strategy == "index in place":
        phases = {
            "reload": times["reload"][1] - times["reload"][0],
            "index catch-up": times["wait_for_index"][1] - times["wait_for_index"][0],
        }
        ready = times["wait_for_index"][1]
    else:
        build_start, build_end = times["build_and_load"]
        built = watcher.index_first_done_after(build_start) or build_end
        loaded = _first(watcher.load_changes, "Loaded", built) or build_end
        phases = {
            "create": times["create_green"][1] - times["create_green"][0],
            "reload": times["reload"][1] - times["reload"][0],
            "rebuild": built - build_start,
            "load": loaded - built,
            "switch": times["switch"][1] - times["switch"][0],
        }
        ready = times["switch"][1]
    return {
        "strategy": strategy,
        "phases_s": phases,
        "query_ready_s": ready - cycle_start,
        "cycle_s": times["search"][1] - cycle_start,
        "dag_wall_s": end - start,
        "not_serving_s": prober.not_serving_s(),
        "probes": len(prober.probes),
        "failed_probes": sum(1 for _, ok in prober.probes if not ok),
        "peak_server_rss_mib": prober.peak_rss / 2**20 if prober.peak_rss else None,
    }


def measure(uri: str, dags: Path, *, rows: int, dim: int, repeats: int, server_pid: int | None) -> dict:
    paths = _install_dags(dags, dim)
    first = f"{ALIAS}_a"
    log(f"reindex: building {first} ({rows} rows, dim {dim}, HNSW, loaded) and alias {ALIAS}")
    t = time.time()
    with data.client(uri) as c:
        for name in (f"{ALIAS}_a", f"{ALIAS}_b"):
            if c.has_collection(name):
                c.drop_collection(name)
    data.make_collection(uri, first, rows=rows, dim=dim)
    with data.client(uri) as c:
        c.create_alias(first, ALIAS)
    setup_s = time.time() - t
    strategies = ["drop first (example DAG)", "index in place", "blue-green"]
    runs: list[dict] = []
    for rep in range(repeats):
        order = strategies[rep % 3:] + strategies[:rep % 3]
        for strategy in order:
            log(f"reindex: round {rep + 1}/{repeats}: {strategy}")
            result = run_cycle(strategy, uri, rows=rows, dim=dim, server_pid=server_pid, paths=paths)
            log(f"reindex: {strategy}: query-ready after {result['query_ready_s']:.1f}s, not serving {result['not_serving_s']:.1f}s, phases {result['phases_s']}")
            runs.append(result)
    summary = {}
    for strategy in strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        phase_names = list(mine[0]["phases_s"])
        summary[strategy] = {
            "phases_s": {p: median([r["phases_s"][p] for r in mine]) for p in phase_names},
            "query_ready_s": median([r["query_ready_s"] for r in mine]),
            "cycle_s": median([r["cycle_s"] for r in mine]),
            "not_serving_s": median([r["not_serving_s"] for r in mine]),
            "peak_server_rss_mib": median([r["peak_server_rss_mib"] for r in mine if r["peak_server_rss_mib"]]),
        }
    return {"rows": rows, "dim": dim, "repeats": repeats, "setup_s": setup_s, "runs": runs, "summary": summary}
