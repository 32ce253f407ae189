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

import chainer
import numpy

from minibatch_hybrid.checks import check_batchsize
from minibatch_hybrid.engines.native import PackedEnsemble
from minibatch_hybrid.errors import Error
from minibatch_hybrid import kernels
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


class CudaEnsemble(PackedEnsemble):
    """K replicas of ``MyChain`` with Adam, trained by the CUDA kernels.

    Not yet run on a GPU (see the module's text).  The protocol, the
    arguments and the packing (:class:`~minibatch_hybrid.engines.native.
    PackedEnsemble`) are :class:`~minibatch_hybrid.engines.native.
    NativeEnsemble`'s, with the packed arrays on the GPU; the arithmetic is
    the native engine's, so replica ``k`` should follow the native engine's
    path bit for bit.

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
        super().__init__(list(models), alpha, beta1, beta2, eps, eta)

    def _to_device(self, packed):
        with chainer.using_device(self._device):
            return self._xp.asarray(packed)

    def _to_host(self, packed):
        return self._xp.asnumpy(packed)

    @property
    def device(self):
        """The GPU, where the kernels run and the data must be."""
        return self._device

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
            order = xp.asarray(self._orders(orders, size))
            steps = -(-size // batchsize)
            alpha_t = xp.asarray(self._alpha_t(steps))
            lanes = self.lanes
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
        lanes = self.lanes
        with chainer.using_device(self._device):
            x, y = self._lane_data(x, y, xp)
            out = xp.empty(lanes, xp.float32)
            scratch = xp.empty(
                lanes * cuda.scratch_floats(kernels.EVAL_BATCH, self.n_units),
                xp.float32)
        self._launch('mh_evaluate', lanes, numpy.int32(self.n_units),
                     numpy.int32(x.shape[1]), numpy.int64(lanes),
                     self.params, x, y, out, scratch)
        return xp.asnumpy(out[:self.size])
