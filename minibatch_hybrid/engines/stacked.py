"""K independent replicas of MyChain, trained in one batched computation."""
import chainer
from chainer import backend

from minibatch_hybrid.core.loss import mlp_loss
from minibatch_hybrid.core.model import PARAMS
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.model import replica_model
from minibatch_hybrid.core.model import stack_models

_NAMES = ('W1', 'b1', 'W2', 'b2', 'W3', 'b3')


class Ensemble(chainer.Link):
    """K replicas of :class:`~minibatch_hybrid.core.model.MyChain`, stacked:
    the numpy engine.

    Replica ``k``'s ``l2.W`` is ``W2[k]``, and so on.  Called with inputs
    and targets ``(K, B, 1)`` (or ``(B, 1)``, shared) it returns the
    ``(K,)`` mean squared errors.  With an elementwise optimizer (Adam),
    replica ``k`` follows the single model's path to float32 rounding.

    Args:
        models (list of MyChain): The replicas' initial weights (copied).

    """

    #: Its parameters' names to ``MyChain``'s (``'W1'`` is ``'l1/W'``).
    stacked_names = dict(zip(_NAMES, PARAMS))

    def __init__(self, models):
        super().__init__()
        stacked = stack_models(models)
        self.n_units = stacked['l2/W'].shape[1]
        with self.init_scope():
            for name, link in zip(_NAMES, PARAMS):
                setattr(self, name, chainer.Parameter(stacked[link]))

    @classmethod
    def from_seeds(cls, seeds, n_units=100):
        """Returns the replicas of ``make_model(n_units, seed)`` per seed."""
        return cls([make_model(n_units, seed) for seed in seeds])

    def __len__(self):
        return self.W1.shape[0]

    def replica(self, k):
        """Returns replica ``k`` as a :class:`MyChain` on the CPU (a copy)."""
        return replica_model(self.arrays(), k)

    def arrays(self):
        """Returns the replica-stacked weights in Chainer's names (views):
        ``'l1/W'`` to the ``(K, n, 1)`` array, and so on."""
        return {link: getattr(self, name).array
                for name, link in zip(_NAMES, PARAMS)}

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
