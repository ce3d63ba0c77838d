#!/usr/bin/env bash
# Python venv (.venv-bench at the repo root) for the CPU peer benchmark:
# scripts/onnx_export.py and scripts/peer_bench.py. Idempotent; quiet on success.
#   scripts/peer_setup.sh && .venv-bench/bin/python scripts/onnx_export.py ...
# PyPI's Linux torch wheel is the CUDA build (~5 GB with its nvidia-* deps); it runs on CPU-only
# machines, and the CPU-only index is not reachable everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-bench
PINS=(torch==2.15.0 onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0 safetensors==0.8.0 numpy==2.4.6)

[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
# Checking installed versions takes well under a second; pip's own resolver takes several.
if ! "$VENV/bin/python" - "${PINS[@]}" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(n).split("+")[0] != v for n, v in (p.split("==") for p in sys.argv[1:])))
PY
then
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PINS[@]}"
fi
