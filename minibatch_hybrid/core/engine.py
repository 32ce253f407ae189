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

    Every engine trains K >= 1 replicas: one model is an engine of one
    replica, and only :func:`~minibatch_hybrid.core.loop.train`'s caller
    sees it as one model.

    Attributes:
        replicas (int): ``K``: orders have shape ``(K, N)``, and losses
            one value per replica.
        device (chainer.backend.Device): Where the data must be.
        t (int): Adam's step count.

    """

    replicas = 1
    device = None
    t = 0

    def train_epoch(self, x, y, orders, batchsize):
        """Trains one epoch in the given orders ``(K, N)``.

        Returns:
            numpy.ndarray: ``(K,)``, the sum over the epoch's mini-batches
            of ``loss * len(batch)`` in float64, on the CPU.

        """
        raise NotImplementedError

    def evaluate(self, x, y):
        """Returns the mean squared error on a data set, ``(K,)``, in test
        mode, on the CPU."""
        raise NotImplementedError

    def activity(self, x):
        """Returns the hidden units' activity on inputs ``x`` ``(N, 1)``
        (a :class:`~minibatch_hybrid.core.diagnosis.Activity` of ``K``
        replicas)."""
        raise NotImplementedError

    def arrays(self, which='params'):
        """Returns the weights (``'params'``) or Adam's moments (``'m'``,
        ``'v'``) in Chainer's names, ``'l1/W'`` and so on, replica-stacked:
        ``(K, ...)``."""
        raise NotImplementedError

    def load(self, which, arrays):
        """Sets what :meth:`arrays` returns."""
        raise NotImplementedError

    def replica(self, k):
        """Returns replica ``k`` as a ``MyChain`` on the CPU (a copy)."""
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
    """A Chainer link trained by a Chainer optimizer: one ``MyChain`` (an
    engine of one replica), or an
    :class:`~minibatch_hybrid.engines.stacked.Ensemble` (whose
    ``stacked_names`` map its parameters to ``MyChain``'s).

    The epoch is the post's loop: for each mini-batch, ``cleargrads``, the
    loss, ``backward``, ``optimizer.update()``; the loss is summed on the
    device and read back once per epoch.  One ``MyChain`` is given its
    replica's order, ``(N,)``, and its arrays are seen with a replica axis
    of one: the post's loop, operation for operation.

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
        self._one = not stacked  # one MyChain, K = 1
        self.replicas = 1 if self._one else len(link)
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
        return self.replicas

    def train_epoch(self, x, y, orders, batchsize):
        xp = self.device.xp
        if self._one:
            orders = orders[0]
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
        return backend.CpuDevice().send(sum_loss).reshape(self.replicas)

    def evaluate(self, x, y):
        return numpy.reshape(evaluate_link(self.link, x, y), self.replicas)

    def activity(self, x):
        return params_activity(self.arrays(), x)

    def arrays(self, which='params'):
        check_which(which)
        if which == 'params':
            arrays = {name: self._params[name].array for name in PARAMS}
        else:  # zero before the first update, which makes Adam's state
            arrays = {name: self._moment(name, which) for name in PARAMS}
        if self._one:
            return {name: a[None] for name, a in arrays.items()}
        return arrays

    def load(self, which, arrays):
        check_which(which)
        for name in PARAMS:
            shape = self._params[name].shape
            shape = (1,) + shape if self._one else shape  # (K, ...)
            if tuple(arrays[name].shape) != shape:
                raise SettingsError(
                    '{} {} has shape {}, and this engine of {} replicas '
                    'takes {}'.format(which, name, arrays[name].shape,
                                      self.replicas, shape))
            array = arrays[name][0] if self._one else arrays[name]
            if which == 'params':
                backend.copyto(self._params[name].array, array)
            else:
                rule = self._rule(name)
                state = {} if rule.state is None else dict(rule.state)
                state[which] = array
                for key in ('m', 'v'):
                    state.setdefault(key, numpy.zeros(
                        self._params[name].shape, numpy.float32))
                state['t'] = rule.t
                rule.serialize(_Arrays(state))

    def replica(self, k):
        if not 0 <= k < self.replicas:
            raise IndexError('replica {} of {}'.format(k, self.replicas))
        return replica_model(self.arrays(), k)

    def _moment(self, name, which):
        state = self._rule(name).state
        if state is None:
            return self.device.xp.zeros_like(self._params[name].array)
        return state[which]

    def _rule(self, name):
        rule = self._params[name].update_rule
        if rule is None:
            raise SettingsError('set the optimizer up on the model first')
        return rule


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
