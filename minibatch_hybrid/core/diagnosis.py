"""Which hidden units are alive, and where along x: the plateau's diagnosis.

A ReLU unit is *dead* on a data set when it is zero at every point of it:
it passes no gradient and never comes back by itself.  For the post's
one-dimensional input the place where units are alive matters as much as
their number: a hidden layer's *coverage* is the largest training x at
which any of its units is active.  Where the second layer's coverage ends
before the data do, the network is a constant beyond it
(``docs/findings.md`` derives the plateau this gives).

:class:`Activity` holds the per-unit facts for K replicas; it comes from an
engine (``engine.activity(x)``: the native engine counts them in its own
forward pass, so the same on every CPU), from replica-stacked weights
(:func:`params_activity`) or from any Chainer chain of ``Linear`` layers
with ReLUs between them (:func:`chain_activity`).
:mod:`~minibatch_hybrid.core.revival` is the cure that acts on it.
"""
import chainer
from chainer import backend
import numpy

from minibatch_hybrid.errors import SettingsError


class Activity(object):
    """Where each hidden unit of K replicas is active on a data set.

    Args:
        counts (numpy.ndarray): ``(K, layers, n)`` integers: the points at
            which unit ``i`` of hidden layer ``l + 1`` is positive.
        reach (numpy.ndarray): Same shape, float: the largest x at which
            the unit is positive, ``-inf`` where it never is.

    """

    def __init__(self, counts, reach):
        self.counts = numpy.asarray(counts, numpy.int64)
        self.reach = numpy.asarray(reach, numpy.float32)
        if self.counts.ndim != 3 or self.counts.shape != self.reach.shape:
            raise SettingsError(
                'Activity takes counts and reach of one shape (K, layers, '
                'n), got {} and {}'.format(self.counts.shape,
                                           self.reach.shape))

    def __len__(self):
        return self.counts.shape[0]

    def dead_units(self):
        """``(K, layers, n)`` booleans: units zero on every point."""
        return self.counts == 0

    def dead(self):
        """``(K, layers)``: the number of dead units per hidden layer."""
        return self.dead_units().sum(axis=2)

    def coverage(self):
        """``(K, layers)`` float32: the largest x at which any unit of the
        layer is active; NaN where none is."""
        reach = self.reach.max(axis=2)
        return numpy.where(numpy.isfinite(reach), reach,
                           numpy.float32(numpy.nan)).astype(numpy.float32)


def as_inputs(x):
    """Returns inputs ``(N, 1)`` as float32 on the CPU, or raises
    SettingsError for any other shape."""
    x = numpy.asarray(backend.CpuDevice().send(x), numpy.float32)
    if x.ndim != 2 or x.shape[1] != 1 or not len(x):
        raise SettingsError('the diagnosis takes inputs of shape (N, 1) '
                            '(the post\'s one-dimensional x), got '
                            '{}'.format(x.shape))
    return x


def _from_hidden(hidden, x):
    """Returns the Activity of hidden activations: a list, per layer, of
    ``(K, N, n)`` arrays, at inputs ``x`` ``(N, 1)``."""
    counts = numpy.stack([(h > 0).sum(axis=1) for h in hidden], axis=1)
    xs = x[:, 0][None, :, None]
    reach = numpy.stack(
        [numpy.where(h > 0, xs, -numpy.inf).max(axis=1) for h in hidden],
        axis=1)
    return Activity(counts, reach)


def params_activity(params, x):
    """Returns the Activity of replica-stacked ``MyChain`` weights.

    Computed with NumPy's products (so, like the numpy engine, the same
    bits on one machine and software stack); the native engine counts in
    its own arithmetic instead (``NativeEnsemble.activity``).

    Args:
        params (dict): ``'l1/W'`` to a ``(K, n, 1)`` array, and so on (an
            engine's ``arrays('params')``), on any device.
        x: Inputs, ``(N, 1)``.

    """
    x = as_inputs(x)
    return _from_hidden(list(mychain_layers(params, x)[:2]), x)


def mychain_layers(params, x, dtype=numpy.float32):
    """Returns ``(h1, h2, y)``: both hidden layers ``(K, N, n)`` and the
    outputs ``(K, N)`` of replica-stacked ``MyChain`` weights at inputs
    ``x`` (``(N, 1)`` or ``(N,)``), in NumPy, in ``dtype``."""
    cpu = backend.CpuDevice()
    p = {name: numpy.asarray(cpu.send(a), dtype)
         for name, a in params.items()}
    x = numpy.asarray(cpu.send(x), dtype).reshape(1, -1, 1)
    h1 = numpy.maximum(x * p['l1/W'][:, :, 0][:, None, :]
                       + p['l1/b'][:, None, :], 0)
    h2 = numpy.maximum(numpy.matmul(h1, p['l2/W'].transpose(0, 2, 1))
                       + p['l2/b'][:, None, :], 0)
    y = numpy.matmul(h2, p['l3/W'].transpose(0, 2, 1))[..., 0] + p['l3/b']
    return h1, h2, y


def _default_forward(model):
    """``model.predictor`` (a ``Classifier``'s: its ``predict`` if it has
    one, as ``MyChain`` does), else ``model.predict``, else ``model``."""
    predictor = getattr(model, 'predictor', None)
    if predictor is not None:
        return getattr(predictor, 'predict', None) or predictor
    return getattr(model, 'predict', None) or model


class _LinearInputs(chainer.LinkHook):
    """Records each ``Linear`` link called, and its input, in call order."""

    name = 'LinearInputs'

    def __init__(self):
        self.calls = []

    def forward_preprocess(self, args):
        if isinstance(args.link, chainer.links.Linear):
            self.calls.append((args.link, chainer.as_array(args.args[0])))


def chain_activity(model, x, forward=None):
    """Returns a chain's ``Linear`` layers and its hidden units' Activity.

    Works for any chain of ``Linear`` layers with a ReLU after each hidden
    one, called in that order (the post's ``MyChain``, or your own): the
    forward pass is run on ``x`` in test mode, and the ``Linear`` links are
    recorded as they are called.  Hidden layer ``l``'s activations are the
    input of the next ``Linear``; a unit is active where its value there is
    positive.

    Args:
        model (chainer.Link): The chain.
        x: Inputs ``(N, 1)`` (the training x).
        forward (callable): Maps inputs to outputs.  By default
            ``model.predictor`` (a ``Classifier``'s; its ``predict`` if it
            has one), else ``model.predict`` (``MyChain``'s), else
            ``model`` itself.

    Returns:
        tuple: ``(links, activity)``: the ``Linear`` links in call order,
        and an :class:`Activity` of one replica with a layer per hidden
        layer (all of one width: ``n``).

    Raises:
        SettingsError: The forward pass calls fewer than two ``Linear``
            links, one twice, or hidden layers of different widths.

    """
    x = as_inputs(x)
    if forward is None:
        forward = _default_forward(model)
    recorder = _LinearInputs()
    device_x = model.device.send(x)
    with chainer.using_config('train', False), \
            chainer.no_backprop_mode(), recorder:
        forward(device_x)
    links = [link for link, _ in recorder.calls]
    if len(links) < 2 or len(set(map(id, links))) != len(links):
        raise SettingsError(
            'the forward pass must call two or more chainer.links.Linear, '
            'each once, with a ReLU between them; it called {}: pass '
            'forward= a function that runs the layers from x'.format(
                len(links)))
    cpu = backend.CpuDevice()
    hidden = [numpy.asarray(cpu.send(a), numpy.float32)[None]
              for _, a in recorder.calls[1:]]
    if len({h.shape[2] for h in hidden}) != 1:
        raise SettingsError('revival and the diagnosis take hidden layers '
                            'of one width; got {}'.format(
                                [h.shape[2] for h in hidden]))
    return links, _from_hidden(hidden, x)

