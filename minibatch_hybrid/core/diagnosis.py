"""Which hidden units are alive, and where along x: the plateau's diagnosis.

A unit is *dead* where it is zero at every point; a layer's *coverage* is
the largest x at which any of its units is active (``docs/findings.md``).
"""
import chainer
from chainer import backend
import numpy

from minibatch_hybrid.errors import SettingsError


class Activity(object):
    """Where each hidden unit of K replicas is active: ``counts``
    ``(K, layers, n)`` of points where it is positive, and ``reach``, the
    largest such x (``-inf`` where none is)."""

    def __init__(self, counts, reach):
        self.counts = numpy.asarray(counts, numpy.int64)
        self.reach = numpy.asarray(reach, numpy.float32)
        if self.counts.ndim != 3 or self.counts.shape != self.reach.shape:
            raise SettingsError(
                'Activity takes counts and reach of one shape (K, layers, '
                'n), got {} and {}'.format(self.counts.shape,
                                           self.reach.shape))

    def dead_units(self):
        """``(K, layers, n)`` booleans: units zero on every point."""
        return self.counts == 0

    def dead(self):
        """``(K, layers)``: the number of dead units per hidden layer."""
        return self.dead_units().sum(axis=2)

    def coverage(self):
        """``(K, layers)``: the largest x where any unit is active, or NaN."""
        reach = self.reach.max(axis=2)
        return numpy.where(numpy.isfinite(reach), reach,
                           numpy.float32(numpy.nan)).astype(numpy.float32)


def as_inputs(x):
    """Returns inputs ``(N, 1)`` as float32 on the CPU (any other shape:
    SettingsError)."""
    x = numpy.asarray(backend.CpuDevice().send(x), numpy.float32)
    if x.ndim != 2 or x.shape[1] != 1 or not len(x):
        raise SettingsError('the diagnosis takes inputs of shape (N, 1) '
                            '(the post\'s one-dimensional x), got '
                            '{}'.format(x.shape))
    return x


def _from_hidden(hidden, x):
    # hidden: per layer, (K, N, n) activations at inputs x (N, 1).
    counts = numpy.stack([(h > 0).sum(axis=1) for h in hidden], axis=1)
    xs = x[:, 0][None, :, None]
    reach = numpy.stack(
        [numpy.where(h > 0, xs, -numpy.inf).max(axis=1) for h in hidden],
        axis=1)
    return Activity(counts, reach)


def params_activity(params, x):
    """Returns the Activity of replica-stacked MyChain weights at ``x``."""
    x = as_inputs(x)
    return _from_hidden(list(mychain_layers(params, x)[:2]), x)


def mychain_layers(params, x, dtype=numpy.float32):
    """Returns the hidden layers ``(K, N, n)`` and outputs ``(K, N)`` of
    replica-stacked MyChain weights at inputs ``x``, in NumPy's ``dtype``."""
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


class _LinearInputs(chainer.LinkHook):
    """Records each ``Linear`` link called, and its input, in call order."""

    name = 'LinearInputs'

    def __init__(self):
        self.calls = []

    def forward_preprocess(self, args):
        if isinstance(args.link, chainer.links.Linear):
            self.calls.append((args.link, chainer.as_array(args.args[0])))


def chain_activity(model, x, forward=None):
    """Returns the ``Linear`` links a chain calls, in order, and the
    :class:`Activity` of the hidden layers between them at ``x`` (N, 1).

    ``forward`` runs the chain; by default the ``predict`` of
    ``model.predictor`` or ``model``, else the predictor or the model.
    """
    x = as_inputs(x)
    if forward is None:
        forward = getattr(model, 'predictor', None)
        forward = model if forward is None else forward
        forward = getattr(forward, 'predict', None) or forward
    recorder = _LinearInputs()
    with chainer.using_config('train', False), \
            chainer.no_backprop_mode(), recorder:
        forward(model.device.send(x))
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
