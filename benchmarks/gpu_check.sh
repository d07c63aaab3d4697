#!/usr/bin/env bash
# The GPU check in one command, for whoever first has a GPU: a venv with edgetl[train] and
# tensorflow[and-cuda], then benchmarks/gpu_check.py (train beans twice, convert, print the figures).
# Options are passed on (--data DIR, --weights FILE, --quick, --cpu). Exit 0 only when everything held.
# Needs the package registry (pip); on a machine without one, install the same into the venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${EDGETL_GPU_VENV:-.venv-gpu}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -e ".[train]" "tensorflow[and-cuda]"
fi
"$venv/bin/python" -c "import tensorflow as tf; print('GPUs:', tf.config.list_physical_devices('GPU'))"
exec timeout 480 "$venv/bin/python" benchmarks/gpu_check.py "$@"   # 8 minutes at most on one GPU
