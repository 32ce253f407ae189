"""The training loop: the post's loop, with the schedule passed in."""
import collections
import time

import chainer
from chainer import backend
import numpy

from minibatch_hybrid._checks import check_batchsize
from minibatch_hybrid.ensemble import Ensemble
from minibatch_hybrid.native import NativeEnsemble
from minibatch_hybrid.schedules import Schedule

#: What the loop tells its callback after each epoch.
#:
#: ``epoch`` counts the epochs done (1 after the first); ``loss`` is the
#: post's metric for that epoch, ``train_loss`` the full-data loss at its
#: end; ``seconds`` the time since the run started.
EpochLog = collections.namedtuple(
    'EpochLog', ('epoch', 'epochs', 'loss', 'train_loss', 'seconds'))


class TrainResult(object):
    """What one training run recorded.

    For an ensemble every value has one entry per replica: ``loss`` and
    ``train_loss`` have shape ``(epochs, K)``, ``heldout_mse`` ``(K,)``, and
    ``schedule`` is a list.

    Attributes:
        schedule (str): Text form of the schedule.
        loss (numpy.ndarray): Per epoch, the post's metric: the running mean
            of the mini-batch losses, ``sum(loss_b * len(b)) / N``, in
            float64.  The post's ``sum_loss += loss.data * batchsize``
            promoted each float32 loss to float64 under NumPy 1.x (whose
            casting rules it ran with), so the sum is taken in float64.
        train_loss (numpy.ndarray): Per epoch, the mean squared error on the
            whole training set after the epoch's last update.
        heldout_mse (float or None): Mean squared error on the held-out set
            after training, if one was given.
        seconds (float): Wall time of the run.

    """

    def __init__(self, schedule, loss, train_loss, heldout_mse, seconds):
        self.schedule = schedule
        self.loss = loss
        self.train_loss = train_loss
        self.heldout_mse = heldout_mse
        self.seconds = seconds

    def __repr__(self):
        return ('<TrainResult {!r}: {} epochs, final loss {:.4g}, '
                'held-out MSE {}>'.format(
                    self.schedule, len(self.loss), self.loss[-1],
                    'n/a' if self.heldout_mse is None
                    else '{:.4g}'.format(self.heldout_mse)))


def evaluate(model, dataset):
    """Returns the mean squared error of ``model`` on a whole data set.

    Runs in test mode without building a graph.

    Returns:
        float for a single model; a NumPy array with one value per replica
        for an :class:`~minibatch_hybrid.ensemble.Ensemble` or a
        :class:`~minibatch_hybrid.native.NativeEnsemble`.

    """
    if isinstance(model, NativeEnsemble):
        return model.evaluate(dataset.x, dataset.y)
    dataset = dataset.to_device(model.device)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        loss = model(dataset.x, dataset.y).array
    loss = backend.CpuDevice().send(loss)
    return float(loss) if loss.ndim == 0 else loss


def _orders(schedules, single, epoch, size):
    orders = [numpy.asarray(s.order(epoch, size)) for s in schedules]
    return orders[0] if single else numpy.stack(orders)


def train(model, optimizer, dataset, schedule, epochs, batchsize=10,
          heldout=None, callback=None, train_loss='every'):
    """Trains ``model`` for ``epochs`` epochs in the order ``schedule`` gives.

    This is the post's loop: for each mini-batch of the epoch's order,
    ``cleargrads``, loss, ``backward``, ``optimizer.update()``.  The data
    are sent to the model's device once; the epoch's loss is accumulated on
    the device and read back once per epoch, never per mini-batch.

    The same loop trains an :class:`~minibatch_hybrid.ensemble.Ensemble`
    of K replicas, given one schedule per replica: each replica then gets
    its own mini-batch of its own order, and every recorded loss has one
    value per replica.  A :class:`~minibatch_hybrid.native.NativeEnsemble`
    (the native engine) is trained the same way, except that one compiled
    call runs a whole epoch of mini-batch steps, Adam included.

    Args:
        model (MyChain, Ensemble or NativeEnsemble): The model, on the
            device to train on.
        optimizer (chainer.Optimizer): Set up on ``model``; ``None`` for a
            :class:`~minibatch_hybrid.native.NativeEnsemble`, which carries
            its own Adam.
        dataset (SinDataset): Training data (on any device).
        schedule (Schedule or list of Schedule): Gives the order of each
            epoch, as ``schedule.order(epoch, len(dataset))``; for an
            ensemble, a list with one schedule per replica.
        epochs (int): Number of epochs.
        batchsize (int): Mini-batch size; the last mini-batch of an epoch is
            smaller if it does not divide the data set size.
        heldout (SinDataset): If given, its mean squared error is measured
            after training.
        callback (callable): Called with an :data:`EpochLog` after each
            epoch.
        train_loss (str): When to measure the full-data loss: after
            ``'every'`` epoch, after the ``'last'`` one only (which saves a
            forward pass over the data set per epoch), or ``'never'`` (the
            benchmark, which times the steps alone).  Epochs not measured
            get NaN.

    Returns:
        TrainResult: The per-epoch losses and the held-out error.

    """
    size = len(dataset)
    check_batchsize(batchsize, size)
    if train_loss not in ('every', 'last', 'never'):
        raise ValueError("train_loss must be 'every', 'last' or 'never', got "
                         '{!r}'.format(train_loss))
    single = isinstance(schedule, Schedule)
    schedules = [schedule] if single else list(schedule)
    native = isinstance(model, NativeEnsemble)
    if native != (optimizer is None):
        raise ValueError(
            'a NativeEnsemble carries its own Adam: pass optimizer=None for '
            'it, and an optimizer set up on any other model')
    if single == isinstance(model, (Ensemble, NativeEnsemble)):
        raise ValueError(
            'give one schedule for one model, and a list of schedules (one '
            'per replica) for an Ensemble; got {} for a {}'.format(
                type(schedule).__name__, type(model).__name__))
    if not single and len(schedules) != len(model):
        raise ValueError(
            'an ensemble of {} replicas needs one schedule per replica, got '
            '{}'.format(len(model), len(schedules)))
    for s in schedules:
        s.check_epochs(epochs)
    device = chainer.get_device('@numpy') if native else model.device
    dataset = dataset.to_device(device)
    x, y = dataset.x, dataset.y
    xp = device.xp
    shape = (epochs,) if single else (epochs, len(model))
    cast = float if single else numpy.copy  # what the callback is given
    losses = numpy.empty(shape, numpy.float64)
    train_losses = numpy.full(shape, numpy.nan, numpy.float32)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = device.send(_orders(schedules, single, epoch, size))
        if native:
            losses[epoch] = model.train_epoch(x, y, order, batchsize) / size
        else:
            losses[epoch] = _epoch(model, optimizer, x, y, order, batchsize,
                                   xp)
        if train_loss == 'every' or (train_loss == 'last' and
                                     epoch == epochs - 1):
            train_losses[epoch] = evaluate(model, dataset)
        if callback is not None:
            callback(EpochLog(epoch + 1, epochs, cast(losses[epoch]),
                              cast(train_losses[epoch]),
                              time.perf_counter() - start))
    heldout_mse = None
    if heldout is not None:
        heldout_mse = evaluate(model, heldout)
    names = [str(s) for s in schedules]
    return TrainResult(names[0] if single else names, losses, train_losses,
                       heldout_mse, time.perf_counter() - start)


def _epoch(model, optimizer, x, y, order, batchsize, xp):
    """The post's epoch: returns its metric, sum(loss_b * len(b)) / N."""
    size = order.shape[-1]
    sum_loss = xp.zeros(order.shape[:-1], numpy.float64)
    for i in range(0, size, batchsize):
        index = order[..., i:i + batchsize]
        model.cleargrads()
        loss = model(x[index], y[index])
        sum_loss += loss.array.astype(numpy.float64) * index.shape[-1]
        if loss.ndim:  # an ensemble: one loss per replica
            loss.grad = xp.ones_like(loss.array)
        loss.backward()
        optimizer.update()
    return backend.CpuDevice().send(sum_loss / size)
