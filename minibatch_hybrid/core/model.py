"""The post's network, its optimizer, and a real reset."""
import chainer
from chainer import backend
import chainer.functions as F
import chainer.initializers as I
import chainer.links as L
import numpy

from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.core.adam import HYPERPARAMS
from minibatch_hybrid.core.adam import FusedAdam
from minibatch_hybrid.core.loss import mlp_loss

#: Chainer's names of MyChain's parameters, in the order of its layers.
PARAMS = ('l1/W', 'l1/b', 'l2/W', 'l2/b', 'l3/W', 'l3/b')


def n_params(n_units):
    """Returns the number of parameters of a MyChain ``n_units`` wide."""
    return n_units * n_units + 4 * n_units + 1


class MyChain(chainer.Chain):
    """The post's MLP: Linear(1, n), ReLU, Linear(n, n), ReLU, Linear(n, 1).

    Args:
        n_units (int): Width of the hidden layers (the post: 100).
        rng (numpy.random.RandomState): Draws Chainer's default initial
            weights of ``l1``, ``l2``, ``l3`` in turn (None: NumPy's).

    """

    def __init__(self, n_units=100, rng=None):
        super().__init__()
        check_positive_int(n_units, 'n_units')
        with self.init_scope():
            self.l1 = L.Linear(1, n_units, initialW=I.LeCunNormal(rng=rng))
            self.l2 = L.Linear(n_units, n_units,
                               initialW=I.LeCunNormal(rng=rng))
            self.l3 = L.Linear(n_units, 1, initialW=I.LeCunNormal(rng=rng))

    def predict(self, x):
        """Returns the network's output for ``(B, 1)`` inputs."""
        h = F.relu(self.l1(x))
        h = F.relu(self.l2(h))
        return self.l3(h)

    def forward(self, x, t):
        """Returns (and reports) the mean squared error against ``t``, in
        one graph node (:func:`~minibatch_hybrid.core.loss.mlp_loss`)."""
        loss = mlp_loss(x, t, (self.l1.W, self.l1.b, self.l2.W, self.l2.b,
                               self.l3.W, self.l3.b))
        chainer.report({'loss': loss}, self)
        return loss


def make_model(n_units=100, seed=0):
    """Returns a :class:`MyChain` whose initial weights ``seed`` fixes."""
    return MyChain(n_units, rng=numpy.random.RandomState(seed))


def make_optimizer(model):
    """Returns the post's Adam (FusedAdam: its bits) set up on ``model``."""
    return FusedAdam(**HYPERPARAMS._asdict()).setup(model)


class InitialState(object):
    """A copy of a model's parameters (``arrays``: ``'l1/W'`` to a NumPy
    array), to start training from again and again: the post's reset."""

    def __init__(self, model):
        self.arrays = {
            name.lstrip('/'): backend.CpuDevice().send(param.array).copy()
            for name, param in model.namedparams()}

    def restore(self, model, optimizer=None):
        """Puts the saved parameters back into ``model``, and sets
        ``optimizer`` (if given) up on it afresh: no moments, steps, hooks."""
        params = {name.lstrip('/'): param
                  for name, param in model.namedparams()}
        if _shapes(params) != _shapes(self.arrays):
            raise SettingsError(
                'the model does not match the saved state: it has {}, the '
                'state has {}; restore into a model built with the same '
                'architecture (the same n_units)'.format(
                    _shapes(params), _shapes(self.arrays)))
        for key, param in params.items():
            backend.copyto(param.array, self.arrays[key])
            param.cleargrad()
        if optimizer is not None:
            optimizer.setup(model)


def _shapes(arrays):
    return {key: a.shape for key, a in arrays.items()}


def stack_models(models):
    """Returns MyChains' parameters stacked: ``'l1/W'`` to ``(K, n, 1)``,
    and so on, on the CPU (the engines' layout)."""
    arrays = [InitialState(m).arrays for m in models]
    if not arrays:
        raise SettingsError('an ensemble needs at least one model')
    if set(arrays[0]) != set(PARAMS) or any(
            _shapes(a) != _shapes(arrays[0]) for a in arrays):
        raise SettingsError('all models of an ensemble must be MyChain with '
                            'the same n_units')
    return {name: numpy.stack([a[name] for a in arrays]) for name in PARAMS}


def replica_model(arrays, k):
    """Returns replica ``k`` of :func:`stack_models`' ``arrays`` as a
    :class:`MyChain` on the CPU."""
    model = MyChain(arrays['l2/W'].shape[1])
    for name, param in model.namedparams():
        param.array[...] = backend.CpuDevice().send(
            arrays[name.lstrip('/')][k])
    return model
