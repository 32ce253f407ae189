"""The training loop: the post's loop, with the schedule passed in."""
import collections
import time

import chainer
import chainer.functions as F
import numpy

#: What the loop tells its callback after each epoch.
#:
#: ``epoch`` counts the epochs done (1 after the first); ``loss`` is the
#: post's metric for that epoch, ``train_loss`` the full-data loss at its
#: end; ``seconds`` the time since the run started.
EpochLog = collections.namedtuple(
    'EpochLog', ('epoch', 'epochs', 'loss', 'train_loss', 'seconds'))


class TrainResult(object):
    """What one training run recorded.

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

    Runs in test mode without building a graph; ``dataset`` must be on the
    model's device.
    """
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        return float(F.mean_squared_error(model.predict(dataset.x),
                                          dataset.y).array)


def check_batchsize(batchsize, size):
    """Raises ValueError unless ``1 <= batchsize <= size``."""
    if isinstance(batchsize, bool) or not isinstance(batchsize, int) \
            or not 1 <= batchsize <= size:
        raise ValueError(
            'batch size must be an integer from 1 to the data set size {}, '
            'got {!r}'.format(size, batchsize))


def train(model, optimizer, dataset, schedule, epochs, batchsize=10,
          heldout=None, callback=None):
    """Trains ``model`` for ``epochs`` epochs in the order ``schedule`` gives.

    This is the post's loop: for each mini-batch of the epoch's order,
    ``cleargrads``, loss, ``backward``, ``optimizer.update()``.  The data
    are sent to the model's device once; the epoch's loss is accumulated on
    the device and read back once per epoch, never per mini-batch.

    Args:
        model (MyChain): The model, on the device to train on.
        optimizer (chainer.Optimizer): Set up on ``model``.
        dataset (SinDataset): Training data (on any device).
        schedule (Schedule): Gives the order of each epoch, as
            ``schedule.order(epoch, len(dataset))``.
        epochs (int): Number of epochs.
        batchsize (int): Mini-batch size; the last mini-batch of an epoch is
            smaller if it does not divide the data set size.
        heldout (SinDataset): If given, its mean squared error is measured
            after training.
        callback (callable): Called with an :data:`EpochLog` after each
            epoch.

    Returns:
        TrainResult: The per-epoch losses and the held-out error.

    """
    size = len(dataset)
    check_batchsize(batchsize, size)
    schedule.check_epochs(epochs)
    device = model.device
    dataset = dataset.to_device(device)
    x, y = dataset.x, dataset.y
    xp = device.xp
    losses = numpy.empty(epochs, numpy.float64)
    train_losses = numpy.empty(epochs, numpy.float32)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = device.send(numpy.asarray(schedule.order(epoch, size)))
        sum_loss = xp.zeros((), numpy.float64)
        for i in range(0, size, batchsize):
            index = order[i:i + batchsize]
            model.cleargrads()
            loss = model(x[index], y[index])
            sum_loss += loss.array.astype(numpy.float64) * len(index)
            loss.backward()
            optimizer.update()
        losses[epoch] = float(sum_loss / size)
        train_losses[epoch] = evaluate(model, dataset)
        if callback is not None:
            callback(EpochLog(epoch + 1, epochs, float(losses[epoch]),
                              float(train_losses[epoch]),
                              time.perf_counter() - start))
    heldout_mse = None
    if heldout is not None:
        heldout_mse = evaluate(model, heldout.to_device(device))
    return TrainResult(str(schedule), losses, train_losses, heldout_mse,
                       time.perf_counter() - start)
