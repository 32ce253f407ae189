"""The native engine: K replicas trained by the compiled kernels.

The same bits on every CPU, equal to Chainer's (the numpy engine's) to
float32 rounding only: a study records its engine and does not mix them.
"""

import chainer
import numpy

from minibatch_hybrid import kernels
from minibatch_hybrid.checks import check_batchsize
from minibatch_hybrid.core.adam import HYPERPARAMS
from minibatch_hybrid.core.adam import Hyperparams
from minibatch_hybrid.core.adam import step_sizes
from minibatch_hybrid.core.engine import StatefulEngine
from minibatch_hybrid.core.engine import check_which
from minibatch_hybrid.core.diagnosis import Activity
from minibatch_hybrid.core.diagnosis import as_inputs
from minibatch_hybrid.core.model import PARAMS
from minibatch_hybrid.core.model import MyChain
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.model import n_params
from minibatch_hybrid.core.model import stack_models
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.kernels import GROUP
from minibatch_hybrid.kernels import threads


class PackedEnsemble(StatefulEngine):
    """K replicas of ``MyChain`` with Adam, packed as the kernels read them.

    Replicas are packed :data:`~minibatch_hybrid.kernels.GROUP` to a group,
    one per lane: a group's weights and Adam's moments are ``(P, GROUP)``.
    A subclass keeps them where its kernels run (``_to_device``,
    ``_to_host``) and runs them there (``_train_epoch``, ``_evaluate``).

    Args:
        models (list of MyChain): The replicas' initial weights (copied).
        alpha, beta1, beta2, eps, eta (float): Adam's hyperparameters
            (default: :data:`~minibatch_hybrid.core.adam.HYPERPARAMS`).

    """

    def __init__(self, models, alpha=HYPERPARAMS.alpha,
                 beta1=HYPERPARAMS.beta1, beta2=HYPERPARAMS.beta2,
                 eps=HYPERPARAMS.eps, eta=HYPERPARAMS.eta):
        stacked = stack_models(models)
        self.n_units = stacked['l2/W'].shape[1]
        self.size = len(stacked['l2/W'])
        self.groups = -(-self.size // GROUP)
        self.load('params', stacked)
        shape = (self.groups, self.n_params, GROUP)
        self.m = self._to_device(numpy.zeros(shape, numpy.float32))
        self.v = self._to_device(numpy.zeros(shape, numpy.float32))
        self.hyperparams = Hyperparams(alpha, beta1, beta2, eps, eta)._asdict()
        self.t = 0

    @classmethod
    def from_seeds(cls, seeds, n_units=100, **adam):
        """Returns the replicas of ``make_model(n_units, seed)`` per seed."""
        return cls([make_model(n_units, seed) for seed in seeds], **adam)

    @property
    def replicas(self):
        return self.size

    @property
    def n_params(self):
        """Parameters per replica."""
        return n_params(self.n_units)

    @property
    def lanes(self):
        """Replicas and the empty lanes of the last group."""
        return self.groups * GROUP

    def load(self, which, arrays):
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

    def _orders(self, orders, size):
        """Returns each lane's order, ``(lanes, N)`` int32 on the CPU."""
        orders = numpy.asarray(chainer.backend.CpuDevice().send(orders))
        if orders.shape != (self.size, size):
            raise SettingsError('orders must have shape {}, got {}'.format(
                (self.size, size), orders.shape))
        out = numpy.empty((self.lanes, size), numpy.int32)
        out[:self.size] = orders
        out[self.size:] = numpy.arange(size)  # lanes without a replica
        return out

    def _lane_data(self, x, y, xp=numpy):
        """Returns each lane's data, ``(lanes, N)`` contiguous float32, from
        ``(N, 1)`` data shared by the replicas or ``(K, N, 1)``."""
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

    def train_epoch(self, x, y, orders, batchsize):
        xp = self.device.xp
        with chainer.using_device(self.device):
            x, y = (xp.ascontiguousarray(xp.asarray(a, xp.float32).reshape(-1))
                    for a in (x, y))
            size = len(x)
            check_batchsize(batchsize, size)
            steps = -(-size // batchsize)
            sums = self._train_epoch(
                x, y, self._to_device(self._orders(orders, size)),
                self._to_device(step_sizes(self.t, steps,
                                           **self.hyperparams)), batchsize)
        self.t += steps
        return self._to_host(sums)[:self.size]

    def evaluate(self, x, y):
        """Returns each replica's mean squared error, ``(K,)`` float32, on
        ``(N, 1)`` data shared by the replicas or ``(K, N, 1)``."""
        with chainer.using_device(self.device):
            out = self._evaluate(*self._lane_data(x, y, self.device.xp))
        return self._to_host(out)[:self.size]


class NativeEnsemble(PackedEnsemble):
    """K replicas of ``MyChain`` with Adam, trained by the compiled kernels.

    It carries its Adam (:func:`~minibatch_hybrid.core.loop.train` takes it
    with ``optimizer=None``); its arguments are :class:`PackedEnsemble`'s,
    the models of at most :data:`~minibatch_hybrid.kernels.MAX_UNITS`
    units.  Replica ``k``'s numbers do not depend on the other replicas.
    """

    def __init__(self, models, *adam, **kwadam):
        kernels.check_available()
        models = list(models)
        # Before anything is stacked: 8193 units are 268 MB a replica.
        units = models[0].l2.W.shape[0] if models and isinstance(
            models[0], MyChain) else 0
        if units > kernels.MAX_UNITS:
            raise SettingsError(
                'the native engine trains at most {} units a layer, not {}: '
                '--units must be at most {} (or use --engine numpy)'.format(
                    kernels.MAX_UNITS, units, kernels.MAX_UNITS))
        super().__init__(models, *adam, **kwadam)

    def _to_device(self, packed):
        return packed

    def _to_host(self, packed):
        return packed

    @property
    def device(self):
        return chainer.get_device('@numpy')

    def _run(self, kernel, **arguments):
        """Calls a compiled kernel on every group, split across threads."""
        call = getattr(kernels.module(), kernel)
        threads.run(lambda part: call(start=part.start, stop=part.stop,
                                      **arguments),
                    threads.slices(self.groups, threads.workers()))

    def _train_epoch(self, x, y, order, alpha_t, batchsize):
        sums = numpy.empty(self.lanes, numpy.float64)
        hp = self.hyperparams
        self._run('train_epoch', params=self.params, m=self.m, v=self.v,
                  x=x, y=y, order=order, alpha_t=alpha_t, sums=sums,
                  n_units=self.n_units, batchsize=batchsize,
                  beta1=hp['beta1'], beta2=hp['beta2'], eps=hp['eps'],
                  eta=hp['eta'])
        return sums

    def _evaluate(self, x, y):
        out = numpy.empty(self.lanes, numpy.float32)
        self._run('evaluate', params=self.params, x=x, y=y, out=out,
                  n_units=self.n_units)
        return out

    def activity(self, x):
        # Counted by the kernels in their own forward pass: the same on
        # every CPU.
        x = as_inputs(x)
        x, y = self._lane_data(x, numpy.zeros_like(x))
        out = numpy.empty(self.lanes, numpy.float32)
        counts = numpy.empty((self.lanes, 2, self.n_units), numpy.int32)
        reach = numpy.empty((self.lanes, 2, self.n_units), numpy.float32)
        self._run('activity', params=self.params, x=x, y=y, out=out,
                  n_units=self.n_units, counts=counts, reach=reach)
        return Activity(counts[:self.size], reach[:self.size])
