#!/usr/bin/env bash
# The GPU check (issue 31), as the device call runs it: install the wheels carried in .whl/ (no network
# there), then benchmarks/gpu_check.py. Here: bash benchmarks/gpu_check.sh --dry-run (or --build-wheels).
# Which python: $PYTHON, else python3 (on the device machine, the one that holds torch).
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 MUJOCO_GL="${MUJOCO_GL:-egl}" RAY_AUTH_MODE=disabled CUBLAS_WORKSPACE_CONFIG=:4096:8
for arg in "$@"; do
  case "$arg" in --dry-run|--build-wheels) exec "$py" benchmarks/gpu_check.py "$@";; esac
done
if ! ls .whl/*.whl >/dev/null 2>&1; then
  echo "wheels=absent: carry .whl (built on a machine with pip and a network: python benchmarks/gpu_check.py --build-wheels)"
  exit 1
fi
"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheels=install_failed"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" benchmarks/gpu_check.py "$@"
