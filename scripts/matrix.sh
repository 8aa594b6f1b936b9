#!/usr/bin/env bash
# The version matrix: every bound that pyproject.toml declares, each combination in its own
# virtualenv (.venvs/<name>), running the fast test tier and the demo DAG on Milvus Lite.
# The main combination (the newest of everything) is the full suite of scripts/test.sh.
#
#   bash scripts/matrix.sh            # every combination, then a table
#   bash scripts/matrix.sh low mid    # some of them
#
# Airflow does not cap its own dependencies (fastapi, structlog, ...), so a resolution made
# today breaks older releases; each Airflow is installed with the pins of its release day
# (ci/constraints-airflow-<version>.txt, made by ci/freeze_constraints.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
UV=${UV:-.venv/bin/uv}
[ -x "$UV" ] || UV=$(command -v uv) || { echo "uv not found: run scripts/test.sh first (it installs the test extra)" >&2; exit 2; }
LOGS=test-artifacts/matrix
FAST_TIER="not server and not slow and not browser"

# name             airflow  pymilvus  milvus-lite  tenacity
COMBINATIONS=(
  "low              3.1.3    2.6.11    3.2.2        9.0.0"
  "low-airflow      3.1.3    3.0.2     3.2.2        9.2.1"
  "mid              3.2.2    2.6.17    3.2.2        9.2.1"
  "low-clients      3.3.2    2.6.11    3.2.2        9.0.0"
)

mkdir -p "$LOGS" .venvs
matrix_start=$SECONDS
selected=()
for combination in "${COMBINATIONS[@]}"; do
  read -r name _ <<<"$combination"
  if [ $# -eq 0 ] || [[ " $* " =~ " $name " ]]; then selected+=("$combination"); fi
done

installed() {  # the installed version of a package in a virtualenv
  "$1/bin/python" -c 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))' "$2" 2>/dev/null
}

summary_line() {  # pytest's closing line, e.g. "240 passed, 3 skipped in 95.2s"
  grep -E '^=*.* (passed|failed|error)' "$1" | tail -1 | sed -E 's/=//g; s/^ +| +$//g'
}

install() {  # name airflow pymilvus lite tenacity: a virtualenv with exactly these versions
  # uv (from the test extra) resolves and installs in seconds where pip takes minutes; it writes
  # .pyc only when told, and without them every process recompiles Airflow (see scripts/test.sh).
  local name=$1 airflow=$2 pymilvus=$3 lite=$4 tenacity=$5 venv=.venvs/$1 start=$SECONDS constraints=()
  [ -f "ci/constraints-airflow-$airflow.txt" ] && constraints=(-c "ci/constraints-airflow-$airflow.txt")
  {
    rm -rf "$venv" && "$UV" venv -q -p "$PY" "$venv" &&
    VIRTUAL_ENV=$venv "$UV" pip install -q --compile-bytecode "${constraints[@]}" -r ci/fast-tier.txt "apache-airflow==$airflow" \
      "pymilvus[bulk_writer]==$pymilvus" "milvus-lite==$lite" "tenacity==$tenacity" &&
    # The editable build writes airflow_milvus.egg-info into the work tree: one at a time.
    flock .venvs/.editable.lock env VIRTUAL_ENV=$venv "$UV" pip install -q --no-deps -e '.[lite,bulk]' &&
    VIRTUAL_ENV=$venv "$UV" pip check  # the versions above satisfy what pyproject.toml declares
  } >"$LOGS/$name-install.log" 2>&1
  local rc=$?
  echo "$rc $((SECONDS - start))" >"$LOGS/$name-install.status"
}

cli_json() {  # the CLI's --output json must print only JSON, on every Airflow version
  local venv=$1 home=$2 out
  out=$(AIRFLOW_HOME=$home AIRFLOW__CORE__LOAD_EXAMPLES=False \
        "$venv/bin/python" -m airflow_milvus index status -c demo_books -o json 2>>"$home/cli.log") || return 1
  "$venv/bin/python" -c 'import json, sys; assert json.load(sys.stdin)[0]["collection_name"] == "demo_books"' <<<"$out" || return 1
  if [[ $(installed "$venv" apache-airflow-core) != 3.1.* ]]; then  # provider CLI commands: Airflow 3.2+
    out=$(AIRFLOW_HOME=$home AIRFLOW__CORE__LOAD_EXAMPLES=False \
          "$venv/bin/airflow" milvus index list -c demo_books -o json 2>>"$home/cli.log") || return 1
    "$venv/bin/python" -c 'import json, sys; assert json.load(sys.stdin)[0]["field_name"]' <<<"$out" || return 1
  fi
  "$venv/bin/python" -m airflow_milvus lite stop "$home/milvus_lite.db" >/dev/null
}

echo "Installing ${#selected[@]} virtualenvs in .venvs/ (logs: $LOGS/<name>-install.log) ..."
for combination in "${selected[@]}"; do
  install $combination
done

rows=()
failed=0
for combination in "${selected[@]}"; do
  read -r name airflow pymilvus lite tenacity <<<"$combination"
  venv=.venvs/$name
  read -r install_rc install_time <"$LOGS/$name-install.status"
  echo "== $name: Airflow $airflow, pymilvus $pymilvus, milvus-lite $lite, tenacity $tenacity (logs: $LOGS/$name-*.log)"
  if [ "$install_rc" != 0 ]; then
    tail -5 "$LOGS/$name-install.log"
    rows+=("$name|install failed|||||||${install_time}s|")
    failed=1
    continue
  fi
  start=$SECONDS

  "$venv/bin/python" -m pytest -m "$FAST_TIER" -n 3 -q -p no:cacheprovider >"$LOGS/$name-tests.log" 2>&1
  tests_rc=$?
  tests=$(summary_line "$LOGS/$name-tests.log")
  [ $tests_rc -eq 0 ] || { tests="FAIL: ${tests:-exit $tests_rc}"; failed=1; }

  home=$(mktemp -d)
  if DEMO_VENV=$venv DEMO_AIRFLOW_HOME=$home bash scripts/demo.sh >"$LOGS/$name-demo.log" 2>&1; then
    demo=success
  else
    demo=FAIL; failed=1
  fi
  if [ $demo = success ] && cli_json "$venv" "$home"; then
    cli=ok
  else
    cli=FAIL; failed=1
  fi
  cp "$home/dags-test.log" "$LOGS/$name-dags-test.log" 2>/dev/null
  "$venv/bin/python" -m airflow_milvus lite stop "$home/milvus_lite.db" >/dev/null 2>&1
  rm -rf "$home"

  rows+=("$name|$(installed "$venv" apache-airflow-core)|$(installed "$venv" pymilvus)|$(installed "$venv" milvus-lite)|$(installed "$venv" tenacity)|$tests|$demo|$cli|${install_time}s|$((SECONDS - start))s")
  echo "   ${rows[-1]}"
done

echo
echo "Version matrix (fast tier: -m \"$FAST_TIER\"; demo: airflow dags test milvus_reindex on Milvus Lite;"
echo "CLI: --output json of python -m airflow_milvus, and of airflow milvus from Airflow 3.2)"
{
  echo "combination|airflow|pymilvus|milvus-lite|tenacity|fast tier|demo|CLI json|install|tests+demo"
  printf '%s\n' "${rows[@]}"
} | column -t -s '|'
echo "matrix wall time: $((SECONDS - matrix_start))s (installs first, then each combination in turn)"
exit $failed
