"""A Trainer extension that checks schedules before the first update."""
from chainer import training

from minibatch_hybrid.schedules import Schedule


class CheckSchedules(training.Extension):
    """Fails at the start of training if a schedule cannot serve the run.

    For each iterator of the updater whose order sampler is a
    :class:`~minibatch_hybrid.schedules.Schedule`, it checks, before the
    first update (and again after a snapshot is loaded):

    * that the schedule's phases cover the run's epochs exactly, when the
      trainer stops after a number of epochs;
    * that the iterator's current order belongs to its current epoch, which
      fails when a snapshot was loaded into a plain Chainer iterator (use
      :mod:`minibatch_hybrid.iterators` to resume).

    Without it, a schedule shorter than the run fails only when the run
    passes its end.
    """

    trigger = 1, 'epoch'
    priority = training.PRIORITY_WRITER
    name = 'CheckSchedules'

    def initialize(self, trainer):
        stop = trainer.stop_trigger
        epochs = None
        if getattr(stop, 'unit', None) == 'epoch':
            epochs = int(stop.period)
        updater = trainer.updater
        # StandardUpdater keeps its iterators by name; others have 'main'.
        named = getattr(updater, '_iterators', None) or {
            'main': updater.get_iterator('main')}
        for name, iterator in named.items():
            schedule = getattr(iterator, 'order_sampler', None)
            if not isinstance(schedule, Schedule):
                continue
            if epochs is not None:
                schedule.check_epochs(epochs)
            state = getattr(iterator, '_state', None)
            order = getattr(state, 'order', None)
            tagged = getattr(order, 'epoch', None)
            if tagged is not None and tagged != iterator.epoch:
                raise ValueError(
                    'iterator {!r} is at epoch {} but its order is that of '
                    'epoch {}: a snapshot was loaded into a Chainer iterator '
                    'that cannot resume a schedule; build it with '
                    'minibatch_hybrid.iterators.{} instead'.format(
                        name, iterator.epoch, tagged,
                        type(iterator).__name__))

    def __call__(self, trainer):
        pass
