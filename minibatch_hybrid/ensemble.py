"""K independent replicas of MyChain, trained in one batched computation."""
import chainer
from chainer import backend
from chainer import function_node
import numpy

from minibatch_hybrid import _parallel
from minibatch_hybrid.model import make_model

_NAMES = ('W1', 'b1', 'W2', 'b2', 'W3', 'b3')
_LINKS = ('l1/W', 'l1/b', 'l2/W', 'l2/b', 'l3/W', 'l3/b')


class StackedMLPLoss(function_node.FunctionNode):
    """Per-replica mean squared error of K stacked MyChains, in one node.

    Inputs are ``x`` and ``t`` of shape ``(K, B, 1)`` and the six stacked
    parameters; the output has shape ``(K,)``.  Forward and backward are
    written out with batched matrix products, so Chainer builds one graph
    node per step instead of a dozen.  Replica ``k``'s output and gradients
    depend only on replica ``k``'s inputs and parameters.  Double
    backpropagation is not supported.
    """

    def forward(self, inputs):
        x, t, W1, b1, W2, b2, W3, b3 = inputs
        xp = backend.get_array_module(x)
        K, batch = x.shape[:2]
        n = W2.shape[1]
        h1 = xp.empty((K, batch, n), x.dtype)
        h2 = xp.empty((K, batch, n), x.dtype)
        diff = xp.empty((K, batch, 1), x.dtype)

        def part(r):
            # W1 is (K, n, 1): x @ W1^T is an outer product, one multiply.
            xp.multiply(x[r], W1[r].transpose(0, 2, 1), out=h1[r])
            h1[r] += b1[r, None, :]
            xp.maximum(h1[r], 0, out=h1[r])
            xp.matmul(h1[r], W2[r].transpose(0, 2, 1), out=h2[r])
            h2[r] += b2[r, None, :]
            xp.maximum(h2[r], 0, out=h2[r])
            xp.matmul(h2[r], W3[r].transpose(0, 2, 1), out=diff[r])
            diff[r] += b3[r, None, :]
            diff[r] -= t[r]

        _split(xp, K, part)
        loss = (diff * diff).sum(axis=(1, 2)) / diff.dtype.type(batch)
        self._saved = (x, h1, h2, diff, W2, W3)
        return loss.astype(x.dtype, copy=False),

    def backward(self, indexes, grad_outputs):
        x, h1, h2, diff, W2, W3 = self._saved
        xp = backend.get_array_module(x)
        K, batch = x.shape[:2]
        scale = (grad_outputs[0].array * (2.0 / batch)).astype(diff.dtype)
        gW1 = xp.empty((K,) + W2.shape[1:2] + (1,), x.dtype)
        gb1 = xp.empty((K, W2.shape[1]), x.dtype)
        gW2 = xp.empty_like(W2)
        gb2 = xp.empty((K, W2.shape[1]), x.dtype)
        gW3 = xp.empty_like(W3)
        gb3 = xp.empty((K, 1), x.dtype)

        def part(r):
            gy = diff[r] * scale[r, None, None]
            xp.matmul(gy.transpose(0, 2, 1), h2[r], out=gW3[r])
            gy.sum(axis=1, out=gb3[r])
            g = gy @ W3[r]
            g *= h2[r] > 0
            xp.matmul(g.transpose(0, 2, 1), h1[r], out=gW2[r])
            g.sum(axis=1, out=gb2[r])
            g = g @ W2[r]
            g *= h1[r] > 0
            xp.matmul(g.transpose(0, 2, 1), x[r], out=gW1[r])
            g.sum(axis=1, out=gb1[r])

        _split(xp, K, part)
        grads = {2: gW1, 3: gb1, 4: gW2, 5: gb2, 6: gW3, 7: gb3}
        return tuple(None if i not in grads else chainer.Variable(grads[i])
                     for i in indexes)


def _split(xp, K, part):
    """Runs ``part(replicas)`` over slices of the replicas, on all cores.

    On a GPU (or for few replicas) it is one call over all of them.
    """
    if xp is numpy and K >= 4 * _parallel.workers():
        _parallel.run(part, _parallel.slices(K, _parallel.workers()))
    else:
        part(slice(None))


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

    Args:
        models (list of MyChain): The replicas' initial weights (copied).

    """

    def __init__(self, models):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError('an ensemble needs at least one model')
        arrays = [dict((k.lstrip('/'), p.array) for k, p in m.namedparams())
                  for m in models]
        shapes = {tuple(a[name].shape for name in _LINKS) for a in arrays}
        if len(shapes) != 1:
            raise ValueError('all models of an ensemble must have the same '
                             'n_units')
        self.n_units = arrays[0]['l2/W'].shape[0]
        with self.init_scope():
            for name, link in zip(_NAMES, _LINKS):
                setattr(self, name, chainer.Parameter(
                    numpy.stack([backend.CpuDevice().send(a[link])
                                 for a in arrays])))

    @classmethod
    def from_seeds(cls, seeds, n_units=100):
        """Returns the replicas of ``make_model(n_units, seed)`` per seed."""
        return cls([make_model(n_units, seed) for seed in seeds])

    def __len__(self):
        return self.W1.shape[0]

    def replica(self, k):
        """Returns replica ``k`` as a :class:`MyChain` on the CPU (a copy)."""
        from minibatch_hybrid.model import MyChain
        model = MyChain(self.n_units)
        for name, link in zip(_NAMES, _LINKS):
            target = getattr(getattr(model, link[:2]), link[3:])
            target.array[...] = backend.CpuDevice().send(
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
        params = tuple(getattr(self, name) for name in _NAMES)
        loss, = StackedMLPLoss().apply((x, t) + params)
        return loss
