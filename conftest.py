"""pytest configuration for tests/, the package's doctests and notebooks/."""
import os

import pytest

# chainer through the compat layer, before any test or notebook imports it
from minibatch_hybrid._compat import chainer

# The notebooks run in quick mode (see each notebook's first code cell);
# their kernels inherit this environment.
os.environ.setdefault('MINIBATCH_HYBRID_QUICK', '1')

#: Set to 1 where a GPU was asked for (scripts/gpu_check.sh): the tests
#: marked ``gpu`` then fail, not skip, when CuPy or the GPU cannot be used.
GPU_REQUIRED = os.environ.get('MINIBATCH_HYBRID_GPU') == '1'


def _gpu_unusable():
    """Why CuPy cannot run here, or None where it can."""
    if not chainer.backends.cuda.available:
        reason = getattr(chainer.backends.cuda, '_resolution_error', None)
        return 'CuPy cannot be used: {!r}'.format(reason) if reason else \
            'CuPy cannot be used (chainer.backends.cuda.available is False)'
    # CuPy imports where its CUDA libraries load, GPU or not.
    import cupy
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as e:  # no driver, no device
        return 'CuPy sees no GPU: {}'.format(e)
    return None if count > 0 else 'CuPy sees no GPU'


def pytest_collection_modifyitems(config, items):
    reason = _gpu_unusable()
    if reason is None or GPU_REQUIRED:
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU with CuPy ({})'.format(
        reason))
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)


def pytest_runtest_setup(item):
    if GPU_REQUIRED and 'gpu' in item.keywords:
        reason = _gpu_unusable()
        if reason is not None:
            pytest.fail('MINIBATCH_HYBRID_GPU=1 asks for a GPU, but ' +
                        reason, pytrace=False)
