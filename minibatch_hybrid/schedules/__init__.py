"""Mini-batch order schedules, usable as Chainer order samplers.

One schedule per module; a :class:`Schedule` subclass with a ``name`` and
an ``order(epoch, size)`` method is a new schedule.
"""
# Chainer on today's stacks, before any module here imports it (_compat).
from minibatch_hybrid._compat import chainer  # NOQA
from minibatch_hybrid.schedules.base import EpochOrder  # NOQA
from minibatch_hybrid.schedules.base import Schedule  # NOQA
from minibatch_hybrid.schedules.base import SeededSchedule  # NOQA
from minibatch_hybrid.schedules.base import epoch_generator  # NOQA
from minibatch_hybrid.schedules.base import tag_order  # NOQA
from minibatch_hybrid.schedules.fixed import Fixed  # NOQA
from minibatch_hybrid.schedules.phased import Phased  # NOQA
from minibatch_hybrid.schedules.phased import hybrid  # NOQA
from minibatch_hybrid.schedules.random import Random  # NOQA
from minibatch_hybrid.schedules.replay import Replay  # NOQA
from minibatch_hybrid.schedules.shuffle_once import ShuffleOnce  # NOQA
from minibatch_hybrid.schedules.text import SCHEDULES  # NOQA
from minibatch_hybrid.schedules.text import parse_schedule  # NOQA
from minibatch_hybrid.schedules.text import parse_schedules  # NOQA
from minibatch_hybrid.schedules.with_replacement import WithReplacement  # NOQA

__all__ = [
    'Schedule', 'SeededSchedule', 'EpochOrder', 'tag_order',
    'epoch_generator', 'Fixed', 'Random', 'ShuffleOnce', 'WithReplacement',
    'Replay', 'Phased', 'hybrid', 'parse_schedule', 'parse_schedules',
    'SCHEDULES',
]
