#!/usr/bin/env bash
# Everything the Triton kernel needs a CUDA GPU for, in one call (for a session that is lent one):
#   1. the kernel tests with the compiled kernel on the GPU (tests/test_kernels.py with TRITON_INTERPRET=0),
#   2. the benchmark with the launch-plan sweep (benchmarks/bench_cosine_map.py --tune),
#   3. every method's `paper` profile, smoke-scaled (RDLIB_SMOKE=1: one step, random teacher weights), trained and
#      evaluated on CUDA, torch.compile tried, and its inference cost on the GPU (tests/test_smoke.py -k cuda; needs
#      rdlib's dependencies: pip install -e . first where they are missing).
# The kernels chapter shows each step's outcome (rdlib.kernels.report.gpu_checks) from the logs committed here.
# Usage: bash benchmarks/gpu_checks.sh [OUT_DIR]   (default benchmarks/results; the device tool's $OUT if set)
# Needs torch, triton, scipy, pytest in the active python (the device image has them); rdlib comes from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-benchmarks/results}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TRITON_INTERPRET=0 PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
"$py" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
echo "commit $(git rev-parse HEAD 2>/dev/null || echo "${RDLIB_COMMIT:-unknown}")" | tee -a "$out/gpu.txt"
rc=0
"$py" -m pytest -q -p no:cacheprovider -rs tests/test_kernels.py 2>&1 | tee "$out/gpu_tests.log" || rc=1
"$py" benchmarks/bench_cosine_map.py --tune --out "$out" 2>&1 | tee "$out/bench.log" || rc=1
"$py" -m pytest -q -p no:cacheprovider -rs -s tests/test_smoke.py -k cuda 2>&1 | tee "$out/gpu_smoke.log" || rc=1
exit $rc
