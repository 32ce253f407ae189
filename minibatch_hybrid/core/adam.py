"""Adam with an in-place CPU update that gives Chainer's Adam bit for bit."""
import chainer
from chainer.optimizers import adam
import numpy

from minibatch_hybrid.kernels import threads
from minibatch_hybrid import kernels

#: Elements per block of the in-place update of large parameters: small
#: enough that the block's six arrays stay in the CPU's cache through its
#: twelve operations, large enough that Python's overhead per operation does
#: not matter (measured best on a 2-core EPYC: 131072 float32).
BLOCK = 131072

#: Parameters of at least this many elements are updated on all cores by
#: the compiled kernel (below it, starting threads costs more than it saves).
NATIVE_SPLIT = 65536


class FusedAdamRule(adam.AdamRule):
    """:class:`chainer.optimizers.AdamRule` without temporaries on the CPU.

    Chainer's CPU update allocates about ten arrays the size of the
    parameter per step and makes each pass over the whole array.  This rule
    performs the same floating-point operations in the same order, in place
    in two scratch buffers, so it gives the same bits (``tests/test_adam.py``
    checks it); large arrays (an ensemble's stacked weights) are updated in
    cache-sized blocks on all cores: for an ensemble of 256 replicas on the
    2-core benchmark machine, about three times faster than Chainer's update
    (measured side by side).  Where the compiled kernels of
    :mod:`~minibatch_hybrid.kernels` are built, the same operations run in
    one compiled pass instead (again the same bits).
    The GPU update is Chainer's own fused kernel.  AMSGrad, AdaBound, weight
    decay and non-contiguous arrays are left to Chainer's code.

    Args:
        hyperparam: As :class:`chainer.optimizers.AdamRule`.
        native (bool): Use the compiled kernel; ``None``: where it is built.

    """

    _scratch = None

    def __init__(self, parent_hyperparam=None, native=None, **kwargs):
        super().__init__(parent_hyperparam, **kwargs)
        if native:
            kernels.check_available()
        self.native = kernels.available() if native is None else native

    def update_core_cpu(self, param):
        hp = self.hyperparam
        grad = param.grad
        if (grad is None or hp.amsgrad or hp.adabound or
                hp.weight_decay_rate != 0 or hp.eta != 1 or
                param.dtype != numpy.float32):
            return super().update_core_cpu(param)
        self._check_eps(numpy.float32)
        m, v = self.state['m'], self.state['v']
        if not all(a.flags.c_contiguous for a in (param.array, grad, m, v)):
            return super().update_core_cpu(param)
        if self.native:
            self._update_native(param.array, grad, m, v)
            return
        if self._scratch is None or self._scratch[0].shape != m.shape:
            self._scratch = (numpy.empty_like(m), numpy.empty_like(m))
        arrays = (param.array, grad, m, v) + self._scratch
        if m.size <= BLOCK:
            self._update_block(*arrays)
            return
        flat = [a.reshape(-1) for a in arrays]
        blocks = threads.slices(m.size, -(-m.size // BLOCK))
        # Threads pay off only for large arrays (an ensemble's weights).
        parts = threads.slices(
            len(blocks), threads.workers() if len(blocks) >= 8 else 1)

        def update(part):
            for block in blocks[part]:
                self._update_block(*(a[block] for a in flat))

        threads.run(update, parts)

    def _update_native(self, param, grad, m, v):
        # The compiled kernel: the same operations in one pass.
        hp = self.hyperparam
        size = m.size
        native = kernels.module()  # MINIBATCH_HYBRID_KERNELS applies here too
        parts = threads.slices(
            size, threads.workers() if size >= NATIVE_SPLIT else 1)

        def update(part):
            native.adam(param=param, grad=grad, m=m, v=v,
                        alpha_t=self.alpha_t, beta1=hp.beta1, beta2=hp.beta2,
                        eps=hp.eps, eta=hp.eta, start=part.start,
                        stop=part.stop)

        threads.run(update, parts)

    def _update_block(self, param, grad, m, v, a, b):
        hp = self.hyperparam
        # m += (1 - beta1) * (grad - m)
        numpy.subtract(grad, m, out=a)
        numpy.multiply(1.0 - hp.beta1, a, out=a)
        m += a
        # v += (1 - beta2) * (grad * grad - v)
        numpy.multiply(grad, grad, out=a)
        numpy.subtract(a, v, out=a)
        numpy.multiply(1.0 - hp.beta2, a, out=a)
        v += a
        # param += -eta * ((alpha_t / (sqrt(v) + eps)) * m)
        numpy.sqrt(v, out=a)
        numpy.add(a, hp.eps, out=a)
        numpy.divide(self.alpha_t, a, out=a)
        numpy.multiply(a, m, out=b)
        numpy.multiply(-hp.eta, b, out=b)
        param += b


class FusedAdam(chainer.optimizers.Adam):
    """:class:`chainer.optimizers.Adam` with :class:`FusedAdamRule`.

    Same arguments and defaults as Chainer's Adam (alpha=0.001,
    beta1=0.9, beta2=0.999, eps=1e-8); same results, fewer allocations.
    ``native`` is passed to :class:`FusedAdamRule`.
    """

    def __init__(self, *args, native=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.native = native

    def create_update_rule(self):
        return FusedAdamRule(self.hyperparam, native=self.native)
