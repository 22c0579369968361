#!/usr/bin/env bash
# Set up .venv with everything diffpose needs. Safe to run again (it only installs what is missing).
#   bash scripts/bootstrap.sh          runtime dependencies
#   bash scripts/bootstrap.sh --dev    plus the test tools (pytest, hypothesis, ruff, onnx, onnxruntime)
# On a machine without an NVIDIA GPU the CPU build of PyTorch is installed first, so that pip does not
# pull a multi-gigabyte CUDA build. Set DIFFPOSE_TORCH to choose another torch requirement.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  if [ -n "${DIFFPOSE_TORCH:-}" ]; then
    "$VPY" -m pip install --quiet "$DIFFPOSE_TORCH"
  elif command -v nvidia-smi >/dev/null 2>&1; then
    "$VPY" -m pip install --quiet torch
  else
    "$VPY" -m pip install --quiet torch==2.13.0 \
      || "$VPY" -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
EXTRA=""
if [ "${1:-}" = "--dev" ]; then EXTRA="[dev]"; fi
"$VPY" -m pip install --quiet -e ".${EXTRA}"
