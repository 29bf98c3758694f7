#!/usr/bin/env bash
# Idempotent setup: system packages (apt, when missing), .venv with the package and its extras, migrations.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# 1. System packages: install only what is missing, so a ready machine pays nothing.
mapfile -t wanted < <(grep -v '^\s*#' scripts/system-packages.txt | sed 's/\s*#.*//' | grep -v '^\s*$' | sort -u)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# 2. Python environment: rebuilt only when pyproject.toml changes.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.kiln-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi

# 3. Instance directory and database schema (SQLite under instance/ unless DATABASE_URL says otherwise).
mkdir -p instance
if [ "${KILN_SKIP_MIGRATE:-0}" != "1" ]; then
  # Quiet when it works; on failure run it again so its output explains why.
  FLASK_APP=wsgi.py .venv/bin/flask db upgrade >/dev/null 2>&1 || FLASK_APP=wsgi.py .venv/bin/flask db upgrade
fi
echo "setup: ready"
