"""The post's network, its optimizer, and a real reset."""
import chainer
from chainer import backend
import chainer.functions as F
import chainer.initializers as I
import chainer.links as L
import numpy

from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.core.adam import FusedAdam
from minibatch_hybrid.core.loss import mlp_loss

#: Chainer's names of MyChain's parameters, in the order of its layers.
PARAMS = ('l1/W', 'l1/b', 'l2/W', 'l2/b', 'l3/W', 'l3/b')


def n_params(n_units):
    """Returns the number of MyChain's parameters: ``n`` weights and ``n``
    biases of ``l1``, ``n * n`` and ``n`` of ``l2``, ``n`` and 1 of
    ``l3``."""
    return n_units * n_units + 4 * n_units + 1


class MyChain(chainer.Chain):
    """The post's MLP: Linear(1, n), ReLU, Linear(n, n), ReLU, Linear(n, 1).

    Called with inputs and targets it returns the mean squared error and
    reports it as ``'loss'`` (so it works as the target of a Chainer
    updater); :meth:`predict` gives the outputs.  Inputs are float32 ``(B,
    1)`` arrays: unlike the post, nothing is converted on each call.

    The loss is computed by :func:`~minibatch_hybrid.core.loss.mlp_loss`,
    one graph node that performs exactly the operations of the three
    ``Linear`` links, the ReLUs and ``F.mean_squared_error`` (the same bits,
    forward and backward) at a fraction of Chainer's per-node cost.

    Args:
        n_units (int): Width of the two hidden layers (the post: 100).
        rng (numpy.random.RandomState): Generator of the initial weights,
            drawn with Chainer's default initializer of ``Linear``
            (:class:`~chainer.initializers.LeCunNormal`; biases zero) for
            ``l1``, ``l2`` and ``l3`` in turn.  ``None`` draws from NumPy's
            global generator, as Chainer does by default.

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
        """Returns (and reports) the mean squared error against ``t``."""
        loss = mlp_loss(x, t, (self.l1.W, self.l1.b, self.l2.W, self.l2.b,
                               self.l3.W, self.l3.b))
        chainer.report({'loss': loss}, self)
        return loss


def make_model(n_units=100, seed=0):
    """Returns a :class:`MyChain` whose initial weights are fixed by ``seed``.

    Args:
        n_units (int): Width of the hidden layers.
        seed (int): Seed of a :class:`numpy.random.RandomState` used for the
            initial weights and nothing else.

    """
    return MyChain(n_units, rng=numpy.random.RandomState(seed))


def make_optimizer(model):
    """Returns the post's optimizer, Adam with its defaults, on ``model``.

    (alpha=0.001, beta1=0.9, beta2=0.999, eps=1e-8.)  It is
    :class:`~minibatch_hybrid.core.adam.FusedAdam`, which gives the same
    bits as :class:`chainer.optimizers.Adam` with fewer temporary arrays.
    """
    return FusedAdam().setup(model)


class InitialState(object):
    """A copy of a model's parameters, to start training from again and again.

    This answers the post's question "how do I reset a Chainer model?": take
    an :class:`InitialState` before training, and :meth:`restore` it (with
    the optimizer) before the next run.  Both runs then start from identical
    weights and a fresh optimizer, which is what a paired comparison needs.

    .. doctest::

        >>> model = make_model(n_units=4, seed=0)
        >>> optimizer = make_optimizer(model)
        >>> initial = InitialState(model)
        >>> model.l1.W.array[...] = 0  # training would change it
        >>> initial.restore(model, optimizer)
        >>> bool((model.l1.W.array == initial.arrays['l1/W']).all())
        True

    Args:
        model (chainer.Link): The model whose parameters are copied (on the
            CPU, whatever device they are on).

    Attributes:
        arrays (dict): Parameter path (``'l1/W'``) to a NumPy copy.

    """

    def __init__(self, model):
        self.arrays = {
            _key(name): backend.CpuDevice().send(param.array).copy()
            for name, param in model.namedparams()}

    def restore(self, model, optimizer=None):
        """Puts the saved parameters back and restarts the optimizer.

        Args:
            model (chainer.Link): A model with the same parameters (it may be
                on another device than when the state was taken).
            optimizer (chainer.Optimizer): If given, it is set up on
                ``model`` again (:meth:`chainer.Optimizer.setup`), which
                discards its state: Adam's moments, its step counts and any
                hooks.  Add hooks again after a restore.

        """
        params = {_key(name): param for name, param in model.namedparams()}
        if set(params) != set(self.arrays):
            raise SettingsError(
                'the model does not match the saved state: it has parameters '
                '{}, the state has {}; restore into a model built with the '
                'same architecture'.format(sorted(params),
                                           sorted(self.arrays)))
        for key, param in params.items():
            if param.shape != self.arrays[key].shape:
                raise SettingsError(
                    'parameter {} has shape {}, the state has {}; restore '
                    'into a model built with the same n_units'.format(
                        key, param.shape, self.arrays[key].shape))
            backend.copyto(param.array, self.arrays[key])
            param.cleargrad()
        if optimizer is not None:
            optimizer.setup(model)


def _key(name):
    return name.lstrip('/')


def stack_models(models):
    """Returns the models' parameters stacked, on the CPU: ``'l1/W'`` to a
    ``(K, n, 1)`` array, and so on (the layout of the engines' ensembles).

    Raises:
        SettingsError: No models, or models that are not MyChain of one
            width.

    """
    arrays = [InitialState(m).arrays for m in models]
    if not arrays:
        raise SettingsError('an ensemble needs at least one model')
    shapes = {tuple(sorted((k, v.shape) for k, v in a.items()))
              for a in arrays}
    if len(shapes) != 1 or set(arrays[0]) != set(PARAMS):
        raise SettingsError('all models of an ensemble must be MyChain with '
                            'the same n_units')
    return {name: numpy.stack([a[name] for a in arrays]) for name in PARAMS}


def replica_model(arrays, k):
    """Returns replica ``k`` of replica-stacked ``arrays`` (``'l1/W'`` to a
    ``(K, n, 1)`` array, and so on) as a :class:`MyChain` on the CPU."""
    model = MyChain(arrays['l2/W'].shape[1])
    for name, param in model.namedparams():
        param.array[...] = backend.CpuDevice().send(arrays[_key(name)][k])
    return model
