"""Chainer's iterators that resume a schedule (public name)."""
from minibatch_hybrid.chainer_ext.iterators import MultiprocessIterator  # NOQA
from minibatch_hybrid.chainer_ext.iterators import MultithreadIterator  # NOQA
from minibatch_hybrid.chainer_ext.iterators import SerialIterator  # NOQA

__all__ = ['SerialIterator', 'MultithreadIterator', 'MultiprocessIterator']
