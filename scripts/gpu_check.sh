#!/usr/bin/env bash
# The GPU check: one call on the lent GPU machine (no network; Python 3.12,
# NumPy 2.5, CuPy 14 there), from the repository root, gpu-wheels/ carried
# (scripts/gpu_wheels.sh makes it); see docs/gpus.md:
#
#     bash scripts/gpu_check.sh              # on the GPU machine
#     bash scripts/gpu_check.sh --rehearse   # here, without a GPU (or
#                                            # REHEARSE=1), in the venv
#                                            # scripts/gpu_wheels.sh
#                                            # --rehearsal makes
#
# Steps, each under a timeout cut to what is left of one budget (540 s by
# default, GPU_CHECK_BUDGET), so the whole ends within a 600 s call:
#   install     the carried wheels, without network, into /tmp
#   nvidia-smi  the GPU, its driver and memory
#   runtime     import under -W error, chainer.print_runtime_info(), and
#               the real cause where CuPy or the GPU cannot be used
#   cupy-stack  tests/test_cupy_stack.py: every CuPy name chainer uses here
#   gpu-tests   the gpu tests of tests/test_gpu.py, MINIBATCH_HYBRID_GPU=1:
#               each must pass (none skipped)
#   resume      a user's own Chain in a Trainer with the package's schedule
#               and iterator, snapshotted and resumed on the GPU: the same
#               batches and final weights, bit for bit
#   reproduce   the post's two runs, 40 epochs, on @cupy:0
#   throughput  the numpy engine's ensemble on CuPy, K = 1024 .. 65536,
#               fresh weights, the study's schedules over 2 epochs a
#               round, one round of warm-up, then synchronised, median of 3
#   native-bits scripts/gpu_native_check.py bits: CudaEnsemble (the native
#               arithmetic's CUDA kernels) on @cupy:0, a fixed study chunk;
#               its SHA-256 must be the CPU's (the script's DIGEST), and
#               it is compared array by array with NativeEnsemble where
#               the CPU kernels build here (setup.py build_ext, tried)
#   native-speed  CudaEnsemble's model-steps/s at K = 1024 .. 65536, the
#               CPU's share (the schedules' orders), and a 4,096-seed
#               study (K = 8192, 500 epochs) projected
# Rehearsing (no GPU), the steps that need one check instead that they
# fail as they must: every GPU test fails (none skips) with its reason,
# reproduce on @cupy:0 is a one-line error, throughput runs on the CPU,
# native-bits and native-speed say why the GPU is refused and run
# CudaEnsemble on the host (NumPy for CuPy): the digest must be the same.
#
# Everything goes to $OUT (at most 8 files: log.txt, all the steps' output;
# table.txt; throughput.json; the reproduction's loss.png and losses.json;
# native-speed.json).
# A failing step prints the last 30 lines of its output; the table of
# verdicts comes last.  Exit status 0 only if every step is ok.
set -uo pipefail
cd "$(dirname "$0")/.."
REHEARSE=${REHEARSE:-0}
[[ ${1:-} == --rehearse ]] && REHEARSE=1
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
LOG=$OUT/log.txt
: > "$LOG"
work=$(mktemp -d /tmp/gpu-check.XXXXXX)
started=$(date +%s)
deadline=$((started + ${GPU_CHECK_BUDGET:-540}))
rows=()
status=0

if [[ $REHEARSE == 1 ]]; then
    py=${PYTHON:-.venv-gpu-rehearsal/bin/python}
    [[ -x $py ]] || { echo "no $py: run bash scripts/gpu_wheels.sh" \
        "--rehearsal first" >&2; exit 1; }
else
    py=${PYTHON:-python3}
fi
site=$work/site
# MINIBATCH_HYBRID_GPU=1: the gpu tests fail, not skip, if no GPU is usable.
# CHAINER_CUDNN is left to the package (it turns a missing cuDNN off).
export PYTHONPATH="$site:$PWD" MPLBACKEND=Agg MINIBATCH_HYBRID_GPU=1
export PYTHONDONTWRITEBYTECODE=1 REHEARSE

# step NAME MAX_SECONDS KEY_FUNCTION COMMAND...: runs COMMAND under the
# smaller of MAX_SECONDS and the time left, appends its output to log.txt,
# records a row; KEY_FUNCTION, given the output file and the exit status,
# prints the key figure and returns the verdict (0: ok), so that a step
# expected to fail (rehearsing) can be ok.
step() {
    local name=$1 max=$2 key=$3
    shift 3
    local left=$((deadline - $(date +%s)))
    (( left < max )) && max=$left
    if (( max < 5 )); then
        rows+=("$(printf '%-12s %-4s %6s  %s' "$name" FAIL - \
            'not run: the time budget is spent')")
        status=1
        return
    fi
    local out=$work/$name.txt t0 rc verdict figure
    t0=$(date +%s.%N)
    timeout --kill-after=5 "$max" "$@" > "$out" 2>&1
    rc=$?
    local secs
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    { echo "=== $name ($*): exit $rc, $secs s"; cat "$out"; echo; } >> "$LOG"
    figure=$("$key" "$out" "$rc")
    local ok=$?
    if (( rc == 124 || rc == 137 )); then
        figure="timed out after $max s; $figure"
        ok=1
    fi
    if (( ok == 0 )); then
        verdict=ok
    else
        verdict=FAIL
        local why
        why=$(reason "$out")
        [[ $figure == *"${why#verdict: }"* ]] ||
            figure="${figure:+$figure; }$why"
        status=1
        echo "----- $name failed (exit $rc); the last 30 lines of its output:"
        tail -n 30 "$out" | cut -c1-300
        echo "-----"
    fi
    echo "[$verdict] $name, $secs s: $figure"
    rows+=("$(printf '%-12s %-4s %6s  %s' "$name" "$verdict" "$secs" \
        "$figure")")
}

# The reason of a failure, for its row: a GPU test's, or the last line.
reason() {
    { grep -m1 -E 'MINIBATCH_HYBRID_GPU=1 asks' "$1" ||
        grep -m1 -E '^FAILED |^E {3,}[^ ]' "$1" ||
        grep -v '^\s*$' "$1" | tail -1; } | cut -c1-200
}
exit_ok() { return "$2"; }   # the step's own exit status decides

key_install() {
    echo "$(ls gpu-wheels/*.whl 2>/dev/null | wc -l) wheels into $site"
    exit_ok "$@"
}
key_smi() {
    grep -m1 -E ', [0-9]+ MiB' "$1"
    exit_ok "$@"
}
key_runtime() {
    grep -m1 '^verdict:' "$1" | cut -d' ' -f2- | cut -c1-160
    [[ $2 == 0 ]] || return 1
    # Rehearsing, CuPy's libraries must load and no GPU be found.
    [[ $REHEARSE == 1 ]] || return 0
    grep -q '^verdict: CuPy .* no GPU' "$1"
}
pytest_summary() { grep -E '^=*.* in [0-9.]+s' "$1" | tail -1 | tr -d '='; }
key_pytest() {
    pytest_summary "$1"
    [[ $2 == 0 ]] || return 1
    ! grep -qE '[0-9]+ skipped' <(pytest_summary "$1")
}
# Rehearsing without a GPU: every gpu test must fail (none pass or skip),
# each with the reason; the first reason is shown.
key_all_fail() {
    local summary listed bad
    summary=$(pytest_summary "$1")
    # A test failed at its setup (conftest.py) is an error: both count.
    listed=$(grep -cE '^(FAILED|ERROR) ' "$1")
    bad=$(grep -oE '[0-9]+ (failed|errors?)' <<< "$summary" |
        awk '{n += $1} END {print n + 0}')
    echo "$summary; $(grep -m1 -oE 'MINIBATCH_HYBRID_GPU=1 asks .*' "$1" |
        cut -c1-150)"
    [[ $2 != 0 ]] && ! grep -qE '[0-9]+ (passed|skipped)' <<< "$summary" &&
        (( bad == listed && listed > 0 ))
}
key_reproduce() {
    if [[ $REHEARSE == 1 ]]; then  # the GPU refused in one line
        grep -m1 -E '^minibatch-hybrid: ' "$1" | cut -c1-200
        [[ $2 != 0 ]] && ! grep -q Traceback "$1" &&
            grep -q "cannot use device '@cupy:0'" "$1"
        return
    fi
    grep -m1 'normal / hybrid final loss' "$1"
    [[ $2 == 0 ]] || return 1
    cp "$work/reproduce/loss.png" "$OUT/reproduce-loss.png" &&
        cp "$work/reproduce/losses.json" "$OUT/reproduce-losses.json"
}
key_throughput() {
    echo "model-steps/s: $(grep '^K=' "$1" |
        awk '{printf "%s %s; ", $1, $2}' | sed 's/; $//')"
    exit_ok "$@"
}

echo "GPU check$([[ $REHEARSE == 1 ]] && echo ', rehearsal (no GPU)'):" \
    "$py, logs in $OUT"

step install 60 key_install "$py" -m pip install --quiet --no-index \
    --no-deps --target "$site" gpu-wheels/*.whl

if [[ $REHEARSE == 1 ]]; then
    rows+=("$(printf '%-12s %-4s %6s  %s' nvidia-smi skip - \
        'rehearsal: no GPU')")
else
    step nvidia-smi 30 key_smi bash -c 'nvidia-smi; nvidia-smi \
        --query-gpu=name,driver_version,memory.total --format=csv,noheader'
fi

step runtime 60 key_runtime "$py" -W error - <<'PY'
from minibatch_hybrid._compat import chainer
import numpy
from minibatch_hybrid import _compat
cuda = chainer.backends.cuda
print('numpy', numpy.__version__, '| layer applied:', _compat.APPLIED)
if not cuda.available:
    print('verdict: CuPy cannot be imported:',
          repr(getattr(cuda, '_resolution_error', None)))
    raise SystemExit(1)
import warnings
try:
    count = cuda.cupy.cuda.runtime.getDeviceCount()
    name = cuda.cupy.cuda.runtime.getDeviceProperties(0)['name']
    name = name.decode() if isinstance(name, bytes) else name
except cuda.cupy.cuda.runtime.CUDARuntimeError as e:
    count, name = 0, '{}'.format(e)
with warnings.catch_warnings():
    if not count:  # CuPy says it cannot count the GPUs: that is below
        warnings.filterwarnings('ignore', 'Failed to detect number of GPUs')
    chainer.print_runtime_info()
print('cuDNN enabled:', cuda.cudnn_enabled, '| use_cudnn:',
      chainer.config.use_cudnn)
if count:
    print('verdict: CuPy {}, {} GPU(s): {}'.format(
        cuda.cupy.__version__, count, name))
else:
    print('verdict: CuPy {} imports, no GPU: {}'.format(
        cuda.cupy.__version__, name))
    raise SystemExit(0 if __import__('os').environ.get('REHEARSE') == '1'
                     else 1)
PY

# addopts cleared: no nbmake there, and only these tests run.
pytest=("$py" -m pytest -q -o addopts= -p no:cacheprovider -rfEs
        --tb=short)
step cupy-stack 90 key_pytest "${pytest[@]}" tests/test_cupy_stack.py

gpu_key=key_pytest
[[ $REHEARSE == 1 ]] && gpu_key=key_all_fail
step gpu-tests 240 "$gpu_key" "${pytest[@]}" -m gpu tests/test_gpu.py \
    -k 'not users_chain'
step resume 120 "$gpu_key" "${pytest[@]}" -m gpu tests/test_gpu.py \
    -k users_chain

step reproduce 120 key_reproduce "$py" -m minibatch_hybrid.cli reproduce \
    -d @cupy:0 -e 40 -o "$work/reproduce"

if [[ $REHEARSE == 1 ]]; then  # the code path, on the CPU, small
    throughput=(--device @numpy --replicas 64,256 --epochs 2 --repeat 1)
else
    throughput=(--device @cupy:0 --replicas 1024,4096,16384,65536
                --epochs 2 --repeat 3)
fi
step throughput 180 key_throughput "$py" - "${throughput[@]}" \
    --json "$OUT/throughput.json" <<'PY'
"""Model-steps per second of the numpy engine's ensemble (CuPy on a GPU)."""
import argparse
import json
import statistics
import time

import numpy

from minibatch_hybrid._compat import chainer  # noqa: F401 (first)
from minibatch_hybrid.core.data import make_sin_dataset
from minibatch_hybrid.core.device import get_device
from minibatch_hybrid.core.engine import ChainerEngine
from minibatch_hybrid.core.loop import train
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.model import make_optimizer
from minibatch_hybrid.engines.stacked import Ensemble
from minibatch_hybrid.experiments.bench import study_schedules
from minibatch_hybrid.schedules import parse_schedule

parser = argparse.ArgumentParser()
parser.add_argument('--device')
parser.add_argument('--replicas')
parser.add_argument('--epochs', type=int)
parser.add_argument('--repeat', type=int)
parser.add_argument('--json')
args = parser.parse_args()
device = get_device(args.device)
dataset = make_sin_dataset(1000)
steps = -(-len(dataset) // 10)  # the post's batches of 10
# 64 distinct replicas, repeated: building 65536 Chainer models would cost
# minutes of CPU; the orders are each replica's own (the study's).
rows = []


def sync():
    if device.xp is not numpy:
        device.device.synchronize()


for k in [int(k) for k in args.replicas.split(',')]:
    t0 = time.perf_counter()
    ensemble = Ensemble.from_seeds(range(64))
    for name, param in ensemble.namedparams():
        reps = (-(-k // 64),) + (1,) * (param.ndim - 1)
        param.array = numpy.ascontiguousarray(
            numpy.tile(param.array, reps)[:k])
    ensemble.to_device(device)
    engine = ChainerEngine(ensemble, make_optimizer(ensemble))
    schedules = [parse_schedule(text, seed) for seed, text in
                 study_schedules(k, epochs=args.epochs)]
    # A warm-up round, untimed: CuPy compiles its kernels, cuBLAS starts.
    train(engine, None, dataset, schedules, args.epochs, train_loss='never')
    sync()
    setup = time.perf_counter() - t0
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        train(engine, None, dataset, schedules, args.epochs,
              train_loss='never')
        sync()
        times.append(time.perf_counter() - t0)
    rate = k * steps * args.epochs / statistics.median(times)
    rows.append({'replicas': k, 'model_steps_per_s': rate,
                 'seconds': times, 'setup_and_warmup_s': setup})
    print('K={} {:.3g} model-steps (median of {} rounds of {} epochs: '
          '{:.3f} s; {:.3f} .. {:.3f}; setup and warm-up {:.1f} s)'.format(
              k, rate, args.repeat, args.epochs, statistics.median(times),
              min(times), max(times), setup), flush=True)
    del engine, ensemble
with open(args.json, 'w') as f:
    json.dump({'device': str(device), 'epochs': args.epochs,
               'rows': rows}, f, indent=1)
PY

# The native engine's CUDA port.  The CPU kernels are built here if they
# can be (for the array-by-array comparison; the digest needs none).
key_native_bits() {
    local digest
    digest=$(grep -m1 -oE '^digest (GPU|host).*: [0-9a-f]{12}' "$1" |
        awk '{print $NF}')
    local cpu
    cpu=$(grep -m1 '^against NativeEnsemble' "$1" | cut -d: -f2- |
        cut -c2-90)
    if [[ $REHEARSE == 1 ]]; then  # the GPU refused, the host the same bits
        echo "$(grep -m1 -oE '^GPU: cannot use .*' "$1" | cut -c6-120);" \
            "on the host: $(grep -m1 -oE '^verdict: [^(]*' "$1" |
            cut -c10- | sed 's/ *$//'), $digest..; CPU: $cpu"
        [[ $2 == 3 ]] && grep -q '^GPU: cannot use' "$1" &&
            grep -q '^verdict: same bits' "$1"
        return
    fi
    echo "$(grep -m1 -oE '^verdict: [^(]*' "$1" | cut -c10- |
        sed 's/ *$//'), digest $digest.. (the constant's:" \
        "$(grep -m1 '^digest constant' "$1" | awk '{print $NF}' |
        cut -c1-12)..); CPU: $cpu"
    [[ $2 == 0 ]] && grep -q '^verdict: same bits' "$1"
}
# The CPU kernels for this Python, if a compiler is there (never fatal),
# then the check.
native_build='"$0" -c "import minibatch_hybrid.kernels as k
raise SystemExit(0 if k.available() else 1)" 2>/dev/null ||
    timeout 90 "$0" setup.py -q build_ext --inplace > "$1" 2>&1 ||
    echo "(the CPU kernels did not build here: $(tail -1 "$1"))"
shift; exec "$0" scripts/gpu_native_check.py "$@"'
native=(--device @cupy:0)
[[ $REHEARSE == 1 ]] && native+=(--fallback-host)
step native-bits 150 key_native_bits bash -c "$native_build" "$py" \
    "$work/native-build.txt" bits "${native[@]}"

key_native_speed() {
    local rates study limit
    rates=$(grep '^K=' "$1" | awk '{printf "%s %s; ", $1, $2}')
    study=$(grep -m1 -oE '^study K=.*projected [0-9]+ s' "$1" |
        sed 's/^study //')
    limit=$(grep -m1 -oE 'orders on the CPU [0-9]+% of it: limited by [^)]*' \
        "$1")
    echo "${rates}${study:-no study projection}${limit:+ ($limit)}"
    if [[ $REHEARSE == 1 ]]; then
        [[ $2 == 3 ]] && grep -q '^study K=' "$1"
        return
    fi
    [[ $2 == 0 ]] && grep -q '^study K=' "$1"
}
if [[ $REHEARSE == 1 ]]; then  # the host: small K, one epoch
    speed=(--replicas 16,32 --epochs 1 --repeat 1 --study-replicas 32
           --study-epochs 2 --budget 40)
else
    speed=(--replicas 1024,4096,16384,65536 --epochs 3 --repeat 3
           --study-replicas 8192 --study-epochs 6)
    left=$((deadline - $(date +%s) - 25))
    speed+=(--budget $((left < 170 ? left : 170)))
fi
step native-speed 200 key_native_speed "$py" scripts/gpu_native_check.py \
    speed "${native[@]}" "${speed[@]}" --json "$OUT/native-speed.json"

# The files that come back, table.txt (written below) included.
files=$(($(find "$OUT" -type f ! -name table.txt | wc -l) + 1))
rows+=("$(printf '%-12s %-4s %6s  %s' files \
    "$( ((files <= 8)) && echo ok || echo FAIL)" - "$files in $OUT (<= 8)")")
((files <= 8)) || status=1
total=$(($(date +%s) - started))
{
    echo "== GPU check$([[ $REHEARSE == 1 ]] && echo ' (rehearsal)'):" \
        "$(date -u +%FT%TZ), $total s =="
    printf '%-12s %-4s %6s  %s\n' step ok? seconds 'key figure'
    printf '%s\n' "${rows[@]}"
    echo "verdict: $( ((status == 0)) && echo ok || echo FAIL)"
} > "$OUT/table.txt"
rm -rf "$work"
cat "$OUT/table.txt"
exit $status
