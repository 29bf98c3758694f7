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

# 1b. From bookworm-backports (Debian's own archive), on Debian 12 only:
# - QEMU 10: bookworm's 7.2 spends about a third of a TCG boot dropping translated code (docs/boot-time.md);
# - e2fsprogs 1.47.2: 1.47.0's mke2fs -d copies each file's ctime and the build tree's readdir order into the
#   filesystem, so two builds of the same packages gave different qcow2 bytes; 1.47.1 and later do not.
# KILN_STOCK_QEMU=1 keeps bookworm's own versions. Without backports reachable they stay, with a warning.
if [ -r /etc/os-release ] && [ "${KILN_STOCK_QEMU:-0}" != "1" ]; then
  codename=$(. /etc/os-release && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}" || true)
  backports=()
  qemu_now=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || true)
  dpkg --compare-versions "${qemu_now:-0}" ge "1:9" || backports+=(qemu-system-x86 qemu-utils)
  e2fs_now=$(dpkg-query -W -f='${Version}' e2fsprogs 2>/dev/null || true)
  dpkg --compare-versions "${e2fs_now:-0}" ge "1.47.1" || backports+=(e2fsprogs)
  if [ "$codename" = "bookworm" ] && [ "${#backports[@]}" -gt 0 ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        | $SUDO tee /etc/apt/sources.list.d/kiln-bookworm-backports.sources >/dev/null
    fi
    echo "setup: installing from bookworm-backports: ${backports[*]}"
    if ! { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
           -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -t bookworm-backports "${backports[@]}"; }; then
      echo "setup: WARNING: ${backports[*]} could not be installed from bookworm-backports; bookworm's own versions stay (test boots are slower, qcow2 images are not byte-reproducible)" >&2
    fi
  fi
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
