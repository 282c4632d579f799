#!/usr/bin/env bash
# Set up (scripts/setup.sh), lint (ruff) and type-check (mypy), then run the whole test suite
# (arguments go to pytest). The SLURM tests start a real
# two-node SLURM on this machine (slurm/dev/up.sh, needs root and apt) and stop it after.
# pytest's exit code 5 (no tests collected) counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
PY=${PYTHON:-python3}
"$PY" -m ruff check . || { echo "test.sh: ruff found problems (see above)" >&2; exit 1; }
"$PY" -m mypy || { echo "test.sh: mypy found problems (see above)" >&2; exit 1; }
"$PY" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit "$rc"
