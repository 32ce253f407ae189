"""Importing the package on today's stacks, and its warning filters."""
import subprocess
import sys

import pytest

from minibatch_hybrid import _compat


@pytest.mark.parametrize('first', [
    'import minibatch_hybrid as mh; mh.MyChain',
    'from minibatch_hybrid import iterators',
    'import minibatch_hybrid.schedules'])
def test_import_is_silent_under_warnings_as_errors(first):
    # The root imports nothing (lazily); a name of it, or a subpackage
    # that uses Chainer, imports chainer through the layer.
    proc = subprocess.run(
        [sys.executable, '-W', 'error', '-c',
         first + '; import chainer; print(chainer.__version__)'],
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


@pytest.mark.slow
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


# Run in a fresh process: imports chainer as the layer does (its fixes for
# numpy.distutils and numpy.sctypes applied, from _compat.py loaded alone:
# importing it through the package would import chainer first) but with no
# filter, and prints every warning the import emits.
RECORD_IMPORT_WARNINGS = """
import importlib.util, json, sys, warnings
spec = importlib.util.spec_from_file_location('compat_alone', sys.argv[1])
compat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    compat._ensure_numpy_distutils()
    compat._ensure_numpy_sctypes()
    import chainer
print(json.dumps({'applied': compat.APPLIED, 'cupy': 'cupy' in sys.modules,
                  'warnings': [[w.category.__name__, str(w.message)]
                               for w in caught]}))
"""


def _version(name):
    from importlib import metadata
    return tuple(int(part) for part in metadata.version(name).split('.')[:2])


def test_the_filters_match_the_messages_chainer_emits():
    import builtins
    import json
    import re
    proc = subprocess.run(
        [sys.executable, '-c', RECORD_IMPORT_WARNINGS, _compat.__file__],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    recorded = json.loads(proc.stdout)
    assert recorded['warnings'], 'chainer\'s import emitted no warning'

    def matches(flt, category, text):
        # As the warnings module matches a filter: the category or a
        # subclass, the regex from the start of the message, ignoring case.
        return issubclass(category, flt[0]) and \
            re.compile(flt[1], re.I).match(text) is not None

    # CuPy's filters (a missing cuDNN or NCCL) are used where CuPy imports
    # (the GPU machine, the rehearsal), never in the CPU legs.
    filters = _compat.IMPORT_WARNINGS + _compat.CUPY_IMPORT_WARNINGS
    used = set()
    for name, text in recorded['warnings']:
        hits = [flt for flt in filters
                if matches(flt, getattr(builtins, name), text)]
        # Every warning of the import is one the layer hides: none other
        # (then -W error would fail the import), and none hidden by chance.
        assert hits, 'no filter for {}: {!r}'.format(name, text)
        used.update(hits)
    # Each filter is for a warning of some supported stack; those that
    # matched nothing here are the ones whose cause this stack lacks.
    absent = set()
    if 'numpy.distutils stub' in recorded['applied']:
        # Python >= 3.12: no numpy.distutils, which warns, and imports
        # setuptools' msvccompiler, which warns too.
        absent |= {flt for flt in _compat.IMPORT_WARNINGS
                   if 'distutils' in flt[1] or 'msvccompiler' in flt[1]}
    # setuptools says pkg_resources is deprecated with a DeprecationWarning
    # up to 80.8 and a UserWarning from 80.9: one of the two filters.
    absent.add((UserWarning if _version('setuptools') < (80, 9)
                else DeprecationWarning, r'pkg_resources is deprecated as an '
                'API'))
    assert set(_compat.IMPORT_WARNINGS) - used == absent, \
        recorded['warnings']
    if not recorded['cupy']:  # CuPy's filters hide nothing else
        assert not used & set(_compat.CUPY_IMPORT_WARNINGS)


def test_chainer_works_through_the_layer():
    import numpy
    import chainer.functions as F
    x = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    y = F.as_strided(x, (3,), (2,))  # uses numpy.sctypes
    assert y.array.tolist() == [0, 2, 4]
