#!/usr/bin/env bash
# Install ptycho-torch and its test tools into the current Python (a venv, or the system
# Python as root). torch is installed first and pinned to 2.13.0, so that pip never pulls a
# CUDA build on a CPU machine; everything else then finds torch already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.__version__.split("+")[0] == "2.13.0" else 1)' 2>/dev/null; then
  "$PY" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
"$PY" -m pip install --quiet --disable-pip-version-check -e '.[test]'
