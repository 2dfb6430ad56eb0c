#!/usr/bin/env bash
# The GPU check, one command (~6 minutes on an H200): the card, `pytest -m cuda`, then benchmarks/bench_gpu.py's
# sections (speed: plain PyTorch, torch.compile, xlcollab plain and fused, ratios; tune; accuracy; crossover).
# Runs with the machine's own python3 (its CUDA torch and Triton; no install needed), from the repository root:
#     bash benchmarks/gpu_check.sh            # logs under $OUT (or /tmp/gpu-check)
# Test modules that need packages absent there (openpyxl, xlwings, ...) fail to collect and are listed; every
# CUDA test of the core (fused kernels, fit, distributed) runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  $PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  $PY -c "import triton; print('triton', triton.__version__)"
} 2>&1 | tee "$OUT/card.txt"
timeout 150 $PY -m pytest -m cuda -q -rs -p no:cacheprovider --continue-on-collection-errors tests 2>&1 \
  | tee "$OUT/pytest-cuda.txt" | tail -25
timeout 420 $PY benchmarks/bench_gpu.py "$@" 2>&1 | tee "$OUT/bench_gpu.md"
