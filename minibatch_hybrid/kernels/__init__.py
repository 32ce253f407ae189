"""The compiled kernels: one arithmetic on every CPU.

The optional extension ``_native`` (C, built where a compiler is present)
trains an epoch of many replicas per call.  Every *kernel set*
(``'avx512'``, ``'avx2'``, ``'c'``) gives the same bits; the fastest the
CPU runs is used unless ``MINIBATCH_HYBRID_KERNELS`` names one.  See
``docs/performance.md``.
"""
import contextlib
import os
import re

from minibatch_hybrid.errors import Error

try:
    from minibatch_hybrid.kernels import _native
    _IMPORT_ERROR = None
except ImportError as error:  # not built: no C compiler at install time
    _native = None
    _IMPORT_ERROR = error

#: The folder of the kernels' sources.
HERE = os.path.dirname(os.path.abspath(__file__))


def layout_constant(name):
    """Returns the integer ``#define`` ``name`` of ``_native_layout.h``."""
    with open(os.path.join(HERE, '_native_layout.h'), encoding='utf-8') as f:
        match = re.search(r'^#define {} ([0-9]+)$'.format(name), f.read(),
                          re.MULTILINE)
    return int(match.group(1))


#: Replicas per group (vector lanes of the widest kernel set).
GROUP = layout_constant('GROUP')

#: Points per batch of evaluation.
EVAL_BATCH = layout_constant('EVAL_BATCH')

#: The environment variable that forces a kernel set.
KERNELS_VARIABLE = 'MINIBATCH_HYBRID_KERNELS'

#: The largest ``n_units`` the kernels train (``None`` if not built).
MAX_UNITS = _native.MAX_UNITS if _native is not None else None


class NativeUnavailable(Error, RuntimeError):
    """The compiled kernels were asked for but cannot run here."""


def available():
    """Returns whether the compiled kernels are built and the CPU runs them."""
    return _native is not None and bool(_native.supported_kernels())


def import_error():
    """Returns why the extension did not import (None if it did)."""
    return _IMPORT_ERROR


_environment_applied = False


def _apply_environment():
    """Selects the kernel set named by ``MINIBATCH_HYBRID_KERNELS``, once."""
    global _environment_applied
    if _environment_applied:
        return
    name = os.environ.get(KERNELS_VARIABLE, '').strip()
    if name:
        try:
            _native.set_kernels(name)
        except ValueError as e:
            raise NativeUnavailable(
                '{}={}: {}; unset it to use the fastest set'.format(
                    KERNELS_VARIABLE, name, e)) from e
    _environment_applied = True


def check_environment():
    """Applies ``MINIBATCH_HYBRID_KERNELS`` now, where the kernels run
    (at a command's start: a bad value raises :class:`NativeUnavailable`
    before any work)."""
    if available():
        _apply_environment()


def check_available():
    """Raises :class:`NativeUnavailable` saying how to get the kernels.

    Every entry point calls it; the first call applies
    ``MINIBATCH_HYBRID_KERNELS``.
    """
    if _native is None:
        raise NativeUnavailable(
            'the compiled kernels (minibatch_hybrid.kernels._native) are not '
            'built: {}. Install a C compiler (e.g. apt install gcc) and '
            'reinstall the package (pip install -e . in the repository), or '
            'use the numpy engine (--engine numpy)'.format(_IMPORT_ERROR))
    if not _native.supported_kernels():
        raise NativeUnavailable(
            'this CPU has no fused multiply-add (x86-64 without FMA3), which '
            'the native engine needs; use the numpy engine (--engine numpy)')
    _apply_environment()


def supported_kernels():
    """Returns the kernel sets this CPU runs, slowest first (empty if the
    extension is not built or the CPU has no FMA)."""
    return list(_native.supported_kernels()) if _native else []


def current():
    """Returns the kernel set in use: ``'avx512'``, ``'avx2'`` or ``'c'``."""
    check_available()
    return _native.get_kernels()


@contextlib.contextmanager
def using_kernels(name):
    """Runs a block with a kernel set (one of :func:`supported_kernels`);
    the choice is global to the process, the previous one restored."""
    check_available()
    previous = _native.set_kernels(name)
    try:
        yield
    finally:
        _native.set_kernels(previous)


@contextlib.contextmanager
def ieee_subnormals():
    """Runs a block with the kernels keeping subnormals (IEEE): slower on
    Intel CPUs; for checking that flushing changes nothing."""
    check_available()
    previous = _native.set_flush_subnormals(False)
    try:
        yield
    finally:
        _native.set_flush_subnormals(previous)


def module():
    """Returns the extension module itself, checked (for its calls)."""
    check_available()
    return _native
