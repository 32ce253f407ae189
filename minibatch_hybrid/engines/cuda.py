"""The native arithmetic on a GPU: K replicas trained by the CUDA kernels.

**Not yet run on a GPU, and not chosen by** :func:`~minibatch_hybrid.
engines.resolve_engine`: build it by hand.  What has been checked without
a GPU (``tests/test_cuda_kernels.py``): the kernels' per-thread code gives
the CPU kernel sets' bits on the host; this class, with NumPy in CuPy's
place and the kernels run on the host, gives the native engine's bits;
NVRTC compiles the kernels for sm_90 with every operation rounded as on
the CPU.  Whether a GPU gives the same bits as the CPU (as the design
says it must) is the check to run first.

:class:`CudaEnsemble` is :class:`~minibatch_hybrid.engines.native.
NativeEnsemble` on a GPU: the same packing of replicas (16 to a group,
lane = replica), the same Adam step sizes, the kernels of
:mod:`minibatch_hybrid.kernels.cuda` (one thread per replica) in place of
the CPU's, the weights, moments and data as CuPy arrays on the device.
"""
import types

import chainer
import numpy

from minibatch_hybrid.checks import check_batchsize
from minibatch_hybrid.core.engine import Engine
from minibatch_hybrid.core.engine import check_which
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.model import n_params
from minibatch_hybrid.core.model import replica_model
from minibatch_hybrid.core.model import stack_models
from minibatch_hybrid.engines.native import NativeEnsemble
from minibatch_hybrid.errors import Error
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.kernels import GROUP
from minibatch_hybrid.kernels import cuda

#: Threads per block of the kernels.
THREADS = 128


class CudaUnavailable(Error, RuntimeError):
    """CuPy (or a GPU) is missing for the CUDA engine."""


def _cupy():
    try:
        import cupy
    except ImportError as e:
        raise CudaUnavailable(
            'the CUDA engine needs CuPy and an NVIDIA GPU: pip install '
            '"minibatch_hybrid[cuda13]" (or [cuda12]); {}'.format(e)) from e
    return cupy


def _gpu(device):
    return chainer.get_device('@cupy:{}'.format(device))


_kernels = {}


def _kernel(name):
    """Returns kernel ``name`` of the CUDA module, compiled once."""
    if 'module' not in _kernels:
        _kernels['module'] = cuda.module()
    return _kernels['module'].get_function(name)


class CudaEnsemble(Engine):
    """K replicas of ``MyChain`` with Adam, trained by the CUDA kernels.

    Not yet run on a GPU (see the module's text).  The protocol and the
    arguments are :class:`~minibatch_hybrid.engines.native.NativeEnsemble`'s;
    the arithmetic is the native engine's, so replica ``k`` should follow
    the native engine's path bit for bit.

    Args:
        models (list of MyChain): The replicas' initial weights (copied).
        alpha, beta1, beta2, eps, eta (float): Adam's hyperparameters, as
            :class:`chainer.optimizers.Adam`.
        device (int): The GPU.

    Attributes:
        t (int): Adam's step count.

    """

    def __init__(self, models, alpha=0.001, beta1=0.9, beta2=0.999,
                 eps=1e-8, eta=1.0, device=0):
        self._xp = _cupy()
        self._device = _gpu(device)
        stacked = stack_models(list(models))
        self.n_units = stacked['l2/W'].shape[1]
        self.size = len(stacked['l2/W'])
        self.groups = -(-self.size // GROUP)
        self.load('params', stacked)
        with chainer.using_device(self._device):
            self.m = self._xp.zeros_like(self.params)
            self.v = self._xp.zeros_like(self.params)
        self.hyperparams = dict(alpha=alpha, beta1=beta1, beta2=beta2,
                                eps=eps, eta=eta)
        self.t = 0

    @classmethod
    def from_seeds(cls, seeds, n_units=100, **adam):
        """Returns the replicas of ``make_model(n_units, seed)`` per seed."""
        return cls([make_model(n_units, seed) for seed in seeds], **adam)

    @property
    def replicas(self):
        """``K`` (the loop's protocol)."""
        return self.size

    @property
    def device(self):
        """The GPU, where the kernels run and the data must be."""
        return self._device

    @property
    def n_params(self):
        """Parameters per replica."""
        return n_params(self.n_units)

    def __len__(self):
        return self.size

    def _host(self, **arrays):
        # What NativeEnsemble's packing reads, with host arrays.
        return types.SimpleNamespace(
            n_units=self.n_units, size=self.size, groups=self.groups,
            n_params=self.n_params, **arrays)

    def load(self, which, arrays):
        """Sets weights or Adam's moments from replica-stacked arrays in
        Chainer's shapes (as :meth:`NativeEnsemble.load`)."""
        check_which(which)
        host = self._host()
        NativeEnsemble.load(host, which, {
            name: chainer.backend.CpuDevice().send(a)
            for name, a in arrays.items()})
        with chainer.using_device(self._device):
            setattr(self, which, self._xp.asarray(getattr(host, which)))

    def arrays(self, which='params'):
        """Returns replica-stacked copies in Chainer's shapes, on the CPU
        (as :meth:`NativeEnsemble.arrays`)."""
        check_which(which)
        host = self._host(**{which: self._xp.asnumpy(getattr(self, which))})
        return NativeEnsemble.arrays(host, which)

    def replica(self, k):
        """Returns replica ``k`` as a :class:`MyChain` on the CPU (a copy)."""
        return replica_model(self.arrays(), k)

    def _launch(self, name, lanes, *args):
        blocks = -(-lanes // THREADS)
        with chainer.using_device(self._device):
            _kernel(name)((blocks,), (THREADS,), args)

    def train_epoch(self, x, y, orders, batchsize):
        """Trains every replica for one epoch (as
        :meth:`NativeEnsemble.train_epoch`).

        Returns:
            numpy.ndarray: ``(K,)`` float64 on the CPU, each replica's sum
            over the epoch's mini-batches of ``loss * len(batch)``.

        """
        xp = self._xp
        orders = chainer.backend.CpuDevice().send(orders)
        with chainer.using_device(self._device):
            x = xp.ascontiguousarray(xp.asarray(x, xp.float32).reshape(-1))
            y = xp.ascontiguousarray(xp.asarray(y, xp.float32).reshape(-1))
            size = len(x)
            check_batchsize(batchsize, size)
            order = xp.asarray(NativeEnsemble._orders(self, orders, size))
            steps = -(-size // batchsize)
            alpha_t = xp.asarray(NativeEnsemble._alpha_t(self, steps))
            lanes = self.groups * GROUP
            sums = xp.empty(lanes, xp.float64)
            scratch = xp.empty(
                lanes * cuda.scratch_floats(batchsize, self.n_units),
                xp.float32)
        hp = self.hyperparams
        self._launch(
            'mh_train_epoch', lanes, numpy.int32(self.n_units),
            numpy.int32(batchsize), numpy.int32(size), numpy.int64(lanes),
            self.params, self.m, self.v, x, y, alpha_t, order,
            numpy.float32(1.0 - hp['beta1']), numpy.float32(1.0 - hp['beta2']),
            numpy.float32(hp['eps']), numpy.float32(-hp['eta']), sums,
            scratch)
        self.t += steps
        return xp.asnumpy(sums[:self.size])

    def evaluate(self, x, y):
        """Returns each replica's mean squared error on a data set, on the
        CPU (as :meth:`NativeEnsemble.evaluate`: ``(N, 1)`` data shared by
        the replicas, or ``(K, N, 1)``)."""
        xp = self._xp
        lanes = self.groups * GROUP
        with chainer.using_device(self._device):
            x, y = xp.asarray(x, xp.float32), xp.asarray(y, xp.float32)
            shared = x.ndim == 2 and x.shape[1:] == (1,)
            own = (x.ndim == 3 and x.shape[0] == self.size and
                   x.shape[2:] == (1,))
            if not (shared or own) or x.shape != y.shape or x.size == 0:
                raise SettingsError(
                    'evaluate takes x and y of shape (N, 1), shared by the '
                    'replicas, or ({}, N, 1), one data set per replica; '
                    'got {} and {}'.format(self.size, x.shape, y.shape))
            if shared:
                x = xp.broadcast_to(x.reshape(-1), (lanes, x.shape[0]))
                y = xp.broadcast_to(y.reshape(-1), (lanes, y.shape[0]))
            else:
                pad = ((0, lanes - self.size), (0, 0))
                x = xp.pad(x.reshape(self.size, -1), pad, mode='edge')
                y = xp.pad(y.reshape(self.size, -1), pad, mode='edge')
            x, y = xp.ascontiguousarray(x), xp.ascontiguousarray(y)
            out = xp.empty(lanes, xp.float32)
            scratch = xp.empty(
                lanes * cuda.scratch_floats(cuda.EVAL_BATCH, self.n_units),
                xp.float32)
        self._launch('mh_evaluate', lanes, numpy.int32(self.n_units),
                     numpy.int32(x.shape[1]), numpy.int64(lanes),
                     self.params, x, y, out, scratch)
        return xp.asnumpy(out[:self.size])
