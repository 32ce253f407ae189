"""The base classes of order schedules."""
import chainer
import numpy

from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.checks import check_seed
from minibatch_hybrid.errors import SettingsError


class EpochOrder(numpy.ndarray):
    """An epoch's order that knows its epoch.

    A schedule used as a Chainer order sampler returns its orders as this
    ``ndarray`` subclass.  Chainer hands the order of the epoch that ends
    back to the sampler, so the sampler reads the next epoch from it
    instead of counting calls: it stays right when an iterator is reset (an
    ``Evaluator`` resets its own), when a prefetching iterator asks ahead,
    and when one schedule serves several iterators.  Views and copies keep
    the epoch.

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

    A schedule says in which order the examples of a data set are visited in
    each epoch.  The order of an epoch is a pure function of the schedule's
    own parameters (its seed, say) and the epoch: :meth:`order` computes it
    and never touches NumPy's global random state, so the same schedule gives
    the same orders in any process, and resuming needs no saved random state.

    A schedule is also a Chainer order sampler: it can be passed as
    ``order_sampler`` to :class:`chainer.iterators.SerialIterator` and the
    other iterators.  Chainer never tells a sampler the epoch: it calls it
    with a fresh ``arange`` when an iterator is built or reset (epoch 0), and
    with the order of the epoch that ends when the next one begins.  The
    schedule returns :class:`EpochOrder` arrays that carry their epoch, so
    it holds no state at all: one schedule can serve several iterators.
    Resuming from a snapshot restores the order's values but not its epoch;
    the iterators of :mod:`minibatch_hybrid.chainer_ext.iterators` put it back.

    Subclasses set :attr:`name` and implement :meth:`order`; ``str()`` of a
    schedule is its text form, which :func:`parse_schedule` reads back.

    Attributes:
        epochs (int or None): Number of epochs the schedule defines, or
            ``None`` if it defines orders for any number of epochs.
        size (int or None): The data set size the schedule was built for;
            if given, an iterator over a data set of another size is an
            error when it asks for its first order.

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
            numpy.ndarray: 1-D integer array of ``size`` indices into the data
            set, the order in which its examples are visited in ``epoch``.

        """
        raise NotImplementedError

    def sampler_order(self, epoch, size):
        """Returns the order of ``epoch`` when asked by an iterator.

        Like :meth:`order`; a schedule with a fixed number of epochs
        overrides it for the epoch after its last, which an iterator asks
        for while the last one ends.
        """
        return self.order(epoch, size)

    def __call__(self, current_order, current_position):
        """Returns the order of the next epoch (Chainer's sampler protocol).

        Args:
            current_order (numpy.ndarray): The order of the epoch that ends,
                as this schedule returned it, or a plain array when an
                iterator starts (or restarts) at epoch 0.
            current_position (int): Ignored.

        Returns:
            EpochOrder: The order of the next epoch.

        """
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
        """Declares the data set size the schedule is for; returns it.

        An iterator over a data set of another size then fails when it asks
        for its first order, instead of visiting a silently wrong order.
        """
        check_positive_int(size, 'the data set size')
        self.size = size
        return self

    def check_epochs(self, epochs):
        """Raises :class:`~minibatch_hybrid.errors.SettingsError` if the
        schedule cannot cover ``epochs`` epochs."""
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
    """Base class of schedules whose orders are drawn at random.

    Each epoch's order is drawn from :func:`epoch_generator`, so it depends
    only on ``(seed, epoch)``.

    Args:
        seed (int): Non-negative seed.

    """

    def __init__(self, seed):
        check_seed(seed)
        self.seed = seed


def epoch_generator(seed, epoch):
    """Returns the random generator of one (seed, epoch) pair.

    Every randomized schedule draws an epoch's order from this generator and
    from nothing else, so the order is a pure function of (seed, epoch).
    """
    return numpy.random.default_rng([seed, epoch])
