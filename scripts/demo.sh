#!/usr/bin/env bash
# Quick start 1: install the provider with embedded Milvus Lite and run the example reindex DAG.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# scripts/matrix.sh passes its own, already installed virtualenv (DEMO_VENV) and Airflow home.
VENV=${DEMO_VENV:-.venv}
export AIRFLOW_HOME="${DEMO_AIRFLOW_HOME:-$PWD/demo/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/example_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
mkdir -p "$AIRFLOW_HOME"
if [ -z "${DEMO_VENV:-}" ]; then
  echo "Installing airflow-milvus with Milvus Lite into .venv (log: $AIRFLOW_HOME/install.log) ..."
  {
    [ -x .venv/bin/python ] || "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[lite]'
  } > "$AIRFLOW_HOME/install.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/install.log"; exit 1; }
fi
echo "Running the example DAG milvus_reindex on embedded Milvus Lite ..."
"$VENV"/bin/airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1
# No milvus_default connection: the hook uses Milvus Lite at $AIRFLOW_HOME/milvus_lite.db,
# served by one shared `milvus-lite server` process that every Airflow process connects to.
status=0
"$VENV"/bin/airflow dags test milvus_reindex "$@" > "$AIRFLOW_HOME/dags-test.log" 2>&1 || status=$?
"$VENV"/bin/python scripts/demo_summary.py milvus_reindex || status=1
"$VENV"/bin/python -m airflow_milvus lite stop "$AIRFLOW_HOME/milvus_lite.db" > /dev/null 2>&1 || true
echo "Airflow's log: $AIRFLOW_HOME/dags-test.log. Milvus Lite data: $AIRFLOW_HOME/milvus_lite.db"
exit "$status"
