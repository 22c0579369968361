#!/usr/bin/env bash
# Set up .venv with everything diffpose needs. Safe to run again (it only installs what is missing).
#   bash scripts/bootstrap.sh          runtime dependencies
#   bash scripts/bootstrap.sh --dev    plus the test tools (pytest, hypothesis, ruff, onnx, onnxruntime)
# PyTorch and torchvision are installed first, as a matching pair (torchvision's compiled operators only load
# beside the torch they were built for): on a machine without an NVIDIA GPU the CPU builds from PyTorch's own
# index, so that pip does not pull multi-gigabyte CUDA builds; where that index cannot be reached, the builds
# PyPI (or a local mirror) has. Set DIFFPOSE_TORCH to choose other requirements (e.g. "torch torchvision").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH="torch==2.14.1 torchvision==0.29.1"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
if ! "$VPY" -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1')" >/dev/null 2>&1; then
  if [ -n "${DIFFPOSE_TORCH:-}" ]; then
    "$VPY" -m pip install --quiet $DIFFPOSE_TORCH
  elif command -v nvidia-smi >/dev/null 2>&1; then
    "$VPY" -m pip install --quiet $TORCH
  else
    "$VPY" -m pip install --quiet $TORCH --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
      || "$VPY" -m pip install --quiet $TORCH
  fi
fi
EXTRA=""
if [ "${1:-}" = "--dev" ]; then EXTRA="[dev]"; fi
"$VPY" -m pip install --quiet -e ".${EXTRA}"
