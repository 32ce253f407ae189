"""Chainer's iterators, resumable with a schedule.

A snapshot restores an order's values but not its epoch (an
:class:`~minibatch_hybrid.schedules.EpochOrder`), so a schedule would start
over at epoch 0.  These iterators differ from Chainer's only in putting the
epoch back when a snapshot is loaded: the next order is the one an
uninterrupted run would have used.  The schedule itself needs no saving.
"""
from chainer import iterators

from minibatch_hybrid.schedules.base import tag_order


class _Resumes(object):

    def serialize(self, serializer):
        super().serialize(serializer)
        if self._state.order is not None:
            self._state = self._state._replace(
                order=tag_order(self._state.order, self._state.epoch))


class SerialIterator(_Resumes, iterators.SerialIterator):
    """Chainer's ``SerialIterator`` that resumes schedules."""


class MultithreadIterator(_Resumes, iterators.MultithreadIterator):
    """Chainer's ``MultithreadIterator`` that resumes schedules."""


class MultiprocessIterator(iterators.MultiprocessIterator):
    """Chainer's ``MultiprocessIterator`` that resumes schedules."""

    def _reset_state(self, current_position, epoch, is_new_epoch, order):
        # Before its prefetch thread restarts from a loaded state.
        if order is not None:
            order = tag_order(order, epoch)
        super()._reset_state(current_position, epoch, is_new_epoch, order)
