"""Trainer extensions: schedules checked, settings kept in snapshots."""
import json

import chainer
from chainer import training
import numpy

from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.schedules import Schedule


class CheckSchedules(training.Extension):
    """Fails before the first update if a schedule cannot serve the run.

    For each iterator whose order sampler is a
    :class:`~minibatch_hybrid.schedules.Schedule`: its phases must cover
    the run's epochs (when it stops after epochs), and its order must be
    that of its epoch (not so after a snapshot was loaded into a plain
    Chainer iterator; resume with :mod:`minibatch_hybrid.iterators`).
    """

    trigger = 1, 'epoch'
    priority = training.PRIORITY_WRITER
    name = 'CheckSchedules'

    def initialize(self, trainer):
        stop = trainer.stop_trigger
        updater = trainer.updater
        # StandardUpdater keeps its iterators by name; others have 'main'.
        named = getattr(updater, '_iterators', None) or {
            'main': updater.get_iterator('main')}
        for name, iterator in named.items():
            schedule = getattr(iterator, 'order_sampler', None)
            if not isinstance(schedule, Schedule):
                continue
            if getattr(stop, 'unit', None) == 'epoch':
                schedule.check_epochs(int(stop.period))
            order = getattr(getattr(iterator, '_state', None), 'order', None)
            tagged = getattr(order, 'epoch', None)
            if tagged is not None and tagged != iterator.epoch:
                raise SettingsError(
                    'iterator {!r} is at epoch {} but its order is that of '
                    'epoch {}: a snapshot was loaded into a Chainer iterator '
                    'that cannot resume a schedule; build it with '
                    'minibatch_hybrid.iterators.{} instead'.format(
                        name, iterator.epoch, tagged,
                        type(iterator).__name__))

    def __call__(self, trainer):
        pass


class SettingsMismatch(SettingsError):
    """A snapshot was made by a run with other settings."""


class RunSettings(training.Extension):
    """Records a run's settings in its snapshots; loading one made with
    other settings raises :class:`SettingsMismatch`.

    Args:
        **settings: JSON-ready values (schedule, seed, units, ...).

    """

    trigger = 1, 'epoch'
    priority = training.PRIORITY_READER
    name = 'RunSettings'

    def __init__(self, **settings):
        self.settings = dict(settings)

    def __call__(self, trainer):
        pass

    def serialize(self, serializer):
        if not isinstance(serializer, chainer.serializer.Deserializer):
            serializer('settings', numpy.array(
                json.dumps(self.settings, sort_keys=True)))
            return
        try:
            saved = serializer('settings', None)
        except KeyError:
            saved = None
        self.check(saved)

    def check(self, saved):
        """Raises :class:`SettingsMismatch` unless ``saved`` (as stored in
        a snapshot; None if absent) are this run's settings."""
        if saved is None:
            raise SettingsMismatch(
                'it does not record the settings of its run (an older '
                'version wrote it); start over without --resume')
        try:
            saved = json.loads(str(numpy.asarray(saved)[()]))
        except (ValueError, RecursionError):  # RecursionError: too deep
            saved = None
        if not isinstance(saved, dict):
            raise SettingsMismatch('its record of the run\'s settings is '
                                   'damaged; start over without --resume')
        if saved != self.settings:
            changed = sorted(k for k in set(saved) | set(self.settings)
                             if saved.get(k) != self.settings.get(k))
            raise SettingsMismatch(
                'it was made by a run with {}, and this run has {}; resume '
                'with the same options, or start over without '
                '--resume'.format(
                    ', '.join('{}={}'.format(k, saved.get(k))
                              for k in changed),
                    ', '.join('{}={}'.format(k, self.settings.get(k))
                              for k in changed)))
