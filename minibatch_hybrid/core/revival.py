"""The plateau's cure: dead units revived, the function unchanged.

A dead unit gets fresh incoming weights, a zero bias and zero outgoing
weights; Adam's ``m`` and ``v`` of those entries are zeroed, its step
count kept (``docs/findings.md``: the cure).
"""
from chainer import backend
import numpy

from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.errors import SettingsError

#: The hidden layers revived by default: the second, whose coverage decides
#: the plateau.
DEFAULT_LAYERS = (2,)

#: MyChain's incoming weights and bias of hidden layer l, and next weights.
_NAMES = {1: ('l1/W', 'l1/b', 'l2/W'), 2: ('l2/W', 'l2/b', 'l3/W')}


def fresh_weights(seed, epoch, layer, n_out, n_in):
    """Returns ``(n_out, n_in)`` float32 LeCun-normal weights for hidden
    ``layer`` revived at ``epoch``, drawn from ``[seed, epoch, layer]``."""
    rng = numpy.random.default_rng([seed, epoch, layer])
    return (rng.standard_normal((n_out, n_in)) *
            numpy.sqrt(1.0 / n_in)).astype(numpy.float32)


def revive_units(w_in, b_in, w_out, dead, rows, states=()):
    """Revives one layer's ``dead`` units in place; returns their number.

    Dead unit ``i`` gets ``rows[i]`` in ``w_in``, a zero bias and a zero
    column in the next layer's ``w_out``; so do the optimizer's arrays in
    ``states``, triples shaped as ``(w_in, b_in, w_out)`` (or ``None``).
    """
    dead = numpy.asarray(dead, bool)
    xp = backend.get_array_module(w_in)
    index = xp.asarray(numpy.flatnonzero(dead))
    w_in[index] = xp.asarray(rows[dead], w_in.dtype)
    b_in[index] = 0
    w_out[:, index] = 0
    for triple in states:
        for state, cut in zip(triple, ((index,), (index,),
                                       (slice(None), index))):
            if state is not None:
                state[cut] = 0
    return int(dead.sum())


def check_layers(layers, hidden=None):
    """Returns ``layers`` as a sorted tuple of hidden-layer numbers, from
    1 to ``hidden`` (no upper bound if None), or raises SettingsError."""
    values = list(layers) if isinstance(layers, (list, tuple)) else None
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or
                         v < 1 or (hidden is not None and v > hidden)
                         for v in values):
        raise SettingsError(
            'layers to revive are hidden-layer numbers from 1{}, given as '
            'a tuple such as (2,); got {!r}'.format(
                '' if hidden is None else ' to {}'.format(hidden), layers))
    return tuple(sorted(set(values)))


class Revival(object):
    """An intervention of :func:`~minibatch_hybrid.core.loop.train`: after
    ``epoch`` epochs, revives the dead units of ``layers`` (1, 2) in the
    chosen ``replicas``, with one seed per replica in ``seeds``.  Then
    ``revived`` holds the units revived per replica and layer."""

    def __init__(self, epoch, replicas, seeds, layers=DEFAULT_LAYERS):
        check_positive_int(epoch, 'the revival epoch')
        self.epoch = epoch
        self.replicas = sorted(set(int(k) for k in replicas))
        self.seeds = [int(s) for s in seeds]
        self.layers = check_layers(layers, hidden=2)
        outside = [k for k in self.replicas
                   if not 0 <= k < len(self.seeds)]
        if outside:
            raise SettingsError(
                'replicas to revive must be numbered 0 to {} (one seed '
                'each), got {}'.format(len(self.seeds) - 1, outside))
        self.revived = None

    def __call__(self, engine, x):
        """Revives the dead units of ``engine``, trained on ``x``."""
        if engine.replicas != len(self.seeds):
            raise SettingsError(
                'the revival has {} seeds for an ensemble of {} replicas: '
                'give one seed per replica'.format(len(self.seeds),
                                                   engine.replicas))
        dead = engine.activity(x).dead_units()
        cpu = backend.CpuDevice()
        state = {which: {name: numpy.array(cpu.send(a))
                         for name, a in engine.arrays(which).items()}
                 for which in ('params', 'm', 'v')}
        params, m, v = state.values()
        self.revived = numpy.zeros((len(self.seeds), len(self.layers)), int)
        for k in self.replicas:
            for j, layer in enumerate(self.layers):
                a, b, c = _NAMES[layer]
                rows = fresh_weights(self.seeds[k], self.epoch, layer,
                                     *params[a].shape[1:])
                self.revived[k, j] = revive_units(
                    params[a][k], params[b][k], params[c][k],
                    dead[k, layer - 1], rows,
                    [(s[a][k], s[b][k], s[c][k]) for s in (m, v)])
        for which, arrays in state.items():
            engine.load(which, arrays)
