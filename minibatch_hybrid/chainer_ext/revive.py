"""A Trainer extension that revives dead ReLU units: the plateau's cure."""
import chainer
from chainer import training
from chainer.training import triggers

from minibatch_hybrid.checks import check_seed
from minibatch_hybrid.core.diagnosis import chain_activity
from minibatch_hybrid.core.revival import DEFAULT_LAYERS
from minibatch_hybrid.core.revival import check_layers
from minibatch_hybrid.core.revival import fresh_weights
from minibatch_hybrid.core.revival import revive_units
from minibatch_hybrid.errors import SettingsError

#: ``layers`` that means every hidden layer.
ALL = 'all'


class ReviveDeadUnits(training.Extension):
    """Revives a model's dead hidden units at chosen epochs.

    After each epoch in ``epochs``, every unit of the chosen hidden layers
    that is zero at every point of ``x`` gets new incoming weights (from
    ``seed`` and the epoch), a zero bias and zero outgoing weights, so the
    outputs are unchanged; the optimizer's state of those entries is zeroed.
    Any chain of ``Linear`` layers with ReLUs between them works; what
    cannot serve fails before the first update.  A resumed run revives as
    the uninterrupted one did.

    Args:
        x: The training inputs ``(N, 1)``.
        seed (int): Seed of the new weights (with the epoch).
        epochs (tuple of int): The epochs after which to revive.
        layers (tuple of int): Hidden layers to revive, from 1, or
            ``'all'`` (by default the second: ``docs/findings.md``).
        forward (callable): Runs the model's layers from ``x`` (see
            :func:`~minibatch_hybrid.core.diagnosis.chain_activity`).
        optimizer (str): The updater's optimizer whose target is revived.

    Attributes:
        revived (dict): Epoch to the units revived per hidden layer.

    """

    priority = training.PRIORITY_EDITOR
    name = 'ReviveDeadUnits'

    def __init__(self, x, seed, epochs=(250,), layers=DEFAULT_LAYERS,
                 forward=None, optimizer='main'):
        check_seed(seed, 'the revival seed')
        epochs = list(epochs)
        if not epochs or any(not isinstance(e, int) or e < 1
                             for e in epochs):
            raise SettingsError('epochs to revive after must be positive '
                                'integers, got {!r}'.format(epochs))
        self.x = x
        self.seed = seed
        self.layers = layers if layers == ALL else check_layers(layers)
        self.forward = forward
        self.optimizer = optimizer
        self.trigger = triggers.ManualScheduleTrigger(sorted(set(epochs)),
                                                      'epoch')
        self.revived = {}

    def initialize(self, trainer):
        model = trainer.updater.get_optimizer(self.optimizer).target
        links, _ = chain_activity(model, self.x, self.forward)
        _layers(self.layers, len(links) - 1)

    def __call__(self, trainer):
        optimizer = trainer.updater.get_optimizer(self.optimizer)
        epoch = trainer.updater.epoch
        self.revived[epoch] = revive_chain(
            optimizer.target, self.x, self.seed, epoch, self.layers,
            self.forward)


def revive_chain(model, x, seed, epoch, layers=DEFAULT_LAYERS,
                 forward=None):
    """Revives a chain's dead hidden units in place, as
    :class:`ReviveDeadUnits` does; returns the units revived per layer.

    Args:
        model (chainer.Chain): Linear layers with ReLUs between them.
        x: Training inputs ``(N, 1)``.
        seed (int): Seed of the new weights.
        epoch (int): The epoch, the other half of their seed.
        layers: Hidden layers (from 1) to revive, or ``'all'``.
        forward (callable): See
            :func:`~minibatch_hybrid.core.diagnosis.chain_activity`.

    """
    links, activity = chain_activity(model, x, forward)
    layers = _layers(layers, len(links) - 1)
    dead = activity.dead_units()[0]
    revived = []
    for layer in layers:
        into, out = links[layer - 1], links[layer]
        if into.b is None:
            raise SettingsError('revival needs a bias in every hidden '
                                'layer; {} has none'.format(into.name))
        n, n_in = into.W.shape
        rows = fresh_weights(seed, epoch, layer, n, n_in)
        states = _states((into.W, into.b, out.W))
        revived.append(revive_units(into.W.array, into.b.array,
                                    out.W.array, dead[layer - 1], rows,
                                    states))
    return tuple(revived)


def _layers(layers, hidden):
    """The hidden layers that ``layers`` names, of ``hidden``."""
    if layers == ALL:
        return tuple(range(1, hidden + 1))
    return check_layers(layers, hidden)


def _states(params):
    """One ``(s0, s1, s2)`` triple per optimizer state key: each
    parameter's state array of that key and of its shape, or None."""
    arrays = chainer.get_array_types()
    states = [getattr(p.update_rule, 'state', None) or {} for p in params]
    triples = []
    for key in sorted(set().union(*states)):
        values = [state.get(key) for state in states]
        triples.append(tuple(
            v if isinstance(v, arrays) and v.shape == p.shape else None
            for v, p in zip(values, params)))
    return triples
