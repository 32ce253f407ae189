#!/usr/bin/env bash
# The GPU check, in one call on a GPU machine without network (see
# docs/gpus.md), from the repository root, with gpu-wheels/ carried
# (scripts/gpu_wheels.sh makes it):
#
#     bash scripts/gpu_check.sh            # writes logs under $OUT
#
# Installs the carried wheels without network, prints nvidia-smi and
# chainer's runtime info, runs the GPU tests, a short reproduction on the
# GPU, and the benchmark with large ensembles on the GPU beside the CPU;
# prints a short table last.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
site=/tmp/minibatch-hybrid-site
python3 -m pip install --quiet --no-index --no-deps --target "$site" \
    gpu-wheels/*.whl > "$OUT/install.txt" 2>&1 || {
    cat "$OUT/install.txt"; echo 'installing the carried wheels failed'; exit 1; }
# MINIBATCH_HYBRID_GPU=1: the gpu tests fail, not skip, if CuPy cannot run.
export PYTHONPATH="$site:$PWD" CHAINER_CUDNN=0 MPLBACKEND=Agg MINIBATCH_HYBRID_GPU=1
status=0

# The CPU kernels, if the machine has a C compiler (optional: without them
# the CPU side of the benchmark measures the NumPy engine only).
python3 setup.py build_ext --inplace > "$OUT/build.txt" 2>&1 ||
    echo 'compiled kernels not built here (see build.txt)'

nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt" | head -15
python3 - <<'PY' 2>&1 | tee "$OUT/runtime.txt"
import minibatch_hybrid, chainer, numpy
from minibatch_hybrid import _compat
chainer.print_runtime_info()
print('numpy', numpy.__version__, 'shims', _compat.APPLIED)
print('cuda available:', chainer.backends.cuda.available)
if not chainer.backends.cuda.available:
    print('reason:', repr(chainer.backends.cuda._resolution_error))
PY

# addopts cleared: the machine has no nbmake, and only the GPU tests run here.
timeout 240 python3 -m pytest -q -o addopts= -p no:cacheprovider -m gpu \
    tests/test_gpu.py \
    > "$OUT/gpu-tests.txt" 2>&1 || status=1
tail -3 "$OUT/gpu-tests.txt"

timeout 120 python3 -m minibatch_hybrid.cli reproduce -d @cupy:0 -e 40 \
    -o "$OUT/reproduce" > "$OUT/reproduce.txt" 2>&1 || status=1
tail -4 "$OUT/reproduce.txt"

# The CuPy ensemble beside the CPU's contenders, late in training (if the
# kernels built: they prepare that state) and from fresh weights.
timeout 300 python3 -m minibatch_hybrid.cli bench -d @cupy:0 \
    -k 64,1024,4096 --warmup 100 --repeat 3 -o "$OUT/bench" \
    > "$OUT/bench.txt" 2>"$OUT/bench-progress.txt" || status=1

echo '== table (model-steps/s; x = ratio to the post'"'"'s loop on this CPU) =='
cat "$OUT/bench.txt"
echo "gpu tests: $(tail -1 "$OUT/gpu-tests.txt")"
exit $status
