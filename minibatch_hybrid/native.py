"""The native engine: compiled kernels, one arithmetic on every CPU.

NumPy runs an ensemble step as a few dozen array operations, each a pass
over memory, plus Chainer's bookkeeping per step.  The optional extension
``minibatch_hybrid._native`` (C, built by ``pip install`` where a C
compiler is present) trains a whole epoch of many replicas per call:
forward, backward and Adam of each mini-batch step, fused.

One arithmetic
    Replicas are packed 16 to a group, one per vector lane, and every
    operation is elementwise across lanes.  Each output of a matrix product
    is one chain of fused multiply-adds over its reduction index, in order;
    Adam performs Chainer's float32 operations in Chainer's order.  The
    body of the kernels is written once and compiled per *kernel set*:
    ``'avx512'`` (16 lanes), ``'avx2'`` (8 lanes) and ``'c'`` (portable C:
    GCC's generic vectors of 8 lanes on x86, 4 elsewhere, and ``fmaf``).
    All perform the same operations on every lane, so **every kernel set
    gives the same bits**, on every CPU that runs it.
    The fastest set the CPU runs is used; ``MINIBATCH_HYBRID_KERNELS=c``
    (or ``avx2``, ``avx512``) forces one.  The kernels need a fused
    multiply-add in hardware and x86's or ARM's flush-to-zero: x86-64 CPUs
    with FMA3 (Intel since Haswell, 2013; AMD since Piledriver, 2012) and
    64-bit ARM CPUs; elsewhere ``auto`` picks the numpy engine.

Subnormals
    Adam's first moment of a weight whose gradient is zero (a dead ReLU
    unit) decays by 0.9 per step into the subnormal range, where Intel
    cores take a microcode assist per operand.  The kernels flush
    subnormals to zero (MXCSR FTZ and DAZ on x86, FPCR.FZ on ARM), set on
    entry and restored on exit of every call, in the thread that runs it.
    :func:`ieee_subnormals` turns that off, to check that it changes no
    result (see the README's performance notes).

The engine's results equal Chainer's (the ``numpy`` engine's) to float32
rounding, not bit for bit, and rounding decides some runs' fate (which
hybrids get stuck): a study records its engine and does not mix engines.
"""
import contextlib
import math
import os

import numpy

from minibatch_hybrid import _parallel
from minibatch_hybrid._checks import check_batchsize

try:
    from minibatch_hybrid import _native
    _IMPORT_ERROR = None
except ImportError as error:  # not built: no C compiler at install time
    _native = None
    _IMPORT_ERROR = error

#: The engines one can ask for.
ENGINES = ('auto', 'native', 'numpy')

#: Replicas per group (vector lanes of the widest kernel set).
GROUP = 16

#: The environment variable that forces a kernel set.
KERNELS_VARIABLE = 'MINIBATCH_HYBRID_KERNELS'

# Chainer's parameter names of MyChain, in the packed order.
_LINKS = ('l1/W', 'l1/b', 'l2/W', 'l2/b', 'l3/W', 'l3/b')


class NativeUnavailable(RuntimeError):
    """The compiled kernels were asked for but cannot run here."""


def available():
    """Returns whether the compiled kernels are built and the CPU runs them."""
    return _native is not None and bool(_native.supported_kernels())


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


def check_available():
    """Raises :class:`NativeUnavailable` saying how to get the kernels."""
    if _native is None:
        raise NativeUnavailable(
            'the compiled kernels (minibatch_hybrid._native) are not built: '
            '{}. Install a C compiler (e.g. apt install gcc) and reinstall '
            'the package (pip install -e . in the repository), or use the '
            'numpy engine (--engine numpy)'.format(_IMPORT_ERROR))
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


def kernels():
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
    """Runs a block with the native engine keeping subnormals (IEEE).

    Slower on Intel CPUs; for checking that flushing changes nothing.
    """
    check_available()
    previous = _native.set_flush_subnormals(False)
    try:
        yield
    finally:
        _native.set_flush_subnormals(previous)


def check_engine(engine):
    """Raises :class:`ValueError` unless ``engine`` is in :data:`ENGINES`."""
    if engine not in ENGINES:
        raise ValueError('unknown engine {!r}: choose one of {}'.format(
            engine, ', '.join(ENGINES)))


def resolve_engine(engine, device):
    """Returns the name of the engine that will run, for the record.

    Args:
        engine (str): ``'auto'`` (the compiled kernels on the CPU where
            they run, else NumPy), ``'native'`` or ``'numpy'``.
        device (chainer.backend.Device): Where the ensemble runs.

    Returns:
        str: ``'native'``, ``'numpy'`` or, on a GPU, ``'cupy'``.

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
    check_available()
    return 'native'


def is_native(engine_name):
    """Whether a resolved engine name means the compiled kernels.

    (Folders of earlier versions recorded ``'native-avx2'`` and the like:
    another arithmetic, which these kernels do not reproduce.)
    """
    return engine_name == 'native'


def _as_column(x):
    return numpy.ascontiguousarray(x, numpy.float32).reshape(-1)


class NativeEnsemble(object):
    """K replicas of ``MyChain`` with Adam, trained by the native engine.

    The same experiment as :class:`~minibatch_hybrid.ensemble.Ensemble`
    with :func:`~minibatch_hybrid.model.make_optimizer`, in the native
    engine's arithmetic (see the module's documentation): replica ``k``
    follows the path the single model would follow, to float32 rounding,
    and its numbers do not depend on the other replicas.  Adam (Chainer's
    defaults unless given) is part of the ensemble: :func:`train` takes it
    with ``optimizer=None``.

    Args:
        models (list of MyChain): The replicas' initial weights (copied).
        alpha, beta1, beta2, eps, eta (float): Adam's hyperparameters, as
            :class:`chainer.optimizers.Adam`.

    Attributes:
        t (int): Adam's step count.

    """

    def __init__(self, models, alpha=0.001, beta1=0.9, beta2=0.999,
                 eps=1e-8, eta=1.0):
        check_available()
        from minibatch_hybrid.ensemble import stack_models
        stacked = stack_models(models)
        self.n_units = stacked['l2/W'].shape[1]
        self.size = len(stacked['l2/W'])
        self.groups = -(-self.size // GROUP)
        self.load('params', stacked)
        self.m = numpy.zeros_like(self.params)
        self.v = numpy.zeros_like(self.params)
        self.hyperparams = dict(alpha=alpha, beta1=beta1, beta2=beta2,
                                eps=eps, eta=eta)
        self.t = 0

    @classmethod
    def from_seeds(cls, seeds, n_units=100, **adam):
        """Returns the replicas of ``make_model(n_units, seed)`` per seed."""
        from minibatch_hybrid.model import make_model
        return cls([make_model(n_units, seed) for seed in seeds], **adam)

    @property
    def n_params(self):
        n = self.n_units
        return n * n + 4 * n + 1

    def __len__(self):
        return self.size

    def load(self, which, arrays):
        """Sets weights or Adam's moments from replica-stacked arrays in
        Chainer's shapes (what :meth:`arrays` returns).

        Args:
            which (str): ``'params'``, or Adam's ``'m'`` or ``'v'``.
            arrays (dict): ``'l1/W'`` to a ``(K, n, 1)`` array, and so on.

        """
        flat = numpy.zeros((self.groups * GROUP, self.n_params), numpy.float32)
        flat[:self.size] = numpy.concatenate(
            [numpy.asarray(arrays[name]).reshape(self.size, -1)
             for name in _LINKS], axis=1)
        # (groups * GROUP, P) -> (groups, P, GROUP): lane = replica.
        packed = flat.reshape(self.groups, GROUP, self.n_params)
        setattr(self, which,
                numpy.ascontiguousarray(packed.transpose(0, 2, 1)))

    def arrays(self, which='params'):
        """Returns replica-stacked copies in Chainer's shapes.

        Args:
            which (str): ``'params'``, or Adam's ``'m'`` or ``'v'``.

        Returns:
            dict: ``'l1/W'`` to a ``(K, n, 1)`` array, and so on.

        """
        flat = getattr(self, which).transpose(0, 2, 1).reshape(
            -1, self.n_params)[:self.size]
        n, out, start = self.n_units, {}, 0
        for name, shape in zip(_LINKS, ((n, 1), (n,), (n, n), (n,), (1, n),
                                        (1,))):
            size = int(numpy.prod(shape))
            out[name] = flat[:, start:start + size].reshape((-1,) + shape)
            start += size
        return out

    def replica(self, k):
        """Returns replica ``k`` as a :class:`MyChain` (a copy)."""
        from minibatch_hybrid.model import MyChain
        model = MyChain(self.n_units)
        arrays = self.arrays()
        for name, param in model.namedparams():
            param.array[...] = arrays[name.lstrip('/')][k]
        return model

    def _orders(self, orders, size):
        orders = numpy.asarray(orders)
        if orders.shape != (self.size, size):
            raise ValueError('orders must have shape {}, got {}'.format(
                (self.size, size), orders.shape))
        out = numpy.empty((self.groups * GROUP, size), numpy.int32)
        out[:self.size] = orders
        out[self.size:] = numpy.arange(size)  # lanes without a replica
        return out

    def _alpha_t(self, steps):
        # Chainer's formula (chainer.optimizers.adam._learning_rate), step
        # by step, cast to float32 as NumPy casts it.
        hp = self.hyperparams
        t = numpy.arange(self.t + 1, self.t + steps + 1, dtype=numpy.float64)
        out = numpy.empty(steps, numpy.float32)
        for i, ti in enumerate(t):
            fix1 = 1. - math.pow(hp['beta1'], ti)
            fix2 = 1. - math.pow(hp['beta2'], ti)
            out[i] = hp['alpha'] * math.sqrt(fix2) / fix1
        return out

    def train_epoch(self, x, y, orders, batchsize):
        """Trains every replica for one epoch.

        Args:
            x, y: The data set's ``(N, 1)`` float32 inputs and targets.
            orders: ``(K, N)`` integers, each replica's order of the epoch.
            batchsize (int): Mini-batch size; the last batch is smaller if
                it does not divide ``N``.

        Returns:
            numpy.ndarray: ``(K,)`` float64, each replica's sum over the
            epoch's mini-batches of ``loss * len(batch)``.

        """
        x, y = _as_column(x), _as_column(y)
        size = len(x)
        check_batchsize(batchsize, size)
        order = self._orders(orders, size)
        steps = -(-size // batchsize)
        alpha_t = self._alpha_t(steps)
        sums = numpy.empty(self.groups * GROUP, numpy.float64)
        hp = self.hyperparams
        _apply_environment()
        _parallel.run(lambda part: _native.train_epoch(
            part.start, part.stop, self.n_units, batchsize, self.params,
            self.m, self.v, x, y, order, alpha_t, hp['beta1'], hp['beta2'],
            hp['eps'], hp['eta'], sums),
            _parallel.slices(self.groups, _parallel.workers()))
        self.t += steps
        return sums[:self.size]

    def evaluate(self, x, y):
        """Returns each replica's mean squared error on a data set.

        Args:
            x, y: ``(N, 1)`` arrays shared by all replicas, or ``(K, N, 1)``
                with one data set per replica.

        Returns:
            numpy.ndarray: ``(K,)`` float32.

        """
        x = numpy.asarray(x, numpy.float32)
        y = numpy.asarray(y, numpy.float32)
        lanes = self.groups * GROUP
        shared = x.ndim == 2 and x.shape[1:] == (1,)
        own = x.ndim == 3 and x.shape[0] == self.size and x.shape[2:] == (1,)
        if not (shared or own) or x.shape != y.shape or x.size == 0:
            raise ValueError(
                'evaluate takes x and y of shape (N, 1), shared by the '
                'replicas, or ({}, N, 1), one data set per replica; got {} '
                'and {}'.format(self.size, x.shape, y.shape))
        if shared:
            x = numpy.broadcast_to(x.reshape(-1), (lanes, x.shape[0]))
            y = numpy.broadcast_to(y.reshape(-1), (lanes, y.shape[0]))
        else:
            pad = ((0, lanes - self.size), (0, 0))
            x = numpy.pad(x.reshape(self.size, -1), pad, mode='edge')
            y = numpy.pad(y.reshape(self.size, -1), pad, mode='edge')
        x, y = numpy.ascontiguousarray(x), numpy.ascontiguousarray(y)
        out = numpy.empty(lanes, numpy.float32)
        _apply_environment()
        _parallel.run(lambda part: _native.evaluate(
            part.start, part.stop, self.n_units, self.params, x, y, out),
            _parallel.slices(self.groups, _parallel.workers()))
        return out[:self.size]
