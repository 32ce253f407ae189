#!/usr/bin/env bash
# The package as users install it: builds a wheel from this checkout,
# installs it (not editable) into a fresh virtual environment, and runs
# every command, in quick modes, from a folder outside the checkout.
#
#     bash scripts/check_wheel.sh [PYTHON]     # make test-wheel runs it
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${1:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_BUILD_CONSTRAINT=$root/requirements/build-constraints.txt
export PIP_CONSTRAINT="$PIP_BUILD_CONSTRAINT $root/requirements/numpy1.txt"

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet wheel
"$work/venv/bin/python" -m pip wheel --quiet --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/minibatch_hybrid-*.whl)
echo "built $(basename "$wheel")"
"$work/venv/bin/python" -m pip install --quiet "$wheel[distributed]"

cd "$work"   # nothing of the checkout is on the path from here
bin=$work/venv/bin
"$bin/python" - <<'PY'
import minibatch_hybrid, os
from minibatch_hybrid import kernels
assert 'site-packages' in minibatch_hybrid.__file__, minibatch_hybrid.__file__
kernels.check_available()
print('installed', minibatch_hybrid.__version__, 'from',
      os.path.dirname(minibatch_hybrid.__file__), 'kernels', kernels.current())
PY
"$bin/minibatch-hybrid" reproduce --quick -u 16 -o r > r.txt 2> r.err
"$bin/minibatch-hybrid" reproduce -e 4 -u 8 --engine native -o rn > rn.txt 2> rn.err
"$bin/minibatch-hybrid" study --quick -e 6 -u 8 -o s > s.txt 2> s.err
"$bin/minibatch-hybrid" study --quick -e 6 -u 8 --seeds 2 --chunk 1 \
    --workers 2 -o sd > sd.txt 2> sd.err
"$bin/minibatch-hybrid" sweep -e 4 --seeds 2 -u 8 --fractions 0,0.5,1 \
    -o w > w.txt 2> w.err
"$bin/minibatch-hybrid" bench -k 4 --warmup 2 --window 1 --repeat 1 \
    -o b > b.txt 2> b.err
for f in r/loss.png rn/config.json s/summary.json sd/final.csv w/sweep.csv \
         b/bench.json; do
    test -s "$f" || { echo "missing $f"; exit 1; }
done
echo "every command ran from $work with the installed wheel"
