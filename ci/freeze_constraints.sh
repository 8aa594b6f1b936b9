#!/usr/bin/env bash
# Regenerate ci/constraints-airflow-<version>.txt: resolve Airflow and the test tools as pip
# would have on the day of that Airflow release (--uploaded-prior-to), then freeze the result.
# Airflow does not cap fastapi, structlog, ... so a resolution made today breaks old releases;
# its published constraints (not reachable from here) are pinned the same way, at release time.
#   bash ci/freeze_constraints.sh 3.2.2 2026-05-29T06:00:00Z
#   bash ci/freeze_constraints.sh 3.1.1 2025-10-28T00:00:00Z 'structlog<25.5'
# Extra requirements after the date correct what that day's resolution got wrong (structlog
# 25.5.0, out the same day as Airflow 3.1.1, dropped structlog.dev.Styles, which 3.1 imports).
# The date is found by bisecting:
#   pip download --no-deps apache-airflow-core==<version> --uploaded-prior-to <date>
set -euo pipefail
cd "$(dirname "$0")/.."
# PyPI only: a local mirror in a pip config has no upload times, so the date would not filter it.
export PIP_CONFIG_FILE=/dev/null
version=$1 date=$2
shift 2
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q --uploaded-prior-to "$date" "apache-airflow==$version" -r ci/fast-tier.txt "$@"
out=ci/constraints-airflow-$version.txt
{
  echo "# pip freeze of apache-airflow==$version and the fast tier's test tools, resolved with"
  echo "# --uploaded-prior-to $date (just after the release) by ci/freeze_constraints.sh${*:+, with: $*}."
  echo "# The packages the matrix varies (pymilvus, milvus-lite, tenacity) are left out."
  "$venv/bin/python" -m pip freeze --exclude-editable | grep -viE '^(pymilvus|milvus-lite|tenacity)=='
} > "$out"
rm -rf "$(dirname "$venv")"
echo "wrote $out ($(grep -vc '^#' "$out") pins)"
