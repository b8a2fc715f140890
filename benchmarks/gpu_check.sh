#!/usr/bin/env bash
# On a CUDA machine (no network needed): check the Triton and torch-CUDA paths against the float64 oracle and
# time them; every result is written to $OUT/gpu_check.jsonl (default: ./gpu_check_out) as it finishes, so a
# crash or timeout keeps what was measured. About 2 minutes on an H100. Usage:
#   OUT=/some/dir [GPU_CHECK_SECONDS=540] bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
# The package from this checkout, without installing it (the device machine has no network for pip).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
command -v python >/dev/null || { mkdir -p /tmp/py-shim && ln -sf "$(command -v python3)" /tmp/py-shim/python && export PATH=/tmp/py-shim:$PATH; }
python -c "import torch" || { echo "torch is not importable here; install the project's environment first" >&2; exit 2; }
python -c "import triton" 2>/dev/null || echo "triton is not installed: only the torch-CUDA paths are checked" >&2
timeout "${GPU_CHECK_SECONDS:-540}" python benchmarks/gpu_check.py --out "$OUT"
