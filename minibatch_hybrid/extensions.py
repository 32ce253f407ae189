"""Trainer extensions for schedules (public name).

They live in :mod:`minibatch_hybrid.chainer_ext.extensions`; this name is
kept for code that imports them from here.
"""
from minibatch_hybrid.chainer_ext.extensions import CheckSchedules  # NOQA
from minibatch_hybrid.chainer_ext.extensions import RunSettings  # NOQA
from minibatch_hybrid.chainer_ext.extensions import SettingsMismatch  # NOQA

__all__ = ['CheckSchedules', 'RunSettings', 'SettingsMismatch']
