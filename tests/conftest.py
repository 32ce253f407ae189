import pytest

import minibatch_hybrid  # NOQA: imports chainer through the compat layer


def pytest_collection_modifyitems(config, items):
    import chainer
    if chainer.backends.cuda.available:
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU with CuPy')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)
