#!/usr/bin/env bash
# Regenerate ci/constraints-airflow-<version>.txt: resolve Airflow and the test tools as an
# installer would have on the day of that Airflow release (uv --exclude-newer), then freeze.
# Airflow does not cap fastapi, structlog, ... so a resolution made today breaks old releases;
# its published constraints (not reachable from here) are pinned the same way, at release time.
#   bash ci/freeze_constraints.sh 3.1.3 2025-11-15T00:00:00Z
#   bash ci/freeze_constraints.sh 3.2.2 2026-05-29T06:00:00Z
# Extra requirements after the date correct what that day's resolution got wrong.
# The date is just after the upload of apache_airflow_core-<version>-py3-none-any.whl:
#   curl -sH 'Accept: application/vnd.pypi.simple.v1+json' https://pypi.org/simple/apache-airflow-core/
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
version=$1 date=$2
shift 2
venv=$(mktemp -d)/venv
"$UV" venv -q -p "${PYTHON:-python3}" "$venv"
VIRTUAL_ENV=$venv "$UV" pip install -q --index-url https://pypi.org/simple --exclude-newer "$date" \
  "apache-airflow==$version" -r ci/fast-tier.txt "$@"
out=ci/constraints-airflow-$version.txt
{
  echo "# Frozen resolution of apache-airflow==$version and the fast tier's test tools, made with"
  echo "# --exclude-newer $date (just after the release) by ci/freeze_constraints.sh${*:+, with: $*}."
  echo "# The packages the matrix varies (pymilvus, milvus-lite, tenacity) are left out."
  VIRTUAL_ENV=$venv "$UV" pip freeze --exclude-editable | grep -viE '^(pymilvus|milvus-lite|tenacity)=='
} > "$out"
rm -rf "$(dirname "$venv")"
echo "wrote $out ($(grep -vc '^#' "$out") pins)"
