"""Importing the package on today's stacks, and its warning filters."""
import subprocess
import sys
import warnings

from minibatch_hybrid import _compat


def test_import_is_silent_under_warnings_as_errors():
    proc = subprocess.run(
        [sys.executable, '-W', 'error', '-c',
         'import minibatch_hybrid, chainer; print(chainer.__version__)'],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '7.8.1'
    assert proc.stderr == ''


def test_plain_chainer_import_does_warn():
    # The filters are needed: without them the same import warns.
    proc = subprocess.run(
        [sys.executable, '-W', 'error::DeprecationWarning', '-c',
         'import chainer'], capture_output=True, text=True, timeout=120)
    if not _compat.APPLIED:  # the default stack: Python 3.11, NumPy 1.x
        assert proc.returncode != 0
        assert 'DeprecationWarning' in proc.stderr


def test_filters_are_only_the_known_messages():
    # The filters do not reach past the import: chainer's own warnings (its
    # version checks, say) stay visible.
    assert len(_compat.IMPORT_WARNINGS) == 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        warnings.warn('pkg_resources is deprecated as an API',
                      DeprecationWarning)
        warnings.warn('chainer: cupy version mismatch', UserWarning)
    assert len(caught) == 2


def test_chainer_works_through_the_layer():
    import numpy
    import chainer.functions as F
    x = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    y = F.as_strided(x, (3,), (2,))  # uses numpy.sctypes
    assert y.array.tolist() == [0, 2, 4]
