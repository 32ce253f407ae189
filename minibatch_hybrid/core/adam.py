"""Adam: the post's hyperparameters, and Chainer's update done in place."""
import collections

import chainer
from chainer.optimizers import adam
import numpy

from minibatch_hybrid import kernels
from minibatch_hybrid.kernels import threads

#: Adam's hyperparameters, the struct every optimizer and engine here takes.
Hyperparams = collections.namedtuple(
    'Hyperparams', ('alpha', 'beta1', 'beta2', 'eps', 'eta'))

#: The post's (Chainer's defaults).
HYPERPARAMS = Hyperparams(alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                          eta=1.0)

#: Elements per block of the NumPy update: its six arrays stay in the cache.
BLOCK = 131072
#: Parameters of at least this many elements are updated on all cores.
NATIVE_SPLIT = 65536


def step_sizes(t, steps, **hyperparams):
    """Returns Chainer's ``alpha_t`` of steps ``t + 1`` to ``t + steps`` in
    float32; ``hyperparams`` replace fields of :data:`HYPERPARAMS`."""
    hp = HYPERPARAMS._replace(**hyperparams)
    return numpy.array([adam._learning_rate(hp, s)
                        for s in range(t + 1, t + steps + 1)], numpy.float32)


class FusedAdamRule(adam.AdamRule):
    """Chainer's AdamRule, its float32 operations in its order done in place
    on the CPU: in cache-sized blocks on all cores, or compiled (``native``:
    ``None`` where the kernels are built).  AMSGrad, AdaBound, weight decay,
    ``eta != 1``, other dtypes and the GPU are Chainer's own code."""

    _scratch = None

    def __init__(self, parent_hyperparam=None, native=None, **kwargs):
        super().__init__(parent_hyperparam, **kwargs)
        if native:
            kernels.check_available()
        self.native = kernels.available() if native is None else native

    def update_core_cpu(self, param):
        hp = self.hyperparam
        if (param.grad is None or hp.amsgrad or hp.adabound or
                hp.weight_decay_rate != 0 or hp.eta != 1 or
                param.dtype != numpy.float32):
            return super().update_core_cpu(param)
        p, g, m, v = arrays = (param.array, param.grad, self.state['m'],
                               self.state['v'])
        if not all(a.flags.c_contiguous for a in arrays):
            return super().update_core_cpu(param)
        self._check_eps(numpy.float32)
        size = param.size
        if self.native:
            native = kernels.module()  # MINIBATCH_HYBRID_KERNELS applies

            def update(part):
                native.adam(param=p, grad=g, m=m, v=v, alpha_t=self.alpha_t,
                            beta1=hp.beta1, beta2=hp.beta2, eps=hp.eps,
                            eta=hp.eta, start=part.start, stop=part.stop)
        else:
            if self._scratch is None or self._scratch[0].size != size:
                self._scratch = (numpy.empty(size, numpy.float32),
                                 numpy.empty(size, numpy.float32))
            flat = [a.reshape(-1) for a in arrays] + list(self._scratch)

            def update(part):
                for i in range(part.start, part.stop, BLOCK):
                    block = slice(i, min(i + BLOCK, part.stop))
                    self._update_block(*(a[block] for a in flat))

        threads.run(update, threads.slices(
            size, threads.workers() if size >= NATIVE_SPLIT else 1))

    def _update_block(self, param, grad, m, v, a, b):
        hp = self.hyperparam
        # Chainer's operations, in its order: m += (1 - beta1) * (grad - m),
        # v += (1 - beta2) * (grad * grad - v),
        # param += -eta * ((alpha_t / (sqrt(v) + eps)) * m).
        numpy.subtract(grad, m, out=a)
        numpy.multiply(1.0 - hp.beta1, a, out=a)
        m += a
        numpy.multiply(grad, grad, out=a)
        numpy.subtract(a, v, out=a)
        numpy.multiply(1.0 - hp.beta2, a, out=a)
        v += a
        numpy.sqrt(v, out=a)
        numpy.add(a, hp.eps, out=a)
        numpy.divide(self.alpha_t, a, out=a)
        numpy.multiply(a, m, out=b)
        numpy.multiply(-hp.eta, b, out=b)
        param += b


class FusedAdam(chainer.optimizers.Adam):
    """Chainer's Adam (same arguments) with :class:`FusedAdamRule`."""

    def __init__(self, *args, native=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.native = native

    def create_update_rule(self):
        return FusedAdamRule(self.hyperparam, native=self.native)
