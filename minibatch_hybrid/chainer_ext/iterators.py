"""Chainer's iterators, resumable with an epoch-aware schedule.

A :class:`~minibatch_hybrid.schedules.Schedule` works with Chainer's own
iterators as it is: each order it returns carries its epoch (an
:class:`~minibatch_hybrid.schedules.base.EpochOrder`), from which it
computes the next.  What Chainer cannot do is resume that: a snapshot saves
the order's values, and loading it copies them into the fresh iterator's
order, whose epoch is 0.  The iterators here differ from Chainer's in one
thing only: after loading a snapshot they set the order's epoch back to the
iterator's epoch, so the next epoch's order is the one an uninterrupted run
would have used.  Nothing about the schedule needs saving: its orders are a
pure function of (seed, epoch).
"""
from chainer import iterators

from minibatch_hybrid.schedules.base import tag_order


def _retag(state):
    if state.order is None:
        return state
    return state._replace(order=tag_order(state.order, state.epoch))


class SerialIterator(iterators.SerialIterator):
    """:class:`chainer.iterators.SerialIterator` that resumes schedules.

    Same arguments; see the module's description.
    """

    def serialize(self, serializer):
        super().serialize(serializer)
        self._state = _retag(self._state)


class MultithreadIterator(iterators.MultithreadIterator):
    """:class:`chainer.iterators.MultithreadIterator` that resumes schedules.

    Same arguments; see the module's description.
    """

    def serialize(self, serializer):
        super().serialize(serializer)
        self._state = _retag(self._state)


class MultiprocessIterator(iterators.MultiprocessIterator):
    """:class:`chainer.iterators.MultiprocessIterator` that resumes schedules.

    Same arguments; see the module's description.  Its prefetch thread asks
    the schedule for orders ahead of the consumer; the epoch is put back
    before the prefetch thread restarts from a loaded state.
    """

    def _reset_state(self, current_position, epoch, is_new_epoch, order):
        if order is not None:
            order = tag_order(order, epoch)
        super()._reset_state(current_position, epoch, is_new_epoch, order)
