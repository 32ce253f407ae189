"""The native engine: K replicas trained by the compiled kernels.

The same experiment as the numpy engine
(:class:`~minibatch_hybrid.engines.stacked.Ensemble` with
:func:`~minibatch_hybrid.core.model.make_optimizer`), in the kernels' one
arithmetic (see :mod:`~minibatch_hybrid.kernels`): the same bits on every
CPU that runs them.  Its results equal Chainer's (the numpy engine's) to
float32 rounding, not bit for bit, and rounding decides some runs' fate
(which hybrids get stuck): a study records its engine and does not mix
engines.
"""
import math

import chainer
import numpy

from minibatch_hybrid import kernels
from minibatch_hybrid.checks import check_batchsize
from minibatch_hybrid.core.engine import Engine
from minibatch_hybrid.core.engine import check_which
from minibatch_hybrid.core.diagnosis import Activity
from minibatch_hybrid.core.diagnosis import as_inputs
from minibatch_hybrid.core.model import PARAMS
from minibatch_hybrid.core.model import MyChain
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.model import n_params
from minibatch_hybrid.core.model import replica_model
from minibatch_hybrid.core.model import stack_models
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.kernels import GROUP
from minibatch_hybrid.kernels import threads


def _as_column(x):
    return numpy.ascontiguousarray(x, numpy.float32).reshape(-1)


def _check_units(models):
    # Before anything is stacked: a copy of 8193 units is 268 MB a replica.
    first = models[0] if models else None
    if isinstance(first, MyChain) and \
            first.l2.W.shape[0] > kernels.MAX_UNITS:
        raise SettingsError(
            'the native engine trains at most {} units a layer, not {}: '
            '--units must be at most {} (or use --engine numpy)'.format(
                kernels.MAX_UNITS, first.l2.W.shape[0], kernels.MAX_UNITS))


class PackedEnsemble(Engine):
    """K replicas of ``MyChain`` with Adam, packed as the kernels read them.

    Replicas are packed 16 to a group, one per lane
    (:data:`~minibatch_hybrid.kernels.GROUP`): a group's weights and Adam's
    moments are ``(P, 16)`` arrays, element by element.  This class holds
    what every engine of that layout shares (the packing, the lanes' orders
    and data, Adam's step sizes); :class:`NativeEnsemble` keeps the packed
    arrays on the CPU, :class:`~minibatch_hybrid.engines.cuda.CudaEnsemble`
    on a GPU, each through :meth:`_to_device` and :meth:`_to_host`.

    Args:
        models (list of MyChain): The replicas' initial weights (copied).
        alpha, beta1, beta2, eps, eta (float): Adam's hyperparameters, as
            :class:`chainer.optimizers.Adam`.

    Attributes:
        t (int): Adam's step count.

    """

    def __init__(self, models, alpha=0.001, beta1=0.9, beta2=0.999,
                 eps=1e-8, eta=1.0):
        stacked = stack_models(models)
        self.n_units = stacked['l2/W'].shape[1]
        self.size = len(stacked['l2/W'])
        self.groups = -(-self.size // GROUP)
        self.load('params', stacked)
        shape = (self.groups, self.n_params, GROUP)
        self.m = self._to_device(numpy.zeros(shape, numpy.float32))
        self.v = self._to_device(numpy.zeros(shape, numpy.float32))
        self.hyperparams = dict(alpha=alpha, beta1=beta1, beta2=beta2,
                                eps=eps, eta=eta)
        self.t = 0

    def _to_device(self, packed):
        """Returns a packed host array where the kernels run."""
        raise NotImplementedError

    def _to_host(self, packed):
        """Returns a packed array on the CPU (NumPy)."""
        raise NotImplementedError

    @classmethod
    def from_seeds(cls, seeds, n_units=100, **adam):
        """Returns the replicas of ``make_model(n_units, seed)`` per seed."""
        return cls([make_model(n_units, seed) for seed in seeds], **adam)

    @property
    def replicas(self):
        """``K`` (the loop's protocol:
        :mod:`~minibatch_hybrid.core.engine`)."""
        return self.size

    @property
    def n_params(self):
        """Parameters per replica."""
        return n_params(self.n_units)

    @property
    def lanes(self):
        """Replicas and the empty lanes of the last group."""
        return self.groups * GROUP

    def __len__(self):
        return self.size

    def load(self, which, arrays):
        """Sets weights or Adam's moments from replica-stacked arrays in
        Chainer's shapes (what :meth:`arrays` returns).

        Args:
            which (str): ``'params'``, or Adam's ``'m'`` or ``'v'``.
            arrays (dict): ``'l1/W'`` to a ``(K, n, 1)`` array, and so on
                (on any device).

        Raises:
            SettingsError: ``which`` is none of those.

        """
        check_which(which)
        flat = numpy.zeros((self.lanes, self.n_params), numpy.float32)
        flat[:self.size] = numpy.concatenate(
            [numpy.asarray(chainer.backend.CpuDevice().send(
                arrays[name])).reshape(self.size, -1) for name in PARAMS],
            axis=1)
        # (groups * GROUP, P) -> (groups, P, GROUP): lane = replica.
        packed = flat.reshape(self.groups, GROUP, self.n_params)
        setattr(self, which, self._to_device(
            numpy.ascontiguousarray(packed.transpose(0, 2, 1))))

    def arrays(self, which='params'):
        """Returns replica-stacked copies in Chainer's shapes, on the CPU.

        Args:
            which (str): ``'params'``, or Adam's ``'m'`` or ``'v'``.

        Returns:
            dict: ``'l1/W'`` to a ``(K, n, 1)`` array, and so on.

        Raises:
            SettingsError: ``which`` is none of those.

        """
        check_which(which)
        flat = self._to_host(getattr(self, which)).transpose(0, 2, 1) \
            .reshape(-1, self.n_params)[:self.size]
        n, out, start = self.n_units, {}, 0
        for name, shape in zip(PARAMS, ((n, 1), (n,), (n, n), (n,), (1, n),
                                        (1,))):
            size = int(numpy.prod(shape))
            out[name] = flat[:, start:start + size].reshape((-1,) + shape)
            start += size
        return out

    def replica(self, k):
        """Returns replica ``k`` as a :class:`MyChain` on the CPU (a
        copy)."""
        return replica_model(self.arrays(), k)

    def _orders(self, orders, size):
        """Returns each lane's order, ``(lanes, N)`` int32 on the CPU."""
        orders = numpy.asarray(orders)
        if orders.shape != (self.size, size):
            raise SettingsError('orders must have shape {}, got {}'.format(
                (self.size, size), orders.shape))
        out = numpy.empty((self.lanes, size), numpy.int32)
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

    def _lane_data(self, x, y, xp=numpy):
        """Returns each lane's data set, ``(lanes, N)`` contiguous float32
        arrays of ``xp``, from ``(N, 1)`` data shared by the replicas or
        ``(K, N, 1)``, one data set per replica."""
        x = xp.asarray(x, xp.float32)
        y = xp.asarray(y, xp.float32)
        shared = x.ndim == 2 and x.shape[1:] == (1,)
        own = x.ndim == 3 and x.shape[0] == self.size and x.shape[2:] == (1,)
        if not (shared or own) or x.shape != y.shape or x.size == 0:
            raise SettingsError(
                'evaluate takes x and y of shape (N, 1), shared by the '
                'replicas, or ({}, N, 1), one data set per replica; got {} '
                'and {}'.format(self.size, x.shape, y.shape))
        if shared:
            x = xp.broadcast_to(x.reshape(-1), (self.lanes, x.shape[0]))
            y = xp.broadcast_to(y.reshape(-1), (self.lanes, y.shape[0]))
        else:
            pad = ((0, self.lanes - self.size), (0, 0))
            x = xp.pad(x.reshape(self.size, -1), pad, mode='edge')
            y = xp.pad(y.reshape(self.size, -1), pad, mode='edge')
        return xp.ascontiguousarray(x), xp.ascontiguousarray(y)


class NativeEnsemble(PackedEnsemble):
    """K replicas of ``MyChain`` with Adam, trained by the native engine.

    The same experiment as :class:`~minibatch_hybrid.engines.stacked.Ensemble`
    with :func:`~minibatch_hybrid.core.model.make_optimizer`, in the native
    engine's arithmetic (see the module's documentation): replica ``k``
    follows the path the single model would follow, to float32 rounding,
    and its numbers do not depend on the other replicas.  Adam (Chainer's
    defaults unless given) is part of the ensemble:
    :func:`~minibatch_hybrid.core.loop.train` takes it with
    ``optimizer=None``.  It answers the loop's protocol,
    :class:`~minibatch_hybrid.core.engine.Engine`; its packed arrays
    (:class:`PackedEnsemble`) are NumPy arrays.

    Its arguments and attributes are :class:`PackedEnsemble`'s; the models
    have at most :data:`~minibatch_hybrid.kernels.MAX_UNITS` units.
    """

    def __init__(self, models, alpha=0.001, beta1=0.9, beta2=0.999,
                 eps=1e-8, eta=1.0):
        kernels.check_available()
        models = list(models)
        _check_units(models)
        super().__init__(models, alpha, beta1, beta2, eps, eta)

    def _to_device(self, packed):
        return packed

    def _to_host(self, packed):
        return packed

    @property
    def device(self):
        """The CPU, where the kernels run and the data must be."""
        return chainer.get_device('@numpy')

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
        sums = numpy.empty(self.lanes, numpy.float64)
        hp = self.hyperparams
        native = kernels.module()
        arguments = dict(
            params=self.params, m=self.m, v=self.v, x=x, y=y, order=order,
            alpha_t=alpha_t, sums=sums, n_units=self.n_units,
            batchsize=batchsize, beta1=hp['beta1'], beta2=hp['beta2'],
            eps=hp['eps'], eta=hp['eta'])
        threads.run(lambda part: native.train_epoch(
            start=part.start, stop=part.stop, **arguments),
            threads.slices(self.groups, threads.workers()))
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
        x, y = self._lane_data(x, y)
        out = numpy.empty(self.lanes, numpy.float32)
        native = kernels.module()
        threads.run(lambda part: native.evaluate(
            params=self.params, x=x, y=y, out=out, n_units=self.n_units,
            start=part.start, stop=part.stop),
            threads.slices(self.groups, threads.workers()))
        return out[:self.size]

    def activity(self, x):
        """Returns each replica's hidden units' activity on inputs ``x``.

        Counted by the kernels in their own forward pass (the one
        arithmetic), so the same on every CPU.

        Args:
            x: ``(N, 1)`` inputs shared by the replicas.

        Returns:
            ~minibatch_hybrid.core.diagnosis.Activity

        """
        x = as_inputs(x)
        x, y = self._lane_data(x, numpy.zeros_like(x))
        out = numpy.empty(self.lanes, numpy.float32)
        counts = numpy.empty((self.lanes, 2, self.n_units), numpy.int32)
        reach = numpy.empty((self.lanes, 2, self.n_units), numpy.float32)
        native = kernels.module()
        threads.run(lambda part: native.activity(
            params=self.params, x=x, y=y, out=out, n_units=self.n_units,
            start=part.start, stop=part.stop, counts=counts, reach=reach),
            threads.slices(self.groups, threads.workers()))
        return Activity(counts[:self.size], reach[:self.size])
