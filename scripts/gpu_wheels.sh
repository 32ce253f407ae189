#!/usr/bin/env bash
# Prepares gpu-wheels/ here (with network) for scripts/gpu_check.sh on the
# lent GPU machine (no network; Python 3.12, NumPy 2, CuPy 14 already
# there): chainer 7.8.1 built as a pure-Python wheel, and the small pure
# Python packages chainer imports. gpu-wheels/ is git-ignored; name it in
# the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=gpu-wheels
rm -rf "$out" && mkdir -p "$out"
constraints=$PWD/requirements/build-constraints.txt
PIP_CONSTRAINT=$constraints PIP_BUILD_CONSTRAINT=$constraints \
    python3 -m pip wheel --no-deps -w "$out" chainer==7.8.1
# pytest-timeout: pytest.ini sets a timeout, an unknown option without it.
for pkg in 'setuptools==73.0.1' 'six' 'filelock' 'typing_extensions' \
        'pytest-timeout'; do
    python3 -m pip download --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d "$out" "$pkg"
done
ls -la "$out"
