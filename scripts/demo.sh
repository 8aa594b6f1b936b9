#!/usr/bin/env bash
# Quick start 1: install the provider with embedded Milvus Lite and run the example reindex DAG.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[lite]'
export AIRFLOW_HOME="$PWD/demo/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/example_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
mkdir -p "$AIRFLOW_HOME"
.venv/bin/airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1
.venv/bin/airflow pools set milvus_reindex 1 "one Milvus reindex at a time" > /dev/null
# No milvus_default connection: the hook uses Milvus Lite at $AIRFLOW_HOME/milvus_lite.db.
.venv/bin/airflow dags test milvus_reindex "$@"
echo "milvus_reindex finished: state above; Milvus Lite data in $AIRFLOW_HOME/milvus_lite.db"
