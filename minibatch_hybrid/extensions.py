"""Trainer extensions for schedules, and the plateau's cure (public name)."""
from minibatch_hybrid.chainer_ext.extensions import CheckSchedules  # NOQA
from minibatch_hybrid.chainer_ext.extensions import RunSettings  # NOQA
from minibatch_hybrid.chainer_ext.extensions import SettingsMismatch  # NOQA
from minibatch_hybrid.chainer_ext.revive import ReviveDeadUnits  # NOQA
from minibatch_hybrid.chainer_ext.revive import revive_chain  # NOQA

__all__ = ['CheckSchedules', 'ReviveDeadUnits', 'RunSettings',
           'SettingsMismatch', 'revive_chain']
