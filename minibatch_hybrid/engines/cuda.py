"""The native arithmetic on a GPU: K replicas trained by the CUDA kernels.

Not yet run on a GPU, nor chosen by
:func:`~minibatch_hybrid.engines.resolve_engine` (see ``docs/gpus.md``).
"""
import chainer

from minibatch_hybrid.core.adam import HYPERPARAMS
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
    """:class:`~minibatch_hybrid.engines.native.NativeEnsemble` on a GPU,
    one thread per replica: it should give the same bits.

    Args:
        models (list of MyChain): The replicas' initial weights (copied).
        alpha, beta1, beta2, eps, eta (float): Adam's hyperparameters
            (default: :data:`~minibatch_hybrid.core.adam.HYPERPARAMS`).
        device (int): The GPU.

    """

    def __init__(self, models, alpha=HYPERPARAMS.alpha,
                 beta1=HYPERPARAMS.beta1, beta2=HYPERPARAMS.beta2,
                 eps=HYPERPARAMS.eps, eta=HYPERPARAMS.eta, device=0):
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
        return self._device

    def _launch(self, kernel, batch, **values):
        """Runs ``kernel`` on every lane, its scratch sized for batches of
        ``batch``; ``values`` are its other arguments, by name."""
        xp, lanes = self._xp, self.lanes
        scratch = xp.empty(lanes * cuda.scratch_floats(batch, self.n_units),
                           xp.float32)
        args = cuda.arguments(kernel, n_units=self.n_units, lanes=lanes,
                              params=self.params, scratch=scratch, **values)
        _kernel(kernel)((-(-lanes // THREADS),), (THREADS,), args)

    def _train_epoch(self, x, y, order, alpha_t, batchsize):
        sums = self._xp.empty(self.lanes, self._xp.float64)
        hp = self.hyperparams
        self._launch(
            'mh_train_epoch', batchsize, batchsize=batchsize, points=len(x),
            m=self.m, v=self.v, x=x, y=y, alpha_t=alpha_t, order=order,
            one_minus_beta1=1.0 - hp['beta1'],
            one_minus_beta2=1.0 - hp['beta2'], eps=hp['eps'],
            neg_eta=-hp['eta'], sums=sums)
        return sums

    def _evaluate(self, x, y):
        out = self._xp.empty(self.lanes, self._xp.float32)
        self._launch('mh_evaluate', kernels.EVAL_BATCH, points=x.shape[1],
                     x=x, y=y, out=out)
        return out
