"""Importing the package on today's stacks, and its warning filters."""
import subprocess
import sys

from minibatch_hybrid import _compat


def test_import_is_silent_under_warnings_as_errors():
    proc = subprocess.run(
        [sys.executable, '-W', 'error', '-c',
         'import minibatch_hybrid, chainer; print(chainer.__version__)'],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '7.8.1'
    assert proc.stderr == ''


def test_plain_chainer_import_needs_the_layer():
    # Without the layer the same import warns (the default stack) or fails
    # (NumPy 2: numpy.sctypes; Python 3.12: numpy.distutils).
    proc = subprocess.run(
        [sys.executable, '-W', 'error::DeprecationWarning', '-c',
         'import chainer'], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    if not _compat.APPLIED:  # Python 3.11, NumPy 1.x
        assert 'DeprecationWarning' in proc.stderr
    else:
        assert ('sctypes' in proc.stderr or 'distutils' in proc.stderr or
                'DeprecationWarning' in proc.stderr), proc.stderr


def test_the_filters_do_not_outlive_the_import():
    # The known messages are ignored during chainer's import only: issued
    # afterwards, in a process where the package is imported, they are
    # errors under -W error, as any warning.
    for category, message in _compat.IMPORT_WARNINGS:
        text = message.replace('\\s*', ' ').replace('\\', '')
        code = ('import minibatch_hybrid, warnings\n'
                'warnings.warn({!r}, {})'.format(text, category.__name__))
        proc = subprocess.run([sys.executable, '-W', 'error', '-c', code],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0, (message, proc.stderr)
        assert category.__name__ in proc.stderr


def test_the_filters_match_the_messages_chainer_emits():
    # Each filter matches its own message (and no other text): a filter
    # that matched nothing would hide nothing and let the import warn.
    import re
    for category, message in _compat.IMPORT_WARNINGS:
        text = message.replace('\\s*', '\n').replace('\\', '')
        assert re.match(message, text)
        assert not re.match(message, 'chainer: cupy version mismatch')


def test_chainer_works_through_the_layer():
    import numpy
    import chainer.functions as F
    x = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    y = F.as_strided(x, (3,), (2,))  # uses numpy.sctypes
    assert y.array.tolist() == [0, 2, 4]
