"""Run the benchmarks: ``python -m benchmarks.run`` from the repository root (see README.md).

Everything runs in a throwaway Airflow home (sqlite) with its own Milvus 2.3.5 server from
tests/milvus_server.py; both are removed at the end. Results go to
benchmarks/results/latest.json and latest.md, and with --update-readme into README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.common import BENCH, log, set_milvus_conn, setup_airflow_home

ALL = ("parse", "overhead", "waiting", "slots", "reindex")
QUICK = dict(parse_repeats=3, overhead_rows=3000, overhead_repeats=1, wait_rows=10000, wait_repeats=1,
             slots_rows=30000, slots_waits=2, rows=5000, reindex_repeats=1)
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(ALL), help=f"comma-separated sections of {', '.join(ALL)}")
    p.add_argument("--quick", action="store_true", help="a small dry run (minutes): small N, few repeats")
    p.add_argument("--rows", type=int, default=100_000, help="reindex cycle: rows (N)")
    p.add_argument("--dim", type=int, default=128, help="vector size for every section")
    p.add_argument("--reindex-repeats", type=int, default=2, help="reindex cycle: rounds of the three strategies")
    p.add_argument("--parse-repeats", type=int, default=11, help="parse cost: fresh interpreters per variant")
    p.add_argument("--overhead-rows", type=int, default=20_000)
    p.add_argument("--overhead-repeats", type=int, default=3)
    p.add_argument("--wait-rows", type=int, default=30_000)
    p.add_argument("--wait-repeats", type=int, default=2)
    p.add_argument("--poll", type=float, default=2.0, help="poll interval of the waits, seconds")
    p.add_argument("--slots-waits", type=int, default=4, help="deferred waits in the worker-slot check")
    p.add_argument("--slots-rows", type=int, default=80_000, help="rows of the long build the waits wait for")
    p.add_argument("--peers-python", default=None,
                   help="python of a venv with the Qdrant/Weaviate/Pinecone providers (default: $BENCH_PEERS_PYTHON "
                        "or /tmp/bench-peers-venv/bin/python if present; 'none' to skip)")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--update-readme", action="store_true", help="replace the results block of benchmarks/README.md")
    p.add_argument("--keep", action="store_true", help="keep the Airflow home and server data (printed at the end)")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.sections) - set(ALL)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(ALL)}")
    return args


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv=None) -> int:
    args = parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="airflow-milvus-bench-"))
    log(f"Airflow home {home}; migrating its database")
    dags = setup_airflow_home(home)  # before anything imports airflow
    os.environ["BENCH_DIM"] = str(args.dim)
    started = time.time()
    results: dict = {"meta": {
        "started": time.strftime("%Y-%m-%d %H:%M %Z"), "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpus": os.cpu_count(), "load_before": _load(), "python": platform.python_version(), "args": {k: str(v) for k, v in vars(args).items()},
    }}
    server = None

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    failed = False
    try:
        import airflow
        import pymilvus

        from benchmarks import rpc_count

        rpc_count.install()  # before the first MilvusClient: pymilvus shares one channel per address
        results["meta"].update(airflow=airflow.__version__, pymilvus=pymilvus.__version__)
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # the prober's failing searches are expected
        if "parse" in args.sections:  # first, before the server adds load
            from benchmarks import parse_cost

            peers = None if args.peers_python == "none" else args.peers_python or parse_cost.peers_python_default()
            results["parse"] = _section(lambda: parse_cost.measure_in_launcher(sys.executable, peers, args.parse_repeats))
            results["parse"]["peers_python"] = peers
        if set(args.sections) - {"parse"}:
            from tests.milvus_server import MilvusServer

            log("starting a Milvus 2.3.5 standalone server")
            server = MilvusServer(home / "milvus")
            server.start()
            for conn_id in ("bench_milvus", "milvus_default"):
                set_milvus_conn(conn_id, server.uri)
            from benchmarks import data

            with data.client(server.uri) as c:
                results["meta"]["milvus_server"] = c.get_server_version()
        for name in ("overhead", "waiting", "slots", "reindex"):
            if name not in args.sections:
                continue
            _ensure_up(server)
            results[name] = _section(lambda name=name: _run(name, args, server, home, dags))
        failed = any("error" in v for k, v in results.items() if k != "meta")
    except KeyboardInterrupt:
        log("interrupted")
        failed = True
    finally:
        if server is not None:
            server.stop()
        results["meta"].update(duration_s=time.time() - started, load_after=_load())
        _write(results, args)
        if args.keep or failed:
            log(f"kept {home} (logs, server data)")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


def _ensure_up(server) -> None:
    # A 2.3.5 standalone exits when its etcd session lapses under heavy load; start it again.
    if server.proc is None or server.proc.poll() is not None:
        log("the Milvus server has exited; restarting it on the same data")
        server.start()


def _section(fn) -> dict:
    try:
        return fn()
    except Exception as exc:
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"[:2000]}


def _run(name: str, args, server, home: Path, dags: Path) -> dict:
    uri = server.uri
    if name == "overhead":
        from benchmarks import overhead

        return overhead.measure(uri, rows=args.overhead_rows, dim=args.dim, repeats=args.overhead_repeats)
    if name == "waiting":
        from benchmarks import waiting

        return waiting.measure(uri, rows=args.wait_rows, dim=args.dim, poll=args.poll, repeats=args.wait_repeats)
    if name == "slots":
        from benchmarks import slots

        return slots.measure(uri, home, waits=args.slots_waits, rows=args.slots_rows, dim=args.dim, poll=args.poll)
    from benchmarks import reindex

    return reindex.measure(uri, dags, rows=args.rows, dim=args.dim, repeats=args.reindex_repeats, server_pid=server.proc.pid)


def _merge_earlier(results: dict, args) -> None:
    """With --only, keep the other sections of the previous run, each tagged with its run."""
    path = args.out / "latest.json"
    if set(args.sections) == set(ALL) or not path.exists():
        return
    earlier = json.loads(path.read_text())
    for key in ALL:
        if key not in results and key in earlier:
            results[key] = earlier[key]
            results[key].setdefault("_run", earlier["meta"]["started"] + ", `" + earlier["meta"]["command"] + "`")


def _write(results: dict, args) -> None:
    _merge_earlier(results, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    from benchmarks.report import render

    text = render(results)
    (args.out / "latest.md").write_text(text)
    print(text)
    if args.update_readme:
        readme = BENCH / "README.md"
        body = readme.read_text()
        start, end = body.index(README_START) + len(README_START), body.index(README_END)
        readme.write_text(body[:start] + "\n" + text + body[end:])
        log(f"updated {readme}")


if __name__ == "__main__":
    sys.exit(main())
