#!/usr/bin/env bash
# On a CUDA machine: check the Triton path against the oracle and print ms per frame at 1080x1080 and
# 3240x3240 and achieved GFLOP/s (one JSON document, then PASS/FAIL). Takes 1-2 minutes plus installs.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, triton" 2>/dev/null || python -m pip install --quiet triton
python -c "import pipeline" 2>/dev/null || python -m pip install --quiet --no-deps -e .
timeout 300 python benchmarks/gpu_check.py
