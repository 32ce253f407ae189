"""Schedules made of phases: hybrid, reverse hybrid and any other mix."""
import bisect
import itertools

from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.schedules.base import Schedule
from minibatch_hybrid.schedules.fixed import Fixed
from minibatch_hybrid.schedules.random import Random


class Phased(Schedule):
    """Runs other schedules one after another, each for a number of epochs.

    Each phase is asked for the order of the *global* epoch, so a hybrid's
    random epochs are those of a :class:`Random` of the same seed.

    Args:
        phases (list of tuple): ``(schedule, epochs)`` pairs, in order;
            the last may give ``None`` epochs: the rest of the run.

    .. doctest::

        >>> from minibatch_hybrid.schedules import Fixed, Random
        >>> s = Phased([(Fixed(), 2), (Random(seed=0), 2)])
        >>> str(s), s.epochs, s.phase_of(1), s.phase_of(2)
        ('fixed:2+random:2', 4, 0, 1)

    """

    name = 'phased'

    def __init__(self, phases):
        phases = list(phases)
        if not phases:
            raise SettingsError('a phased schedule needs at least one phase')
        for i, phase in enumerate(phases):
            if not (isinstance(phase, tuple) and len(phase) == 2
                    and isinstance(phase[0], Schedule)):
                raise TypeError(
                    'phase {} must be a (schedule, epochs) pair, got '
                    '{!r}'.format(i, phase))
            schedule, epochs = phase
            if epochs is not None:
                check_positive_int(
                    epochs, 'the epochs of phase {} ({})'.format(i, schedule))
            elif i < len(phases) - 1:
                raise SettingsError(
                    'only the last phase may leave its epochs open; give '
                    'phase {} ({}) a number of epochs'.format(i, schedule))
        self.phases = phases
        # The first epoch of each phase.
        self.starts = [0] + list(itertools.accumulate(
            epochs for _, epochs in phases[:-1]))
        last = phases[-1][1]
        self.epochs = None if last is None else self.starts[-1] + last

    def phase_of(self, epoch):
        """Returns the index of the phase that ``epoch`` belongs to."""
        if self.epochs is not None and epoch >= self.epochs:
            raise SettingsError(
                'schedule {!r} defines {} epochs, but the run went on past '
                'them (epoch {}, zero-based, is past its end); stop the run '
                'after {} epochs or lengthen the last phase'.format(
                    str(self), self.epochs, epoch, self.epochs))
        return bisect.bisect_right(self.starts, epoch) - 1

    def order(self, epoch, size):
        return self.phases[self.phase_of(epoch)][0].order(epoch, size)

    def sampler_order(self, epoch, size):
        # Asked one epoch ahead as the last ends: the last phase goes on.
        if epoch == self.epochs:
            return self.phases[-1][0].order(epoch, size)
        return self.order(epoch, size)

    def check_epochs(self, epochs):
        super().check_epochs(epochs)
        if self.epochs is None and self.starts[-1] >= epochs:
            raise SettingsError(
                'schedule {!r} leaves its last phase no epochs in a run of {} '
                '(the earlier phases take {}); shorten them or run longer'
                .format(str(self), epochs, self.starts[-1]))

    def __str__(self):
        return '+'.join(
            str(schedule) if epochs is None else
            '{}:{}'.format(schedule, epochs)
            for schedule, epochs in self.phases)


def hybrid(fixed_epochs, random_epochs, seed):
    """Returns the post's hybrid: fixed order, then random reshuffling.

    Args:
        fixed_epochs (int): Epochs in fixed (data set) order.
        random_epochs (int or None): Epochs in random order afterwards
            (None: the rest of the run).
        seed (int): Seed of the random phase.

    Returns:
        Phased: ``fixed:<fixed_epochs>+random:<random_epochs>``.

    """
    return Phased([(Fixed(), fixed_epochs), (Random(seed), random_epochs)])
