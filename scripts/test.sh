#!/usr/bin/env bash
# Quick start 2: install test dependencies (real Milvus server, Milvus Lite, Chromium) and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# uv (itself in the test extra) installs the extra in seconds where pip takes minutes.
# --compile-bytecode: unlike pip, uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE
# is set (this CI) every `airflow` process would then compile Airflow from source: ~3x the CPU
# per process (python -c 'import airflow': 9.1 s of CPU against 2.5 s).
.venv/bin/python -m pip install -q 'uv>=0.5'
.venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python -e '.[test]'
.venv/bin/python -m compileall -q airflow_milvus  # the editable provider, imported by every task process
# Debian packages: Chromium for the UI test, redis-server for the CeleryExecutor deployment test.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || echo "warning: could not install ${missing[*]}; the tests that need them will be skipped" >&2
  else
    echo "warning: ${missing[*]} missing and not root; the tests that need them will be skipped" >&2
  fi
fi
# The Node SDK for the interop tests (tests/test_interop.py), pinned by tests/node/package-lock.json;
# without npm those tests are skipped.
if command -v npm >/dev/null 2>&1; then
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error \
    || echo "warning: npm ci in tests/node failed; the Node SDK interop test will be skipped" >&2
else
  echo "warning: npm missing; the Node SDK interop test will be skipped" >&2
fi
# Tests mostly wait on servers and subprocesses: four xdist workers keep 2 cores busy; work
# stealing, with the slow tests dealt out first (tests/scheduling.py), keeps the long fault and
# deployment tests from queueing on one worker. Each worker has its own Airflow home; the Milvus
# servers are shared by all (tests/milvus_server.py, SharedServers).
# Fast tier (no server, no browser, no Airflow services): scripts/test.sh -m "not server and not slow and not browser"
# A failed test runs once more (--reruns 1) and the summary counts it as "rerun": on 2 shared
# cores, real servers and Airflow services occasionally miss a deadline. A test that fails
# twice fails the run.
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-4}" --dist worksteal --reruns 1 --reruns-delay 5 --durations=15 "$@"
