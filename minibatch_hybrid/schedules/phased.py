"""Schedules made of phases: hybrid, reverse hybrid and any other mix."""
import bisect

from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.schedules.base import Schedule
from minibatch_hybrid.schedules.fixed import Fixed
from minibatch_hybrid.schedules.random import Random


class Phased(Schedule):
    """Runs other schedules one after another, each for a number of epochs.

    The post's hybrid is ``Phased([(Fixed(), 250), (Random(seed), 250)])``.
    Each phase's schedule is asked for the order of the *global* epoch, so
    the random epochs of a hybrid and of a plain :class:`Random` with the
    same seed coincide: a paired comparison differs only where the
    schedules differ.

    Args:
        phases (list of tuple): ``(schedule, epochs)`` pairs, run in that
            order.  ``epochs`` is a positive integer; the last phase may give
            ``None`` to last for the rest of the run.

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
            epochs = phase[1]
            if epochs is None and i < len(phases) - 1:
                raise SettingsError(
                    'only the last phase may leave its epochs open; give '
                    'phase {} ({}) a number of epochs'.format(i, phase[0]))
            if epochs is not None:
                check_positive_int(
                    epochs, 'the epochs of phase {} ({})'.format(i, phase[0]))
        self.phases = phases
        starts = [0]
        for _, epochs in phases[:-1]:
            starts.append(starts[-1] + epochs)
        #: First epoch of each phase.
        self.starts = starts
        last = phases[-1][1]
        self.epochs = None if last is None else starts[-1] + last

    def phase_of(self, epoch):
        """Returns the index of the phase that ``epoch`` belongs to."""
        if epoch < 0:
            raise SettingsError('epoch must be >= 0, got {}'.format(epoch))
        if self.epochs is not None and epoch >= self.epochs:
            raise SettingsError(
                'schedule {!r} defines {} epochs; epoch {} (zero-based) is '
                'past its end. Give the run {} epochs, or lengthen the last '
                'phase'.format(str(self), self.epochs, epoch, self.epochs))
        return bisect.bisect_right(self.starts, epoch) - 1

    def order(self, epoch, size):
        schedule, _ = self.phases[self.phase_of(epoch)]
        return schedule.order(epoch, size)

    def sampler_order(self, epoch, size):
        # An iterator asks for the order of the epoch after the last one
        # while the last one ends, even if the run stops there: that order
        # continues the last phase.  A run that goes on past it is an error.
        if self.epochs is not None and epoch == self.epochs:
            return self.phases[-1][0].order(epoch, size)
        if self.epochs is not None and epoch > self.epochs:
            raise SettingsError(
                'schedule {!r} defines {} epochs, but the run went on past '
                'them; stop the run after {} epochs or lengthen the last '
                'phase'.format(str(self), self.epochs, self.epochs))
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
    """Returns the post's hybrid: fixed order first, then random reshuffling.

    Args:
        fixed_epochs (int): Epochs in fixed (data set) order.
        random_epochs (int or None): Epochs in random order afterwards;
            ``None`` for the rest of the run.
        seed (int): Seed of the random phase.

    Returns:
        Phased: ``fixed:<fixed_epochs>+random:<random_epochs>``.

    """
    return Phased([(Fixed(), fixed_epochs), (Random(seed), random_epochs)])
