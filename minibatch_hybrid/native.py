"""Compiled kernels for the ensemble's step on the CPU (optional).

NumPy runs an ensemble step as a few dozen array operations: each small
matrix product is its own BLAS call and Adam makes twelve passes over the
weights.  The extension ``minibatch_hybrid._native`` (C, built by
``pip install`` when a C compiler is present) runs a replica's whole
forward pass, its whole backward pass, and Adam's update each in one call:

* The forward and backward passes compute what
  :class:`~minibatch_hybrid.functions.MLPLoss` computes, replica by replica,
  with register-blocked products in AVX-512 (``'avx512'``) or AVX2/FMA
  (``'avx2'``) where the CPU has them, and portable C (``'c'``) anywhere;
  the fastest the CPU runs is used.  The sums are taken in
  another order than NumPy's BLAS takes them, so the results equal NumPy's
  to float32 rounding, not bit for bit; they are the same bits on every run
  with the same kernels.  A replica's results still do not depend on the
  other replicas.
* Adam performs Chainer's float32 operations in Chainer's order
  (``-ffp-contract=off``), so it gives exactly the bits of
  :class:`chainer.optimizers.Adam`; :class:`~minibatch_hybrid.adam.FusedAdam`
  uses it whenever the extension is there.

Which arithmetic an ensemble uses is its *engine*: ``'numpy'`` (NumPy or
CuPy operations, as a single model), or ``'native'`` (these kernels, CPU
only).  :func:`resolve_engine` turns the user's choice into the name a run
records, e.g. ``'native-avx2'``; results of different engines are equal to
rounding only, so a study records its engine and does not mix them.
"""
import contextlib

try:
    from minibatch_hybrid import _native
    _IMPORT_ERROR = None
except ImportError as error:  # not built: no C compiler at install time
    _native = None
    _IMPORT_ERROR = error

#: The engines one can ask for.
ENGINES = ('auto', 'native', 'numpy')


class NativeUnavailable(RuntimeError):
    """The compiled kernels were asked for but are not built."""


def available():
    """Returns whether the compiled kernels are built and importable."""
    return _native is not None


def check_available():
    """Raises :class:`NativeUnavailable` saying how to build the kernels."""
    if _native is None:
        raise NativeUnavailable(
            'the compiled kernels (minibatch_hybrid._native) are not built: '
            '{}. Install a C compiler (e.g. apt install gcc) and reinstall '
            'the package (pip install -e . in the repository), or use the '
            'numpy engine (--engine numpy)'.format(_IMPORT_ERROR))


def supported_kernels():
    """Returns the kernels this CPU can run, slowest first.

    ``['c']``, ``['c', 'avx2']`` or ``['c', 'avx2', 'avx512']``; empty if
    the extension is not built.
    """
    return list(_native.supported_kernels()) if _native else []


def kernels():
    """Returns the kernels in use: ``'avx512'``, ``'avx2'`` or ``'c'``."""
    check_available()
    return _native.get_kernels()


@contextlib.contextmanager
def using_kernels(name):
    """Runs a block with the given kernels (one of :func:`supported_kernels`).

    The choice is global to the process; the previous one is restored.
    """
    check_available()
    previous = _native.set_kernels(name)
    try:
        yield
    finally:
        _native.set_kernels(previous)


def check_engine(engine):
    """Raises :class:`ValueError` unless ``engine`` is one of :data:`ENGINES`."""
    if engine not in ENGINES:
        raise ValueError('unknown engine {!r}: choose one of {}'.format(
            engine, ', '.join(ENGINES)))


def resolve_engine(engine, device):
    """Returns the name of the engine that will run, for the record.

    Args:
        engine (str): ``'auto'`` (the compiled kernels on the CPU if they
            are built, else NumPy), ``'native'`` or ``'numpy'``.
        device (chainer.backend.Device): Where the ensemble runs.

    Returns:
        str: ``'native-avx512'``, ``'native-avx2'``, ``'native-c'``,
        ``'numpy'`` or, on a GPU, ``'cupy'``.

    """
    check_engine(engine)
    on_cpu = device.xp.__name__ == 'numpy'
    if engine == 'native':
        if not on_cpu:
            raise ValueError(
                'the native engine runs on the CPU only; on {} use '
                '--engine numpy (or auto)'.format(device))
        check_available()
    if not on_cpu:
        return 'cupy'
    if engine == 'numpy' or (engine == 'auto' and not available()):
        return 'numpy'
    return 'native-' + kernels()


def is_native(engine_name):
    """Whether a resolved engine name means the compiled kernels."""
    return engine_name.startswith('native')
