"""Schedules in Chainer's iterators and Trainer, resumed exactly."""
# Chainer on today's stacks, before any module here imports it (_compat).
from minibatch_hybrid._compat import chainer  # NOQA
