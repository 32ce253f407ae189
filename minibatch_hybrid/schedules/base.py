"""The base classes of order schedules."""
import chainer
import numpy

from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.checks import check_seed
from minibatch_hybrid.errors import SettingsError


class EpochOrder(numpy.ndarray):
    """An order that knows its epoch (views and copies keep it).

    Chainer hands the order of the epoch that ends back to the sampler,
    which reads the next epoch from it instead of counting calls.

    Attributes:
        epoch (int): The zero-based epoch of the order.

    """

    epoch = None

    def __array_finalize__(self, obj):
        self.epoch = getattr(obj, 'epoch', None)


def tag_order(order, epoch):
    """Returns ``order`` as an :class:`EpochOrder` of ``epoch`` (a view)."""
    order = numpy.asarray(order).view(EpochOrder)
    order.epoch = epoch
    return order


class Schedule(chainer.iterators.OrderSampler):
    """Base class of mini-batch order schedules.

    An epoch's order is a pure function of the schedule's parameters and
    the epoch, so resuming needs no saved state, and one schedule can serve
    several iterators.  Pass it as ``order_sampler`` to Chainer's iterators
    (to resume from a snapshot, to those of
    :mod:`minibatch_hybrid.chainer_ext.iterators`).  Subclasses set
    :attr:`name` and implement :meth:`order`; ``str()`` is the text form.

    Attributes:
        epochs (int or None): Epochs the schedule defines (None: any).
        size (int or None): The data set size it was built for, if given.

    """

    #: Name of the schedule in the text form.
    name = None
    epochs = None
    size = None

    def order(self, epoch, size):
        """Returns the order of one epoch.

        Args:
            epoch (int): Zero-based epoch.
            size (int): Number of examples in the data set.

        Returns:
            numpy.ndarray: ``size`` indices into the data set.

        """
        raise NotImplementedError

    def sampler_order(self, epoch, size):
        """:meth:`order`, as an iterator asks it (one epoch ahead)."""
        return self.order(epoch, size)

    def __call__(self, current_order, current_position):
        # Chainer's protocol: the order after current_order's epoch, or
        # epoch 0's after a plain array (an iterator that starts).
        size = len(current_order)
        if self.size is not None and size != self.size:
            raise SettingsError(
                'schedule {!r} was built for a data set of {} examples, but '
                'the iterator\'s data set has {}; build the schedule with '
                'size={}'.format(str(self), self.size, size, size))
        epoch = getattr(current_order, 'epoch', None)
        epoch = 0 if epoch is None else epoch + 1
        return tag_order(self.sampler_order(epoch, size), epoch)

    def with_size(self, size):
        """Declares the data set size the schedule is for (an iterator over
        another fails at its first order); returns the schedule."""
        check_positive_int(size, 'the data set size')
        self.size = size
        return self

    def check_epochs(self, epochs):
        """Raises SettingsError if the schedule cannot cover ``epochs``."""
        check_positive_int(epochs, 'the number of epochs')
        if self.epochs is not None and self.epochs != epochs:
            raise SettingsError(
                'schedule {!r} defines {} epochs, but the run has {}; make '
                'its phases add up to {} (or leave the last phase open, as in '
                '"fixed:{}+random")'.format(
                    str(self), self.epochs, epochs, epochs, epochs // 2))

    def __str__(self):
        return self.name

    def __repr__(self):
        return '<{} {!r}>'.format(type(self).__name__, str(self))


class SeededSchedule(Schedule):
    """Base class of schedules drawn from :func:`epoch_generator`.

    Args:
        seed (int): Non-negative seed.

    """

    def __init__(self, seed):
        check_seed(seed)
        self.seed = seed


def epoch_generator(seed, epoch):
    """The random generator of ``(seed, epoch)``: a randomized schedule's
    only source for the order of ``epoch``."""
    return numpy.random.default_rng([seed, epoch])
