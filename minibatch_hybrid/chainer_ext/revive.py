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


class ReviveDeadUnits(training.Extension):
    """Revives a model's dead hidden units at chosen epochs.

    At the end of each epoch in ``epochs``, the model's forward pass is run
    on ``x`` (in test mode) and every unit of the chosen hidden layers that
    is zero at every point of ``x`` is revived
    (:func:`~minibatch_hybrid.core.revival.revive_units`): new incoming
    weights drawn from ``seed`` and the epoch
    (:func:`~minibatch_hybrid.core.revival.fresh_weights`: Chainer's LeCun
    normal), a zero bias and zero outgoing weights, so that the model's
    outputs at ``x`` are the same at that moment, and the optimizer's
    state of those entries (every state array of a changed parameter's
    shape: Adam's ``m`` and ``v``, AMSGrad's ``vhat``, ...) set to zero.
    Adam's step count is kept.

    Any chain of ``chainer.links.Linear`` layers with a ReLU after each
    hidden one works, the post's ``MyChain`` or your own: the layers are
    found by running the forward pass
    (:func:`~minibatch_hybrid.core.diagnosis.chain_activity`), once before
    the first update too, so that a chain, ``x`` or ``layers`` that cannot
    serve fails then, not at the revival.  The
    extension keeps no state of its own and its trigger is saved in
    snapshots, so a run resumed from a snapshot revives as the
    uninterrupted run did, bit for bit.

    .. code-block:: python

        trainer.extend(ReviveDeadUnits(dataset.x, seed=0, epochs=(250,)))

    Args:
        x: The training inputs, ``(N, 1)``: where a unit must be active to
            count as alive.
        seed (int): Seed of the new weights (with the epoch).
        epochs (tuple of int): The epochs after which to revive.
        layers (tuple of int): The hidden layers to revive, numbered from
            1 (the default, ``(2,)``, is the post's second hidden layer:
            reviving the first as well did worse; ``docs/findings.md``).
            Give ``'all'`` for every hidden layer.
        forward (callable): Runs the model's layers from ``x`` (see
            :func:`~minibatch_hybrid.core.diagnosis.chain_activity`).
        optimizer (str): The updater's optimizer whose target is revived.

    Attributes:
        revived (dict): Epoch to the number of units revived per hidden
            layer, of the revivals this process ran.

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
    """Revives a chain's dead hidden units in place (see
    :class:`ReviveDeadUnits`); returns the units revived per hidden layer.

    Args:
        model (chainer.Chain): Linear layers with ReLUs between them; its
            parameters' optimizer state (``update_rule.state``), where
            there is one, is zeroed for the entries changed.
        x: Training inputs ``(N, 1)``.
        seed (int): Seed of the new weights.
        epoch (int): The epoch, the other half of their seed.
        layers: Hidden layers (1-based) to revive, or ``'all'``.
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


#: ``layers`` that means every hidden layer.
ALL = 'all'


def _layers(layers, hidden):
    """The hidden layers (1-based) that ``layers`` names in a chain of
    ``hidden`` hidden layers."""
    if layers == ALL:
        return tuple(range(1, hidden + 1))
    return check_layers(layers, hidden)


def _states(params):
    """``(s0, s1, s2)`` triples, one per optimizer state key: each
    parameter's state array of that key where it has one of its own shape
    (Adam's ``m``, ``v``; AMSGrad's ``vhat``; RMSprop's ``ms``), else
    None."""
    keys = set()
    for param in params:
        rule = param.update_rule
        keys.update((rule.state or {}) if rule is not None else ())
    triples = []
    for key in sorted(keys):
        triple = []
        for param in params:
            rule = param.update_rule
            value = (rule.state or {}).get(key) if rule is not None \
                else None
            ok = isinstance(value, chainer.get_array_types()) and \
                value.shape == param.shape
            triple.append(value if ok else None)
        triples.append(tuple(triple))
    return triples
