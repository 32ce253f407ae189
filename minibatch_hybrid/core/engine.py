"""The engine protocol: what the training loop trains.

An engine holds K >= 1 replicas of the model with their optimizer:
:class:`Engine` is what :func:`~minibatch_hybrid.core.loop.train` asks,
:class:`StatefulEngine` adds the state that interventions, experiments and
the bench read and set.  A Chainer model with its optimizer is wrapped in a
:class:`ChainerEngine`; a ``NativeEnsemble`` is an engine itself.
"""
import chainer
from chainer import backend
import numpy

from minibatch_hybrid.core.diagnosis import params_activity
from minibatch_hybrid.core.model import PARAMS
from minibatch_hybrid.core.model import replica_model
from minibatch_hybrid.errors import SettingsError


#: What ``arrays`` and ``load`` take: the weights, or Adam's moments.
WHICH = ('params', 'm', 'v')


def check_which(which):
    """Raises :class:`SettingsError` unless ``which`` is in :data:`WHICH`."""
    if which not in WHICH:
        raise SettingsError(
            "which must be 'params', 'm' or 'v' (the weights or Adam's "
            'moments), not {!r}'.format(which))


class Engine(object):
    """What the loop trains (engines need not derive from it).

    Attributes:
        replicas (int): ``K``: orders are ``(K, N)``, losses ``(K,)``.
        device (chainer.backend.Device): Where the data must be.

    """

    replicas = 1
    device = None

    def __len__(self):
        return self.replicas

    def train_epoch(self, x, y, orders, batchsize):
        """Trains one epoch, each replica in its order of ``orders``
        ``(K, N)``; returns each replica's sum of ``loss * len(batch)``,
        ``(K,)`` float64 on the CPU."""
        raise NotImplementedError

    def evaluate(self, x, y):
        """Returns each replica's mean squared error, ``(K,)`` on the CPU."""
        raise NotImplementedError


class StatefulEngine(Engine):
    """An engine whose weights and Adam's state (``t``, its step count)
    can be read and set; arrays are in Chainer's names (``'l1/W'``, ...),
    replica-stacked: ``(K, ...)``."""

    t = 0

    def activity(self, x):
        """Returns the hidden units' activity on inputs ``x`` ``(N, 1)``
        (:class:`~minibatch_hybrid.core.diagnosis.Activity`)."""
        raise NotImplementedError

    def arrays(self, which='params'):
        """Returns the weights (``'params'``) or Adam's moments (``'m'``,
        ``'v'``)."""
        raise NotImplementedError

    def load(self, which, arrays):
        """Sets what :meth:`arrays` returns."""
        raise NotImplementedError

    def replica(self, k):
        """Returns replica ``k`` as a ``MyChain`` on the CPU (a copy)."""
        return replica_model(self.arrays(), k)


class ChainerEngine(StatefulEngine):
    """A Chainer model trained by its optimizer, in the post's loop: one
    ``MyChain`` (K = 1), or an
    :class:`~minibatch_hybrid.engines.stacked.Ensemble`.

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
        arrays = {name: self._array(name, which) for name in PARAMS}
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
            backend.copyto(self._array(name, which, create=True), array)

    def replica(self, k):
        if not 0 <= k < self.replicas:
            raise IndexError('replica {} of {}'.format(k, self.replicas))
        return super().replica(k)

    def _array(self, name, which, create=False):
        """Returns a parameter's weights or Adam moment (before the first
        update, zeros or, with ``create``, the rule's new state)."""
        param = self._params[name]
        if which == 'params':
            return param.array
        rule = param.update_rule
        if rule is None:
            raise SettingsError('set the optimizer up on the model first')
        if rule.state is None and create:
            rule._init_states(param)  # what Chainer's first update does
        if rule.state is None:
            return self.device.xp.zeros_like(param.array)
        return rule.state[which]


def evaluate_link(link, x, y):
    """Returns a Chainer model's mean squared error (float, or ``(K,)``),
    in test mode, without a graph."""
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        loss = link(x, y).array
    loss = backend.CpuDevice().send(loss)
    return float(loss) if loss.ndim == 0 else loss


def as_engine(model, optimizer):
    """Returns the engine that trains ``model``: a Chainer model with the
    ``optimizer`` set up on it, or an engine (``optimizer`` ``None``)."""
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
