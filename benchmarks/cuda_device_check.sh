#!/usr/bin/env bash
# The CUDA backend on a GPU machine in one call: install, test, check, benchmark.
#
# Prepare here, once (the GPU machine reaches no registry; it lacks xdsl and lark, and has
# its own llvmlite, PyTorch, ONNX Runtime, CUDA toolkit (ptxas, libdevice) and cuda-bindings):
#     bash benchmarks/cuda_device_check.sh --prepare        # wheels into .whl/ (git-ignored)
# Then, through the device tool, from the repository root (/work/.library/device/METHOD.md):
#     run(command="bash benchmarks/cuda_device_check.sh", carry=[".whl"], timeout_s=580)
# It prints, in order: the GPU and tools; tests/test_cuda_backend.py with its GPU tests
# (models against the interpreter, the conformance suite) no longer skipped; the bundled MLP
# checked from the command line; then benchmarks/cuda_bench.py (matmul 4096^3 against cuBLAS
# with TF32 off, ResNet-50 and BERT-base against PyTorch eager and ONNX Runtime, the top
# kernels' GFLOP/s) and a summary table last. Logs and the JSON rows go to $OUT.
# Each step has its own time limit, so one that hangs leaves time for the rest.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS="xdsl==0.75.0 lark==1.3.1 immutabledict==4.3.1 ordered-set==4.1.0"
if [ "${1:-}" = "--prepare" ]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $WHEELS
    ls -la .whl
    exit
fi

OUT="${OUT:-/tmp/lathe-cuda-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
status=0
step() { echo; echo "=== $1"; }

step "install (wheels from .whl, then Lathe itself, into /tmp/site)"
[ -d .whl ] || { echo "no .whl/: run 'bash benchmarks/cuda_device_check.sh --prepare' first and carry .whl"; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target /tmp/site . || exit 2
export PYTHONPATH=/tmp/site
export PATH="/usr/local/cuda/bin:$PATH"

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
python3 -c "import llvmlite, torch, onnxruntime as o; print('llvmlite', llvmlite.__version__, '| torch', torch.__version__, '| onnxruntime', o.__version__, o.get_available_providers())"
which ptxas && ptxas --version | tail -1
python3 -m lathe.tools.lathe_cli backends 2>&1 | grep -A2 '^cuda' | tee "$OUT/backends.txt"

step "tests/test_cuda_backend.py (GPU tests included)"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_backend.py -rs 2>&1 | tee "$OUT/pytest.log" | tail -25 || status=1

step "lathe run examples/mlp.lathe --target cuda --check"
timeout 120 python3 -m lathe.tools.lathe_cli run examples/mlp.lathe --target cuda --check 2>&1 | tail -4 || status=1

step "registers and spills (sm_90), the zoo's small models"
timeout 120 python3 benchmarks/cuda_ptx.py --arch sm_90 2>&1 | tee "$OUT/ptx.log" | tail -12 || status=1

step "benchmarks/cuda_bench.py"
timeout 300 python3 benchmarks/cuda_bench.py --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log" | tail -40 || status=1

exit $status
