"""Chainer's iterators that resume a schedule (public name).

They live in :mod:`minibatch_hybrid.chainer_ext.iterators`; this name is
kept for code that imports them from here.
"""
from minibatch_hybrid.chainer_ext.iterators import MultiprocessIterator  # NOQA
from minibatch_hybrid.chainer_ext.iterators import MultithreadIterator  # NOQA
from minibatch_hybrid.chainer_ext.iterators import SerialIterator  # NOQA

__all__ = ['SerialIterator', 'MultithreadIterator', 'MultiprocessIterator']
