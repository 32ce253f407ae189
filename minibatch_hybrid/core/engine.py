"""The engine protocol: what the training loop trains.

An *engine* holds a model (or K replicas of it) with its optimizer and
answers the few questions the loop and the experiments ask.  Three kinds
answer them:

* one Chainer model with its optimizer, and the numpy engine's
  :class:`~minibatch_hybrid.engines.stacked.Ensemble` with its optimizer:
  both through :class:`ChainerEngine`, Chainer's own operations;
* the native engine's
  :class:`~minibatch_hybrid.engines.native.NativeEnsemble`, which carries
  its Adam and is an engine itself.

:func:`as_engine` turns what a user hands to
:func:`~minibatch_hybrid.core.loop.train` into an engine.
"""
import chainer
from chainer import backend
from chainer import serializer
import numpy

from minibatch_hybrid.core.diagnosis import params_activity
from minibatch_hybrid.core.model import PARAMS
from minibatch_hybrid.core.model import replica_model
from minibatch_hybrid.errors import SettingsError


#: What :meth:`Engine.arrays` and :meth:`Engine.load` take: the weights,
#: or Adam's first or second moments.
WHICH = ('params', 'm', 'v')


def check_which(which):
    """Raises :class:`SettingsError` unless ``which`` is in :data:`WHICH`."""
    if which not in WHICH:
        raise SettingsError(
            "which must be 'params', 'm' or 'v' (the weights or Adam's "
            'moments), not {!r}'.format(which))


class Engine(object):
    """The protocol; engines need not derive from it.

    Attributes:
        replicas (int or None): ``K`` for an ensemble, whose orders have
            shape ``(K, N)`` and whose losses have one value per replica;
            ``None`` for one model (orders ``(N,)``, losses scalars).
        device (chainer.backend.Device): Where the data must be.
        t (int): Adam's step count.

    """

    replicas = None
    device = None
    t = 0

    def train_epoch(self, x, y, orders, batchsize):
        """Trains one epoch in the given orders.

        Returns:
            The sum over the epoch's mini-batches of ``loss * len(batch)``
            in float64, on the CPU: a float, or ``(K,)`` per replica.

        """
        raise NotImplementedError

    def evaluate(self, x, y):
        """Returns the mean squared error on a data set (float or ``(K,)``),
        in test mode, on the CPU."""
        raise NotImplementedError

    def activity(self, x):
        """Returns the hidden units' activity on inputs ``x`` ``(N, 1)``
        (a :class:`~minibatch_hybrid.core.diagnosis.Activity` of ``K``
        replicas, 1 for one model)."""
        raise NotImplementedError

    def arrays(self, which='params'):
        """Returns the weights (``'params'``) or Adam's moments (``'m'``,
        ``'v'``) in Chainer's names, ``'l1/W'`` and so on: replica-stacked
        ``(K, ...)`` arrays for an ensemble."""
        raise NotImplementedError

    def load(self, which, arrays):
        """Sets what :meth:`arrays` returns."""
        raise NotImplementedError

    def replica(self, k):
        """Returns replica ``k`` (``0`` for one model) as a ``MyChain`` on
        the CPU (a copy)."""
        raise NotImplementedError


class _Arrays(serializer.Deserializer):
    """Chainer's deserializer protocol over a dict: how an update rule's
    state is set from outside (as loading a snapshot sets it)."""

    def __init__(self, values):
        self.values = values

    def __getitem__(self, key):
        raise KeyError(key)

    def __call__(self, key, value):
        new = self.values[key]
        if value is None:  # a fresh state: a copy (sent to the device at
            return backend.CpuDevice().send(new).copy()  # the next update)
        if isinstance(value, chainer.get_array_types()):
            backend.copyto(value, new)
            return value
        return type(value)(new)


class ChainerEngine(Engine):
    """A Chainer link trained by a Chainer optimizer: one ``MyChain``, or an
    :class:`~minibatch_hybrid.engines.stacked.Ensemble` (whose
    ``stacked_names`` map its parameters to ``MyChain``'s).

    The epoch is the post's loop: for each mini-batch, ``cleargrads``, the
    loss, ``backward``, ``optimizer.update()``; the loss is summed on the
    device and read back once per epoch.

    Args:
        link (chainer.Link): The model, on the device to train on.
        optimizer (chainer.Optimizer): Set up on ``link``.

    """

    def __init__(self, link, optimizer):
        if not isinstance(optimizer, chainer.Optimizer) or \
                optimizer.target is not link:
            raise SettingsError(
                'pass the optimizer set up on the model '
                '(optimizer.setup(model)); an engine such as NativeEnsemble '
                'carries its own Adam and takes optimizer=None')
        self.link = link
        self.optimizer = optimizer
        stacked = getattr(link, 'stacked_names', None)
        self.replicas = len(link) if stacked else None
        names = dict(stacked or {})
        self._params = {names.get(name.lstrip('/'), name.lstrip('/')): param
                        for name, param in link.namedparams()}

    @property
    def device(self):
        return self.link.device

    @property
    def t(self):
        return self.optimizer.t

    @t.setter
    def t(self, value):
        self.optimizer.t = value
        for param in self._params.values():
            if param.update_rule is not None:
                param.update_rule.t = value

    def __len__(self):
        return 1 if self.replicas is None else self.replicas

    def train_epoch(self, x, y, orders, batchsize):
        xp = self.device.xp
        size = orders.shape[-1]
        sum_loss = xp.zeros(orders.shape[:-1], numpy.float64)
        for i in range(0, size, batchsize):
            index = orders[..., i:i + batchsize]
            self.link.cleargrads()
            loss = self.link(x[index], y[index])
            sum_loss += loss.array.astype(numpy.float64) * index.shape[-1]
            if loss.ndim:  # an ensemble: one loss per replica
                loss.grad = xp.ones_like(loss.array)
            loss.backward()
            self.optimizer.update()
        return backend.CpuDevice().send(sum_loss)

    def evaluate(self, x, y):
        return evaluate_link(self.link, x, y)

    def activity(self, x):
        params = self.arrays()
        if self.replicas is None:
            params = {name: a[None] for name, a in params.items()}
        return params_activity(params, x)

    def arrays(self, which='params'):
        check_which(which)
        if which == 'params':
            return {name: self._params[name].array for name in PARAMS}
        return {name: self._rule(name).state[which] for name in PARAMS}

    def load(self, which, arrays):
        check_which(which)
        for name in PARAMS:
            if which == 'params':
                backend.copyto(self._params[name].array, arrays[name])
            else:
                rule = self._rule(name)
                state = {} if rule.state is None else dict(rule.state)
                state[which] = arrays[name]
                for key in ('m', 'v'):
                    state.setdefault(key, numpy.zeros(
                        self._params[name].shape, numpy.float32))
                state['t'] = rule.t
                rule.serialize(_Arrays(state))

    def replica(self, k):
        params = self.arrays()
        if self.replicas is None:
            if k != 0:
                raise IndexError('one model has replica 0 only')
            params = {name: a[None] for name, a in params.items()}
        return replica_model(params, k)

    def _rule(self, name):
        rule = self._params[name].update_rule
        if rule is None:
            raise SettingsError('set the optimizer up on the model first')
        return rule


class OneReplica(Engine):
    """An ensemble engine of one replica, seen as one model.

    Its orders are ``(N,)`` and its losses scalars, as a single model's: a
    run of the native engine, say, where the loop's caller expects one
    model (the reproduction).  The numbers are the ensemble's own.

    Args:
        ensemble: An engine with ``replicas == 1``.

    """

    replicas = None

    def __init__(self, ensemble):
        if ensemble.replicas != 1:
            raise SettingsError('OneReplica takes an ensemble of one '
                                'replica, got {}'.format(ensemble.replicas))
        self.ensemble = ensemble

    @property
    def device(self):
        return self.ensemble.device

    @property
    def t(self):
        return self.ensemble.t

    @t.setter
    def t(self, value):
        self.ensemble.t = value

    def __len__(self):
        return 1

    def train_epoch(self, x, y, orders, batchsize):
        return self.ensemble.train_epoch(x, y, orders[None], batchsize)[0]

    def evaluate(self, x, y):
        return float(self.ensemble.evaluate(x, y)[0])

    def activity(self, x):
        return self.ensemble.activity(x)

    def arrays(self, which='params'):
        return {name: a[0] for name, a in self.ensemble.arrays(which).items()}

    def load(self, which, arrays):
        self.ensemble.load(which, {name: numpy.asarray(a)[None]
                                   for name, a in arrays.items()})

    def replica(self, k):
        if k != 0:
            raise IndexError('one model has replica 0 only')
        return self.ensemble.replica(0)


def evaluate_link(link, x, y):
    """Returns a Chainer model's mean squared error on ``x`` and ``y``
    (float, or ``(K,)`` for an ensemble), in test mode, without a graph."""
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        loss = link(x, y).array
    loss = backend.CpuDevice().send(loss)
    return float(loss) if loss.ndim == 0 else loss


def as_engine(model, optimizer):
    """Returns the engine that trains ``model`` with ``optimizer``.

    Args:
        model: A Chainer model (``MyChain``, an
            :class:`~minibatch_hybrid.engines.stacked.Ensemble`) with the
            optimizer set up on it, or an engine (a
            :class:`~minibatch_hybrid.engines.native.NativeEnsemble`, a
            :class:`ChainerEngine`), which carries its own optimizer.
        optimizer (chainer.Optimizer): For a Chainer model; ``None`` for
            an engine.

    """
    if optimizer is None:
        if isinstance(model, chainer.Link):
            raise SettingsError(
                'a Chainer model needs its optimizer: pass the one set up '
                'on it (e.g. mh.make_optimizer(model))')
        return model
    if not isinstance(model, chainer.Link):
        raise SettingsError(
            '{} carries its own Adam: pass optimizer=None for it'.format(
                type(model).__name__))
    return ChainerEngine(model, optimizer)
