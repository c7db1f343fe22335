#!/usr/bin/env bash
# The CUDA checks and the GPU benchmark cases in one go, on a machine with an NVIDIA GPU:
#   bash scripts/gpu_check.sh [RESULTS_DIR]      (default bench/results/gpu)
# 1. tests/test_cuda.py: the flex-attention connector against the padded form (fp32, bf16, gradients)
#    and the tiny model's generation on CUDA against the CPU;
# 2. pytest bench/ --benchmark-only -k cuda --salova-profile: every case in bf16 on the GPU, with
#    torch.profiler traces and top-kernel tables for the connector and the router.
# Logs, the benchmark JSON, tables and plots go to RESULTS_DIR. Exit status: non-zero if either failed.
set -uo pipefail
results=${1:-bench/results/gpu}
python=${PYTHON:-$(command -v python || command -v python3)}  # the interpreter that has torch with CUDA
mkdir -p "$results"
"$python" -c "import torch; print('torch', torch.__version__, '| GPU', torch.cuda.get_device_name())" || exit 1
"$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$results/cuda-tests.log"
tests=${PIPESTATUS[0]}
ignore=()  # the decode and end-to-end benches write videos with PyAV, which GPU images may lack
if ! "$python" -c "import av" 2>/dev/null; then
    echo "PyAV is not installed: bench/test_decode_bench.py and bench/test_end_to_end.py are left out"
    ignore=(--ignore bench/test_decode_bench.py --ignore bench/test_end_to_end.py)
fi
"$python" -m pytest -q -p no:cacheprovider bench/ --benchmark-only -k cuda --salova-profile \
    --salova-results "$results" "${ignore[@]}" 2>&1 | tee "$results/bench.log"
bench=${PIPESTATUS[0]}
echo "cuda tests exit $tests, gpu bench exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
