"""The experiments: the post's reproduction, the many-seed study and sweep,
their statistics, and the benchmark."""
# Chainer on today's stacks (NumPy 2, Python 3.12), before any module here
# imports it: see minibatch_hybrid._compat.
from minibatch_hybrid._compat import chainer  # NOQA
