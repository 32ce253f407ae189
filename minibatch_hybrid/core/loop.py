"""The one training loop: the post's, with schedule and engine passed in."""
import collections
import time

import chainer
import numpy

from minibatch_hybrid.checks import check_batchsize
from minibatch_hybrid.core.engine import as_engine
from minibatch_hybrid.core.engine import evaluate_link
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.schedules import Schedule

#: What the callback gets after each epoch (``epoch`` counts those done).
EpochLog = collections.namedtuple(
    'EpochLog', ('epoch', 'epochs', 'loss', 'train_loss', 'seconds'))


class TrainResult(object):
    """What a run recorded: per epoch, ``loss`` (the post's metric, summed
    in float64 as its NumPy 1.x did) and ``train_loss`` (the full-data
    loss, NaN where not measured); ``heldout_mse`` at the end (or None), the
    ``schedule``'s text and the ``seconds`` it took.  For K replicas each
    has one value per replica."""

    def __init__(self, schedule, loss, train_loss, heldout_mse, seconds):
        self.schedule = schedule
        self.loss = loss
        self.train_loss = train_loss
        self.heldout_mse = heldout_mse
        self.seconds = seconds

    def replica(self, k):
        """Returns replica ``k``'s record, as one model's."""
        return TrainResult(
            self.schedule[k], numpy.ascontiguousarray(self.loss[:, k]),
            numpy.ascontiguousarray(self.train_loss[:, k]),
            None if self.heldout_mse is None
            else float(self.heldout_mse[k]), self.seconds)

    def __repr__(self):
        def show(value):  # a number, or one per replica
            return numpy.array2string(numpy.asarray(value), precision=4,
                                      threshold=6)
        return '<TrainResult {!r}: {} epochs, final loss {}, held-out MSE ' \
            '{}>'.format(self.schedule, len(self.loss), show(self.loss[-1]),
                         'n/a' if self.heldout_mse is None
                         else show(self.heldout_mse))


def evaluate(model, dataset):
    """Returns the mean squared error of a Chainer model or an engine on a
    whole data set: a float, or one per replica."""
    dataset = dataset.to_device(model.device)
    if isinstance(model, chainer.Link):  # no optimizer needed to evaluate
        return evaluate_link(model, dataset.x, dataset.y)
    return model.evaluate(dataset.x, dataset.y)


def train(model, optimizer, dataset, schedule, epochs, batchsize=10,
          heldout=None, callback=None, train_loss='every',
          interventions=()):
    """Trains ``model`` for ``epochs`` epochs in the order ``schedule`` gives.

    Each mini-batch is the post's step (``cleargrads``, loss, ``backward``,
    ``update``), run by the engine for every replica at once.

    Args:
        model: ``MyChain``, an ``Ensemble`` or an engine, on its device.
        optimizer: Set up on ``model``; ``None`` for an engine (its Adam).
        dataset (SinDataset): Training data (on any device).
        schedule: A :class:`Schedule`, or a list of one per replica.
        epochs (int): Number of epochs.
        batchsize (int): Mini-batch size (the epoch's last may be smaller).
        heldout (SinDataset): Measured at the end, if given.
        callback: Called with an :data:`EpochLog` after each epoch.
        train_loss (str): Measure the full-data loss after ``'every'``
            epoch, the ``'last'`` or ``'never'``.
        interventions: Each called as ``intervention(engine, x)`` after its
            ``epoch`` (a :class:`~minibatch_hybrid.core.revival.Revival`).

    Returns:
        TrainResult

    """
    engine = as_engine(model, optimizer)
    interventions = list(interventions)
    schedules = _check(engine, dataset, schedule, epochs, batchsize,
                       train_loss, interventions)
    size = len(dataset)
    dataset = dataset.to_device(engine.device)
    single = isinstance(schedule, Schedule)  # K = 1, recorded as scalars
    shape = (epochs, engine.replicas)
    cast = (lambda a: float(a[0])) if single else numpy.copy  # the callback's
    losses = numpy.empty(shape, numpy.float64)
    train_losses = numpy.full(shape, numpy.nan, numpy.float32)
    start = time.perf_counter()
    for epoch in range(epochs):
        orders = engine.device.send(numpy.stack(
            [numpy.asarray(s.order(epoch, size)) for s in schedules]))
        losses[epoch] = engine.train_epoch(dataset.x, dataset.y, orders,
                                           batchsize) / size
        for intervention in interventions:
            if intervention.epoch == epoch + 1:
                intervention(engine, dataset.x)
        if train_loss == 'every' or (train_loss == 'last' and
                                     epoch == epochs - 1):
            train_losses[epoch] = engine.evaluate(dataset.x, dataset.y)
        if callback is not None:
            callback(EpochLog(epoch + 1, epochs, cast(losses[epoch]),
                              cast(train_losses[epoch]),
                              time.perf_counter() - start))
    heldout_mse = None if heldout is None else evaluate(engine, heldout)
    result = TrainResult([str(s) for s in schedules], losses, train_losses,
                         heldout_mse, time.perf_counter() - start)
    return result.replica(0) if single else result


def _check(engine, dataset, schedule, epochs, batchsize, train_loss,
           interventions):
    """Checks the arguments of :func:`train`; returns the schedules."""
    check_batchsize(batchsize, len(dataset))
    if train_loss not in ('every', 'last', 'never'):
        raise SettingsError("train_loss must be 'every', 'last' or 'never', "
                            'got {!r}'.format(train_loss))
    single = isinstance(schedule, Schedule)
    if single and engine.replicas != 1:
        raise SettingsError(
            'give one schedule for one model, and a list of schedules (one '
            'per replica) for an ensemble; got one {} for an ensemble of '
            '{}'.format(type(schedule).__name__, engine.replicas))
    try:
        schedules = [schedule] if single else list(schedule)
    except TypeError:
        schedules = [None]
    if isinstance(schedule, (str, bytes)) or not all(
            isinstance(s, Schedule) for s in schedules):
        raise SettingsError(
            'the schedule must be a Schedule (one model) or a list of '
            'Schedules (one per replica), got {!r}: make one from its text '
            'with mh.parse_schedule(text, seed)'.format(schedule))
    if len(schedules) != engine.replicas:
        raise SettingsError(
            'an ensemble of {} replicas needs one schedule per replica, got '
            '{}'.format(engine.replicas, len(schedules)))
    for s in schedules:
        s.check_epochs(epochs)
    for intervention in interventions:
        if not 1 <= intervention.epoch < epochs:
            raise SettingsError(
                'an intervention acts after epoch {}, outside this run of '
                '{} epochs: choose an epoch from 1 to {}'.format(
                    intervention.epoch, epochs, epochs - 1))
    return schedules
