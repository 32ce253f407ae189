"""K independent replicas of MyChain, trained in one batched computation."""
import chainer
from chainer import backend
import numpy

from minibatch_hybrid.functions import mlp_loss
from minibatch_hybrid.model import InitialState
from minibatch_hybrid.model import MyChain
from minibatch_hybrid.model import make_model

_NAMES = ('W1', 'b1', 'W2', 'b2', 'W3', 'b3')
_LINKS = ('l1/W', 'l1/b', 'l2/W', 'l2/b', 'l3/W', 'l3/b')


def stack_models(models):
    """Returns the models' parameters stacked, on the CPU: ``'l1/W'`` to a
    ``(K, n, 1)`` array, and so on (the layout of both engines' ensembles).

    Raises:
        ValueError: No models, or models that are not MyChain of one width.

    """
    arrays = [InitialState(m).arrays for m in models]
    if not arrays:
        raise ValueError('an ensemble needs at least one model')
    shapes = {tuple(sorted((k, v.shape) for k, v in a.items()))
              for a in arrays}
    if len(shapes) != 1 or set(arrays[0]) != set(_LINKS):
        raise ValueError('all models of an ensemble must be MyChain with the '
                         'same n_units')
    return {link: numpy.stack([a[link] for a in arrays]) for link in _LINKS}


class Ensemble(chainer.Link):
    """K replicas of :class:`~minibatch_hybrid.model.MyChain`, stacked.

    Parameter ``W2`` has shape ``(K, n, n)``: replica ``k``'s ``l2.W`` is
    ``W2[k]``, and so on.  Called with inputs and targets of shape ``(K, B,
    1)`` (one mini-batch per replica) it returns the ``(K,)`` per-replica
    mean squared errors; inputs of shape ``(B, 1)`` are shared by all
    replicas.  Trained by the package's loop
    (:func:`~minibatch_hybrid.training.train`) with one schedule per
    replica, and an elementwise optimizer such as Adam, replica ``k``
    follows the same path as the single model would, to float32 rounding.
    This is the ``numpy`` engine (CuPy's on a GPU); the native engine's
    ensemble is :class:`~minibatch_hybrid.native.NativeEnsemble`.

    Args:
        models (list of MyChain): The replicas' initial weights (copied).

    """

    def __init__(self, models):
        super().__init__()
        stacked = stack_models(models)
        self.n_units = stacked['l2/W'].shape[1]
        with self.init_scope():
            for name, link in zip(_NAMES, _LINKS):
                setattr(self, name, chainer.Parameter(stacked[link]))

    @classmethod
    def from_seeds(cls, seeds, n_units=100):
        """Returns the replicas of ``make_model(n_units, seed)`` per seed."""
        return cls([make_model(n_units, seed) for seed in seeds])

    def __len__(self):
        return self.W1.shape[0]

    def replica(self, k):
        """Returns replica ``k`` as a :class:`MyChain` on the CPU (a copy)."""
        model = MyChain(self.n_units)
        params = dict(model.namedparams())
        for name, link in zip(_NAMES, _LINKS):
            params['/' + link].array[...] = backend.CpuDevice().send(
                getattr(self, name).array[k])
        return model

    def forward(self, x, t):
        """Returns the ``(K,)`` per-replica mean squared errors."""
        x = chainer.as_array(x)
        t = chainer.as_array(t)
        if x.ndim == 2:
            xp = backend.get_array_module(x)
            shape = (len(self),) + x.shape
            x = xp.ascontiguousarray(xp.broadcast_to(x, shape))
            t = xp.ascontiguousarray(xp.broadcast_to(t, shape))
        return mlp_loss(x, t, tuple(getattr(self, name) for name in _NAMES))
