"""The compiled kernels: one arithmetic on every CPU.

NumPy runs an ensemble step as a few dozen array operations, each a pass
over memory, plus Chainer's bookkeeping per step.  The optional extension
``minibatch_hybrid.kernels._native`` (C, built by ``pip install`` where a C
compiler is present) trains a whole epoch of many replicas per call:
forward, backward and Adam of each mini-batch step, fused.  This package
loads it, chooses its kernel set and hands out its calls; the native
engine (:mod:`~minibatch_hybrid.engines.native`) and the single model's
Adam (:mod:`~minibatch_hybrid.core.adam`) use it.

One arithmetic
    Replicas are packed 16 to a group, one per vector lane, and every
    operation is elementwise across lanes.  Each output of a matrix product
    is one chain of fused multiply-adds over its reduction index, in order;
    Adam performs Chainer's float32 operations in Chainer's order.  The
    body of the kernels is written once (``_native_body.h``) and compiled
    per *kernel set*: ``'avx512'`` (16 lanes), ``'avx2'`` (8 lanes) and
    ``'c'`` (portable C: GCC's generic vectors of 8 lanes on x86, 4
    elsewhere, and ``fmaf``).  All perform the same operations on every
    lane, so **every kernel set gives the same bits**, on every CPU that
    runs it.  The fastest set the CPU runs is used;
    ``MINIBATCH_HYBRID_KERNELS=c`` (or ``avx2``, ``avx512``) forces one.
    The kernels need a fused multiply-add in hardware and x86's or ARM's
    flush-to-zero: x86-64 CPUs with FMA3 (Intel since Haswell, 2013; AMD
    since Piledriver, 2012) and 64-bit ARM CPUs; elsewhere the ``auto``
    engine is the numpy one.

Subnormals
    Adam's first moment of a weight whose gradient is zero (a dead ReLU
    unit) decays by 0.9 per step into the subnormal range, where Intel
    cores take a microcode assist per operand.  The kernels flush
    subnormals to zero (MXCSR FTZ and DAZ on x86, FPCR.FZ on ARM), set on
    entry and restored on exit of every call, in the thread that runs it.
    :func:`ieee_subnormals` turns that off, to check that it changes no
    result (see ``docs/performance.md``).
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
    """Returns the integer ``#define`` ``name`` of ``_native_layout.h``,
    the layout the kernels share on the CPU and on a GPU: the one place of
    :data:`GROUP` and :data:`EVAL_BATCH` (the compiled module exports the
    same values, which a test compares)."""
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

#: The largest ``n_units`` the native engine's kernels train (``None`` where
#: the extension is not built): a group's parameters are indexed by ``int``.
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
    """Applies ``MINIBATCH_HYBRID_KERNELS`` now, refusing a bad value early.

    Otherwise the variable is read at the first compiled call, after any
    work done before it.  A command calls this at its start.  Nothing is
    done where the kernels are not built or the CPU runs none of them:
    there is no set to select, and a compiled call says so itself.

    Raises:
        NativeUnavailable: The variable names a kernel set that does not
            exist or that this CPU cannot run.

    """
    if available():
        _apply_environment()


def check_available():
    """Raises :class:`NativeUnavailable` saying how to get the kernels.

    The first call also applies ``MINIBATCH_HYBRID_KERNELS``; every entry
    point below calls it, so no kernel runs in another set than the one
    asked for.
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
    """Returns the kernel sets this CPU runs, slowest first.

    ``['c']``, ``['c', 'avx2']`` or ``['c', 'avx2', 'avx512']``; empty if
    the extension is not built or the CPU has no FMA.
    """
    return list(_native.supported_kernels()) if _native else []


def current():
    """Returns the kernel set in use: ``'avx512'``, ``'avx2'`` or ``'c'``."""
    check_available()
    return _native.get_kernels()


@contextlib.contextmanager
def using_kernels(name):
    """Runs a block with a kernel set (one of :func:`supported_kernels`).

    The choice is global to the process; the previous one is restored.
    """
    check_available()
    previous = _native.set_kernels(name)
    try:
        yield
    finally:
        _native.set_kernels(previous)


@contextlib.contextmanager
def ieee_subnormals():
    """Runs a block with the kernels keeping subnormals (IEEE).

    Slower on Intel CPUs; for checking that flushing changes nothing.
    """
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
