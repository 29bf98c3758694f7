#!/usr/bin/env bash
# The whole suite: the fast tests on SQLite and on a throwaway PostgreSQL, then the slow
# image builds and boots once (they do not depend on the database engine).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=".venv/bin/pytest"
status=0

run() {
  local label=$1; shift
  echo "=== $label"
  "$PYTEST" "$@"
  local rc=$?
  # 5 = no tests collected for this selection; anything else non-zero fails the run.
  if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then status=1; fi
}

run "fast suite on SQLite" -m "not slow" -p no:cacheprovider
KILN_TEST_DB=postgresql run "fast suite on PostgreSQL" -m "not slow" -p no:cacheprovider
if [ "${KILN_TEST_SLOW:-1}" != "0" ]; then
  run "slow suite: real image builds and QEMU boots" -m "slow" -p no:cacheprovider
fi
exit $status
