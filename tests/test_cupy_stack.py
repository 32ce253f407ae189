"""The CuPy stack chainer 7.8.1 meets on the GPU machine, checked here.

These tests need CuPy importable (with its CUDA libraries), which the
project's usual environments do not have; they are skipped there.  The
rehearsal (``bash scripts/gpu_check.sh --rehearse``) runs them in
``.venv-gpu-rehearsal``: Python 3.12, NumPy 2.5, cupy-cuda13x 14.2.0 and the
CUDA 13 library wheels, no driver.  They check what a GPU cannot add: the
package imports under warnings as errors, chainer reports its runtime, and
every CuPy name chainer uses on this package's paths exists.
"""
import importlib
import operator
import re
import subprocess
import sys

import pytest

cupy = pytest.importorskip(
    'cupy', reason='CuPy is not importable here (see the rehearsal, '
    'docs/gpus.md)', exc_type=ImportError)

#: (name under ``cupy``, where chainer 7.8.1 uses it): every CuPy name read
#: on the paths this package takes on a GPU; chainer's sources, relative to
#: its package.  Names read as ``xp.NAME`` with ``xp`` CuPy count too.
CUPY_NAMES = [
    # backends/cuda.py, the imports that decide ``available``.
    ('cuda', 'backends/cuda.py: from cupy import cuda'),
    ('cuda.cublas', 'backends/cuda.py: from cupy.cuda import cublas'),
    ('ndarray', 'backends/cuda.py: from cupy import ndarray'),
    ('cuda.Device', 'backends/cuda.py: from cupy.cuda import Device'),
    ('cuda.Event', 'backends/cuda.py: from cupy.cuda import Event'),
    ('cuda.Stream', 'backends/cuda.py: from cupy.cuda import Stream'),
    ('_util.PerformanceWarning', 'backends/cuda.py: its first choice; '
     'cupy.util, the fallback, is gone'),
    ('__version__', 'backends/cuda.py: _cupy_major'),
    # backends/cuda.py, at import and in its helpers.
    ('get_default_memory_pool', 'backends/cuda.py: memory_pool'),
    ('get_default_pinned_memory_pool', 'backends/cuda.py: '
     'pinned_memory_pool'),
    ('cuda.Device.use', 'backends/cuda.py: GpuDevice.use'),
    ('cuda.Device.synchronize', 'backends/cuda.py: GpuDevice'),
    ('cuda.Device.id', 'backends/cuda.py: GpuDevice.device.id'),
    ('asarray', 'backends/cuda.py: to_gpu'),
    ('array', 'backends/cuda.py: to_gpu'),
    ('empty_like', 'backends/cuda.py: copy; utils/array.py'),
    ('copyto', 'backends/cuda.py: copy; backend.py: copyto'),
    ('memoize', 'backends/cuda.py: memoize (elementwise kernels cached)'),
    ('clear_memo', 'backends/cuda.py: clear_memo'),
    ('ElementwiseKernel', 'backends/cuda.py: elementwise (relu, Adam)'),
    ('ReductionKernel', 'backends/cuda.py: reduce'),
    ('RawKernel', 'backends/cuda.py: raw'),
    ('get_array_module', 'backends/cuda.py, backend.py: get_array_module'),
    ('fuse', 'backends/cuda.py: fuse'),
    # _runtime_info.py: chainer.print_runtime_info().
    ('__version__', '_runtime_info.py'),
    # links/connection/linear.py -> functions/connection/linear.py.
    ('dot', 'functions/connection/linear.py: xp.dot(x, W.T, out=y)'),
    ('empty', 'functions/connection/linear.py: xp.empty; '
     'optimizers/adam.py: cuda.cupy.empty; dataset/convert.py'),
    ('ndarray.dot', 'functions/loss/mean_squared_error.py: diff.dot(diff)'),
    ('ndarray.get', 'backends/_cpu.py: _array_to_cpu (serializers, '
     'reporter, to_cpu)'),
    # functions/activation/relu.py.
    ('maximum', 'functions/activation/relu.py: cuda.cupy.maximum'),
    # optimizers/adam.py: its state and its CUDA kernel.
    ('zeros_like', 'optimizers/adam.py: AdamRule.init_state'),
    # dataset/convert.py: concat_examples / to_device in the Updater.
    ('cuda.runtime.deviceSynchronize', 'dataset/convert.py: _array_to_gpu'),
    ('cuda.alloc_pinned_memory', 'dataset/convert.py: _array_to_gpu'),
    ('cuda.runtime.getDeviceCount', 'tests conftest.py: is a GPU there'),
]

#: Imported as modules by chainer, each guarded by its own try.
CUPYX_MODULES = ['cupyx', 'cupyx.scipy.linalg', 'cupyx.scipy.special']


@pytest.mark.parametrize('name,where', CUPY_NAMES,
                         ids=[name for name, _ in CUPY_NAMES])
def test_every_cupy_name_chainer_uses_here_exists(name, where):
    try:
        operator.attrgetter(name)(cupy)
    except AttributeError:
        pytest.fail('cupy.{} is missing (used in chainer/{})'.format(
            name, where))


@pytest.mark.parametrize('module', CUPYX_MODULES)
def test_the_cupyx_modules_chainer_imports_import(module):
    importlib.import_module(module)


def test_chainer_sees_cupy():
    import chainer
    cuda = chainer.backends.cuda
    assert cuda.available, getattr(cuda, '_resolution_error', None)
    assert cuda.cupy is cupy


def _run(code, *options):
    return subprocess.run([sys.executable] + list(options) + ['-c', code],
                          capture_output=True, text=True, timeout=300)


def test_the_package_imports_under_warnings_as_errors():
    # As a user runs it: CHAINER_CUDNN unset (the layer turns a missing
    # cuDNN off), warnings as errors.
    proc = _run('import minibatch_hybrid, chainer\n'
                'from minibatch_hybrid import _compat\n'
                'print(chainer.backends.cuda.available, _compat.APPLIED)',
                '-W', 'error')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('True '), proc.stdout
    assert proc.stderr == ''


def _driver_error():
    try:
        cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as e:
        return e
    return None


def test_chainer_prints_its_runtime_info():
    options = ['-W', 'error']
    if _driver_error() is not None:
        # Without a driver (the rehearsal) CuPy says it cannot count the
        # GPUs; with one, that warning is an error here too.
        options += ['-W', 'ignore:Failed to detect number of GPUs:'
                    'UserWarning']
    proc = _run('import minibatch_hybrid, chainer\n'
                'chainer.print_runtime_info()', *options)
    assert proc.returncode == 0, proc.stderr
    assert 'Chainer: 7.8.1' in proc.stdout
    assert 'CuPy:' in proc.stdout
    assert re.search(r'CuPy Version\s*: {}\n'.format(
        re.escape(cupy.__version__)), proc.stdout), proc.stdout
