#!/usr/bin/env bash
# The study's scale on a GPU, one command: bash scripts/gpu_check.sh [FRACTION] (default 0.25 of the 12,161 clips).
# trainer=gpu, batch 64, the study's 2.5-s crop (104 frames); writes the same table as benchmarks/scale.py to
# outputs/bench/scale_gpu.md (and .json) within 10 minutes, or stops. Never needed for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
ARGS=(batches=20 batch_size=64 trainer=gpu)
mkdir -p outputs/bench
timeout 600 "$PYTHON" -m benchmarks.scale "fraction=${1:-0.25}" "${ARGS[@]}" \
  json=outputs/bench/scale_gpu.json markdown=outputs/bench/scale_gpu.md
