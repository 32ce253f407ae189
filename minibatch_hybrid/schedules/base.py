"""The base classes of order schedules."""
import chainer
import numpy


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
    once when the iterator is built (for epoch 0) and then at the end of
    each epoch (for the next one).  The schedule therefore counts those calls
    in :attr:`epoch`, which :meth:`serialize` saves and restores.

    Subclasses set :attr:`name` and implement :meth:`order`; ``str()`` of a
    schedule is its text form, which :func:`parse_schedule` reads back.

    Attributes:
        epochs (int or None): Number of epochs the schedule defines, or
            ``None`` if it defines orders for any number of epochs.
        epoch (int): The epoch whose order the next call as an order sampler
            returns.

    """

    #: Name of the schedule in the text form.
    name = None
    epochs = None

    def __init__(self):
        self.epoch = 0

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

    def __call__(self, current_order, current_position):
        """Returns the order of the next epoch (Chainer's sampler protocol).

        Args:
            current_order (numpy.ndarray): The order of the epoch that ends;
                only its length is used.
            current_position (int): Ignored.

        Returns:
            numpy.ndarray: The order of epoch :attr:`epoch`, which then
            advances by one.

        """
        order = self.order(self.epoch, len(current_order))
        self.epoch += 1
        return order

    def serialize(self, serializer):
        """Saves or loads the epoch counter (Chainer's serializer protocol)."""
        self.epoch = int(serializer('epoch', self.epoch))

    def check_epochs(self, epochs):
        """Raises ValueError if the schedule cannot cover ``epochs`` epochs."""
        _check_positive_int(epochs, 'the number of epochs')
        if self.epochs is not None and self.epochs != epochs:
            raise ValueError(
                'schedule {!r} defines {} epochs, but the run has {}; make its '
                'phases add up to {} (or leave the last phase open, as in '
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
        super().__init__()
        _check_seed(seed)
        self.seed = seed


def epoch_generator(seed, epoch):
    """Returns the random generator of one (seed, epoch) pair.

    Every randomized schedule draws an epoch's order from this generator and
    from nothing else, so the order is a pure function of (seed, epoch).
    """
    return numpy.random.default_rng([seed, epoch])


def _check_positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError('{} must be a positive integer, got {!r}'.format(
            what, value))


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(
            'seed must be a non-negative integer, got {!r}'.format(seed))
