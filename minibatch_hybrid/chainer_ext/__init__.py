"""Chainer's own machinery with schedules: iterators that resume them,
Trainer extensions, and the post's experiment as a Trainer."""
# Chainer on today's stacks (NumPy 2, Python 3.12), before any module here
# imports it: see minibatch_hybrid._compat.
from minibatch_hybrid._compat import chainer  # NOQA
