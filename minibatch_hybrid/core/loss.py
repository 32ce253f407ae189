"""MyChain's loss in one graph node (not twenty), for one model or K stacked.

For one model, the very operations of Chainer's ``Linear``, ``relu`` and
``mean_squared_error`` in their order: the same bits.
"""
import chainer
from chainer import backend
from chainer import function_node
import numpy

from minibatch_hybrid.kernels import threads


def _t(a):
    return a.swapaxes(-1, -2)


def _split(xp, x, part):
    """Runs ``part(index)`` over the replicas, on all cores if worthwhile."""
    if xp is numpy and x.ndim == 3 and len(x) >= 4 * threads.workers():
        threads.run(part, threads.slices(len(x), threads.workers()))
    else:
        part(Ellipsis)


class MLPLoss(function_node.FunctionNode):
    """:func:`mlp_loss`'s node; gradients flow to the parameters, once."""

    def forward(self, inputs):
        x, t, W1, b1, W2, b2, W3, b3 = inputs
        xp = backend.get_array_module(x)
        lead = x.shape[:-2]
        batch, n = x.shape[-2], W2.shape[-1]
        h1 = xp.empty(lead + (batch, n), x.dtype)
        h2 = xp.empty(lead + (batch, n), x.dtype)
        y = xp.empty(lead + (batch, 1), x.dtype)

        def part(i):
            _affine(xp, x[i], W1[i], b1[i], h1[i])
            xp.maximum(h1[i], 0, out=h1[i])
            _affine(xp, h1[i], W2[i], b2[i], h2[i])
            xp.maximum(h2[i], 0, out=h2[i])
            _affine(xp, h2[i], W3[i], b3[i], y[i])

        _split(xp, x, part)
        diff = y - t
        if diff.ndim == 2:  # as F.mean_squared_error
            flat = diff.ravel()
            if xp is numpy:
                loss = numpy.array(flat.dot(flat) / flat.size, flat.dtype)
            else:
                loss = flat.dot(flat) / flat.dtype.type(flat.size)
        else:
            loss = (diff * diff).sum(axis=(1, 2)) / diff.dtype.type(batch)
        self._saved = (x, h1, h2, diff, W2, W3)
        return loss,

    def backward(self, indexes, grad_outputs):
        x, h1, h2, diff, W2, W3 = self._saved
        xp = backend.get_array_module(x)
        gloss = grad_outputs[0].array
        # As F.mean_squared_error: (gy * diff) * (2 / size), in x's dtype.
        scale = 2.0 / (diff.size if diff.ndim == 2 else diff.shape[1])
        gy = gloss[..., None, None] * diff
        gy *= diff.dtype.type(scale)
        grads = [xp.empty(p.shape, p.dtype) for p in self.inputs[2:]]
        gW1, gb1, gW2, gb2, gW3, gb3 = grads

        def part(i):
            # As Linear's backward: gW = gy^T x, gb = sum(gy), gx = gy W;
            # as ReLU's: gx = gy * (y > 0).
            g = gy[i]
            xp.matmul(_t(g), h2[i], out=gW3[i])
            g.sum(axis=-2, out=gb3[i])
            g = xp.matmul(g, W3[i])
            g *= h2[i] > 0
            xp.matmul(_t(g), h1[i], out=gW2[i])
            g.sum(axis=-2, out=gb2[i])
            g = xp.matmul(g, W2[i])
            g *= h1[i] > 0
            xp.matmul(_t(g), x[i], out=gW1[i])
            g.sum(axis=-2, out=gb1[i])

        _split(xp, x, part)
        return tuple(chainer.Variable(grads[i - 2]) if i >= 2 else None
                     for i in indexes)


def _affine(xp, x, W, b, out):
    # As Linear's forward: y = x W^T, then y += b.
    xp.matmul(x, _t(W), out=out)
    out += b[..., None, :]


def mlp_loss(x, t, params):
    """Returns the mean squared error of MyChain's ``params`` (``W1, b1,
    ..., b3``) on inputs ``x`` and targets ``t`` ``(B, 1)``: a Variable
    ``()``; with a leading replica axis K on all of them, ``(K,)``."""
    loss, = MLPLoss().apply((x, t) + tuple(params))
    return loss
