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

#: Parameters of at least this many elements are updated on all cores.
NATIVE_SPLIT = 65536


def step_sizes(t, steps, **hyperparams):
    """Returns Chainer's ``alpha_t`` of steps ``t + 1`` to ``t + steps`` in
    float32; ``hyperparams`` replace fields of :data:`HYPERPARAMS`."""
    hp = HYPERPARAMS._replace(**hyperparams)
    return numpy.array([adam._learning_rate(hp, s)
                        for s in range(t + 1, t + steps + 1)], numpy.float32)


class FusedAdamRule(adam.AdamRule):
    """Chainer's AdamRule, its float32 update done in place by the compiled
    kernels (the same operations in the same order: the same bits), on all
    cores for a large parameter.  Where the kernels are not built
    (``native=None`` asks for them where they are), and for AMSGrad,
    AdaBound, weight decay, ``eta != 1``, other dtypes and the GPU, it is
    Chainer's own update."""

    def __init__(self, parent_hyperparam=None, native=None, **kwargs):
        super().__init__(parent_hyperparam, **kwargs)
        if native:
            kernels.check_available()
        self.native = kernels.available() if native is None else native

    def update_core_cpu(self, param):
        hp = self.hyperparam
        arrays = (param.array, param.grad, self.state.get('m'),
                  self.state.get('v'))
        if (not self.native or param.grad is None or hp.amsgrad or
                hp.adabound or hp.weight_decay_rate != 0 or hp.eta != 1 or
                param.dtype != numpy.float32 or
                not all(a.flags.c_contiguous for a in arrays)):
            return super().update_core_cpu(param)
        self._check_eps(numpy.float32)
        p, g, m, v = arrays
        native = kernels.module()  # MINIBATCH_HYBRID_KERNELS applies

        def update(part):
            native.adam(param=p, grad=g, m=m, v=v, alpha_t=self.alpha_t,
                        beta1=hp.beta1, beta2=hp.beta2, eps=hp.eps,
                        eta=hp.eta, start=part.start, stop=part.stop)

        threads.run(update, threads.slices(
            param.size, threads.workers() if param.size >= NATIVE_SPLIT
            else 1))


class FusedAdam(chainer.optimizers.Adam):
    """Chainer's Adam (same arguments) with :class:`FusedAdamRule`."""

    def __init__(self, *args, native=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.native = native

    def create_update_rule(self):
        return FusedAdamRule(self.hyperparam, native=self.native)
