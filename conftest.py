"""pytest configuration for tests/, the package's doctests and notebooks/."""
import os

import pytest

import minibatch_hybrid  # NOQA: imports chainer through the compat layer

# The notebooks run in quick mode (see each notebook's first code cell);
# their kernels inherit this environment.
os.environ.setdefault('MINIBATCH_HYBRID_QUICK', '1')


def pytest_collection_modifyitems(config, items):
    import chainer
    if chainer.backends.cuda.available:
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU with CuPy')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)
