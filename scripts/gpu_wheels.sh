#!/usr/bin/env bash
# Wheels for the GPU check (scripts/gpu_check.sh), made here with network.
#
#     bash scripts/gpu_wheels.sh              # gpu-wheels/: to carry
#     bash scripts/gpu_wheels.sh --rehearsal  # and the rehearsal's stack
#
# gpu-wheels/ (a few MB, carried to the lent GPU machine, which has no
# network but has Python 3.12, NumPy 2.5 and CuPy 14): chainer 7.8.1 built
# as a pure-Python wheel, and the small pure-Python packages chainer and
# the tests import there.
#
# --rehearsal also fetches what the GPU machine has and this one lacks, for
# Python 3.12 on x86-64 Linux, into gpu-rehearsal-wheels/ (about 1 GB, never
# carried): cupy-cuda13x 14.2.0, NumPy 2.5, the CUDA 13 library wheels
# (cupy-cuda13x[ctk]), pytest and matplotlib; then makes
# .venv-gpu-rehearsal (Python 3.12) from both folders without network, as
# the check installs there.  `bash scripts/gpu_check.sh --rehearse` runs in
# it.  Both folders and the venv are git-ignored; a folder already complete
# is kept (delete it to fetch again), the venv is made anew each time.
set -euo pipefail
cd "$(dirname "$0")/.."
rehearsal=0
[[ "${1:-}" == --rehearsal ]] && rehearsal=1
download() {  # download DIR SPEC...: binary wheels for CPython 3.12
    local dir=$1
    shift
    python3 -m pip download --quiet --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$dir" "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || :; }
}

out=gpu-wheels
if [[ ! -s $out/.complete ]]; then
    rm -rf "$out" && mkdir -p "$out"
    constraints=$PWD/requirements/build-constraints.txt
    PIP_CONSTRAINT=$constraints PIP_BUILD_CONSTRAINT=$constraints \
        python3 -m pip wheel --quiet --no-deps -w "$out" chainer==7.8.1
    # pytest-timeout: pytest.ini sets a timeout, an unknown option without.
    for pkg in 'setuptools==73.0.1' 'six' 'filelock' 'typing_extensions' \
            'pytest-timeout'; do
        download "$out" --no-deps "$pkg"
    done
    ls "$out" > "$out/.complete"
fi
du -sh "$out"
[[ $rehearsal == 1 ]] || exit 0

big=gpu-rehearsal-wheels
if [[ ! -s $big/.complete ]]; then
    mkdir -p "$big"
    # With their dependencies, resolved for Python 3.12 (setuptools is
    # pinned by gpu-wheels/; the rest is what the GPU machine has).
    download "$big" 'cupy-cuda13x[ctk]==14.2.0' 'numpy>=2.5,<2.6' \
        'pytest>=8' 'matplotlib>=3.10,<3.12'
    ls "$big" > "$big/.complete"
fi
echo "rehearsal wheels: $(du -sh "$big" | cut -f1) (largest below)"
ls -S -s -h "$big" | sed -n 2,8p

# Python 3.12 as the Makefile finds it: on the PATH, or pyenv's.
py=${PYTHON312:-$(python3.12 -c 'import sys; print(sys.executable)' \
    2>/dev/null || true)}
[[ -n $py ]] || py=$(ls "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 \
    2>/dev/null | tail -1)
[[ -x $py ]] || { echo 'gpu_wheels.sh: no Python 3.12 found (PYTHON312=)' >&2
                  exit 1; }
venv=.venv-gpu-rehearsal
rm -rf "$venv"
"$py" -m venv "$venv"
# No network, as on the GPU machine: the stack from the big folder, the
# carried wheels as the check installs them (setuptools 73 wins).
"$venv/bin/python" -m pip install --quiet --no-index --find-links "$big" \
    "$big"/*.whl
"$venv/bin/python" -m pip install --quiet --no-index --no-deps \
    "$out"/*.whl
"$venv/bin/python" -m pip list 2>/dev/null |
    grep -iE '^(chainer|cupy-cuda13x|numpy|nvidia-[a-z-]+|cuda-[a-z-]+|setuptools|pytest) '
