"""The training loop: the post's loop, with the schedule passed in."""
import collections
import time

import chainer
import numpy

from minibatch_hybrid.checks import check_batchsize
from minibatch_hybrid.core.engine import as_engine
from minibatch_hybrid.core.engine import evaluate_link
from minibatch_hybrid.errors import SettingsError
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

    def replica(self, k):
        """Returns replica ``k``'s record of an ensemble's run, as one
        model's (scalars per epoch)."""
        return TrainResult(
            self.schedule[k], numpy.ascontiguousarray(self.loss[:, k]),
            numpy.ascontiguousarray(self.train_loss[:, k]),
            None if self.heldout_mse is None
            else float(self.heldout_mse[k]), self.seconds)

    def __repr__(self):
        def show(value):  # a number, or one per replica
            return numpy.array2string(numpy.asarray(value), precision=4,
                                      threshold=6)
        return ('<TrainResult {!r}: {} epochs, final loss {}, held-out MSE '
                '{}>'.format(self.schedule, len(self.loss),
                             show(self.loss[-1]),
                             'n/a' if self.heldout_mse is None
                             else show(self.heldout_mse)))


def evaluate(model, dataset):
    """Returns the mean squared error of ``model`` on a whole data set.

    Runs in test mode without building a graph.

    Args:
        model: A Chainer model (``MyChain``,
            :class:`~minibatch_hybrid.engines.stacked.Ensemble`) or an
            engine (:mod:`~minibatch_hybrid.core.engine`).
        dataset (SinDataset): The data (on any device).

    Returns:
        float for a single model; a NumPy array with one value per replica
        for an ensemble.

    """
    dataset = dataset.to_device(model.device)
    if isinstance(model, chainer.Link):  # no optimizer needed to evaluate
        return evaluate_link(model, dataset.x, dataset.y)
    return model.evaluate(dataset.x, dataset.y)


def train(model, optimizer, dataset, schedule, epochs, batchsize=10,
          heldout=None, callback=None, train_loss='every',
          interventions=()):
    """Trains ``model`` for ``epochs`` epochs in the order ``schedule`` gives.

    This is the post's loop: for each mini-batch of the epoch's order,
    ``cleargrads``, loss, ``backward``, ``optimizer.update()``.  The data
    are sent to the model's device once; the epoch's loss is accumulated on
    the device and read back once per epoch, never per mini-batch.

    The same loop trains K replicas at once, given one schedule per
    replica: each replica then gets its own mini-batch of its own order,
    and every recorded loss has one value per replica.  The replicas are an
    :class:`~minibatch_hybrid.engines.stacked.Ensemble` with its optimizer
    (the numpy engine), or a
    :class:`~minibatch_hybrid.engines.native.NativeEnsemble` (the native
    engine, whose compiled calls run a whole epoch of steps, Adam
    included).  Whatever the model, the loop talks to it through one
    protocol (:mod:`~minibatch_hybrid.core.engine`).

    Args:
        model: The model, on the device to train on: ``MyChain``, an
            ``Ensemble``, or an engine (``NativeEnsemble``).
        optimizer (chainer.Optimizer): Set up on ``model``; ``None`` for an
            engine, which carries its own Adam.
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
        interventions: Callables with an ``epoch`` attribute, each called
            as ``intervention(engine, x)`` (``x``: the training inputs, on
            the engine's device) once ``epoch`` epochs are done, before
            that epoch's loss is measured: a
            :class:`~minibatch_hybrid.core.revival.Revival`, say.

    Returns:
        TrainResult: The per-epoch losses and the held-out error.

    """
    engine = as_engine(model, optimizer)
    schedules = _check(engine, dataset, schedule, epochs, batchsize,
                       train_loss)
    interventions = list(interventions)
    for intervention in interventions:
        if not 1 <= intervention.epoch < epochs:
            raise SettingsError(
                'an intervention acts after epoch {}, outside this run of '
                '{} epochs: choose an epoch from 1 to {}'.format(
                    intervention.epoch, epochs, epochs - 1))
    size = len(dataset)
    dataset = dataset.to_device(engine.device)
    # The engine trains K replicas; one schedule is one model, K = 1,
    # whose records the caller gets as scalars.
    single = isinstance(schedule, Schedule)
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
    heldout_mse = None
    if heldout is not None:
        heldout = heldout.to_device(engine.device)
        heldout_mse = engine.evaluate(heldout.x, heldout.y)
    result = TrainResult([str(s) for s in schedules], losses, train_losses,
                         heldout_mse, time.perf_counter() - start)
    return result.replica(0) if single else result


def _check(engine, dataset, schedule, epochs, batchsize, train_loss):
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
        schedules = None
    if isinstance(schedule, (str, bytes)) or schedules is None or not all(
            isinstance(s, Schedule) for s in schedules):
        raise SettingsError(
            'the schedule must be a Schedule (one model) or a list of '
            'Schedules (one per replica), got {!r}: make one from its text '
            'with mh.parse_schedule(text, seed)'.format(schedule))
    if not single and len(schedules) != engine.replicas:
        raise SettingsError(
            'an ensemble of {} replicas needs one schedule per replica, got '
            '{}'.format(engine.replicas, len(schedules)))
    for s in schedules:
        s.check_epochs(epochs)
    return schedules
