"""The cure for the plateau: dead units revived, the function unchanged.

At a chosen epoch, each dead unit of a hidden layer (zero at every
training point, :mod:`~minibatch_hybrid.core.diagnosis`) gets fresh
incoming weights, drawn from the seed and the epoch, and a zero bias; its
outgoing weights become zero, so the network's outputs at the training
points are unchanged at that moment (bit for bit where the dead units are
found by the engine's own forward pass, as the native engine's are; to
float32 rounding for the numpy engine, whose diagnosis recomputes the
forward pass in NumPy).  Between training points a unit dead at every one
of them may have been positive: its small share of the output there goes.
The optimizer's state of every changed entry (Adam's ``m`` and ``v``) is
zeroed, and Adam's step count is kept: the revived entries' first steps are
then larger than ``alpha``, by Adam's bias correction, about 3 to 6 times
over their first hundred updates at the switch of the post's hybrid.  The
next updates give the unit a use.  ``docs/findings.md`` measures
it against the other remedies tried.

:class:`Revival` does this to chosen replicas of any engine of the loop
(:func:`~minibatch_hybrid.core.loop.train` takes it as an intervention);
:class:`~minibatch_hybrid.chainer_ext.revive.ReviveDeadUnits` does it to a
Chainer model in a Trainer.
"""
from chainer import backend
import numpy

from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.errors import SettingsError

#: The hidden layers revived unless told otherwise: the second, the one
#: whose coverage decides the plateau (the first alone, or both, did
#: worse: ``docs/findings.md``).
DEFAULT_LAYERS = (2,)


def fresh_weights(seed, epoch, layer, n_out, n_in):
    """Returns the new incoming weights of hidden ``layer`` (1, 2, ...)
    revived at ``epoch``, a ``(n_out, n_in)`` float32 array.

    Drawn as Chainer's default ``Linear`` initializer draws (LeCun normal:
    mean 0, standard deviation ``1 / sqrt(n_in)``) from a NumPy
    ``Generator`` seeded with ``[seed, epoch, layer]``: the seed and the
    epoch decide them, and unit ``i`` gets row ``i`` whichever units are
    dead.
    """
    rng = numpy.random.default_rng([seed, epoch, layer])
    return (rng.standard_normal((n_out, n_in)) *
            numpy.sqrt(1.0 / n_in)).astype(numpy.float32)


def revive_units(w_in, b_in, w_out, dead, rows, states=()):
    """Revives one layer's dead units in place; the function is unchanged.

    Dead unit ``i`` gets ``rows[i]`` as its incoming weights and a zero
    bias; its outgoing weights (column ``i`` of the next layer) become
    zero, so the network computes the same function until the next update.
    The optimizer's state of every changed entry (Adam's ``m`` and ``v``,
    or whatever arrays ``states`` names) is zeroed.

    Args:
        w_in, b_in: The layer's ``(n, n_in)`` weights and ``(n,)`` bias.
        w_out: The next layer's ``(n_next, n)`` weights.
        dead: ``(n,)`` booleans (NumPy).
        rows: ``(n, n_in)`` new incoming weights (:func:`fresh_weights`).
        states: ``(s_w_in, s_b_in, s_w_out)`` triples of state arrays of
            the same shapes as the parameters (Adam's ``m``, then ``v``),
            ``None`` for a parameter without that state.

    Returns:
        int: The number of units revived.

    """
    dead = numpy.asarray(dead, bool)
    if not dead.any():
        return 0
    xp = backend.get_array_module(w_in)
    index = xp.asarray(numpy.flatnonzero(dead))
    w_in[index] = xp.asarray(rows[dead], w_in.dtype)
    b_in[index] = 0
    w_out[:, index] = 0
    for s_w_in, s_b_in, s_w_out in states:
        for state, cut in ((s_w_in, (index,)), (s_b_in, (index,)),
                           (s_w_out, (slice(None), index))):
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


#: MyChain's names of hidden layer l's incoming weights and bias, and of
#: the next layer's weights.
_NAMES = {1: ('l1/W', 'l1/b', 'l2/W'), 2: ('l2/W', 'l2/b', 'l3/W')}


class Revival(object):
    """Revives the dead units of chosen replicas after an epoch.

    An intervention of :func:`~minibatch_hybrid.core.loop.train`: after
    ``epoch`` epochs, for each replica ``k`` in ``replicas``, the dead
    units of each hidden layer in ``layers`` (on the training inputs, as
    the engine computes them) are revived (:func:`revive_units`), with new
    weights drawn from ``seeds[k]`` and ``epoch`` (:func:`fresh_weights`).
    The engine's other replicas are untouched, bit for bit.  Layers are
    revived in order: with both, a revived second-layer unit's fresh
    incoming weights include those from revived first-layer units (its own
    outgoing weights are zero, so the outputs stay the same).

    Args:
        epoch (int): Epochs done when it acts (1 or more).
        replicas (list of int): The replicas it revives.
        seeds (list of int): Each replica's seed (one per replica of the
            engine).
        layers (tuple of int): Hidden layers (1, 2) to revive.

    Attributes:
        revived (numpy.ndarray): After it acted, ``(K, layers)``: the
            units revived per replica and layer.

    """

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
        """Revives the replicas' dead units in ``engine`` (whose training
        inputs are ``x``)."""
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
        params, m, v = state['params'], state['m'], state['v']
        self.revived = numpy.zeros((len(self.seeds), len(self.layers)), int)
        for k in self.replicas:
            for j, layer in enumerate(self.layers):
                a, b, c = _NAMES[layer]
                n, n_in = params[a].shape[1:]
                rows = fresh_weights(self.seeds[k], self.epoch, layer, n,
                                     n_in)
                self.revived[k, j] = revive_units(
                    params[a][k], params[b][k], params[c][k],
                    dead[k, layer - 1], rows,
                    [(s[a][k], s[b][k], s[c][k]) for s in (m, v)])
        for which, arrays in state.items():
            engine.load(which, arrays)
