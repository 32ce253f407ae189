"""The text form of schedules, as the command line takes them.

Phases joined by ``+``, each a name with an optional ``:epochs``; lists
separated by commas::

    random                         random reshuffling, every epoch
    fixed:250+random:250           the post's hybrid
    hybrid:250                     shorthand for fixed:250+random
    random,fixed:250+random:250    a list of two schedules
"""
from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.schedules.fixed import Fixed
from minibatch_hybrid.schedules.phased import Phased
from minibatch_hybrid.schedules.phased import hybrid
from minibatch_hybrid.schedules.random import Random
from minibatch_hybrid.schedules.shuffle_once import ShuffleOnce
from minibatch_hybrid.schedules.with_replacement import WithReplacement

#: Schedules by name; each is built from a seed.
SCHEDULES = {
    'fixed': lambda seed: Fixed(),
    'random': Random,
    'shuffle_once': ShuffleOnce,
    'with_replacement': WithReplacement,
}

_EXAMPLE = 'e.g. "random" or "fixed:250+random:250"'


def parse_schedule(text, seed, size=None):
    """Builds a schedule from its text form.

    Args:
        text (str): E.g. ``'random'`` or ``'fixed:250+random:250'``.
        seed (int): Seed of every randomized phase.
        size (int): The data set size it is for (:meth:`~Schedule.with_size`).

    Returns:
        Schedule: :class:`Phased` unless the text is one phase without
        epochs; its ``str()`` is the text (``hybrid:K``: ``fixed:K+random``).

    """
    if not isinstance(text, str) or not text.strip():
        raise SettingsError('empty schedule; {}'.format(_EXAMPLE))
    phases = []
    for phase in text.strip().split('+'):
        name, sep, epochs = phase.strip().partition(':')
        try:
            epochs = int(epochs) if sep else None
        except ValueError:
            raise SettingsError(
                'the epochs of phase {!r} must be an integer, got {!r} ({})'
                .format(phase, epochs, _EXAMPLE)) from None
        if name == 'hybrid':
            if epochs is None:
                raise SettingsError(
                    '"hybrid" needs its number of fixed epochs, as in '
                    '"hybrid:250" (fixed for 250 epochs, then random)')
            phases.extend(hybrid(epochs, None, seed).phases)
        elif name in SCHEDULES:
            phases.append((SCHEDULES[name](seed), epochs))
        else:
            raise SettingsError(
                'unknown schedule {!r} in {!r}; choose from {} ({})'.format(
                    name, text,
                    ', '.join(sorted(list(SCHEDULES) + ['hybrid'])),
                    _EXAMPLE))
    single = len(phases) == 1 and phases[0][1] is None
    schedule = phases[0][0] if single else Phased(phases)
    return schedule if size is None else schedule.with_size(size)


def parse_schedules(text, seed):
    """Builds a list of schedules from comma-separated text forms.

    Args:
        text (str): E.g. ``'random,fixed:250+random:250'``.
        seed (int): Seed of every randomized phase.

    Returns:
        list of Schedule: In the order given.

    """
    if not isinstance(text, str) or not text.strip():
        raise SettingsError('empty list of schedules; {}'.format(_EXAMPLE))
    return [parse_schedule(part, seed) for part in text.split(',')]


def phases_text(phases):
    """Returns the text form of ``(name, epochs)`` phases; those of no
    epochs are left out, and one phase alone is its name (the whole run)."""
    phases = [(name, epochs) for name, epochs in phases if epochs]
    if len(phases) == 1:
        return phases[0][0]
    return '+'.join('{}:{}'.format(name, epochs) for name, epochs in phases)


#: The post's hybrid over E epochs, as help texts and messages write it.
HYBRID_HALVES = 'fixed:E/2+random:E/2'


def hybrid_phases(epochs, literal=False):
    """Returns the epochs of the post's hybrid's fixed and random phases.

    Args:
        epochs (int): Epochs of the run.
        literal (bool): As the post's code ran (its Python 2 ``range(1,
            (n_epoch + 1) / 2)``: 249 + 249 of 500) rather than half each
            (the random phase gets the odd one).

    """
    if literal:
        half = (epochs + 1) // 2 - 1
        return half, half
    return epochs // 2, epochs - epochs // 2


def hybrid_halves(epochs, epoch_option='--epoch',
                  schedule_option='--schedules'):
    """Returns the text of the post's hybrid over ``epochs`` epochs.

    Args:
        epochs (int): Epochs of the run (2 or more).
        epoch_option (str): The option that gave them, for the message.
        schedule_option (str): The option for other schedules, likewise.

    """
    check_positive_int(epochs, 'epochs')
    if epochs < 2:
        raise SettingsError(
            '{} {} is too short for the hybrid schedule {} (one epoch or '
            'more in each phase): it needs at least 2 epochs; raise {} or '
            'give {}'.format(epoch_option, epochs, HYBRID_HALVES,
                             epoch_option, schedule_option))
    return str(hybrid(*hybrid_phases(epochs), seed=0))


def canonical_schedule(text, epochs):
    """Returns the text form of a schedule in a run of ``epochs`` that two
    schedules share if and only if they give every epoch the same order.

    The open last phase gets the epochs left, neighbouring phases of one
    schedule are joined, and a first ``shuffle_once`` phase gives its first
    epoch to ``random`` (it draws its permutation as ``random`` its first).

    Args:
        text (str): A schedule's text form.
        epochs (int): Epochs of the run, which the schedule must cover.

    """
    schedule = parse_schedule(text, 0)
    schedule.check_epochs(epochs)
    if not isinstance(schedule, Phased):
        schedule = Phased([(schedule, None)])
    phases = [(str(phase), epochs - start if length is None else length)
              for start, (phase, length) in zip(schedule.starts,
                                                schedule.phases)]
    if phases[0][0] == ShuffleOnce.name:
        phases[:1] = [(Random.name, 1), (ShuffleOnce.name,
                                         phases[0][1] - 1)]
    merged = []
    for name, length in phases:
        if merged and merged[-1][0] == name:
            merged[-1][1] += length
        elif length:
            merged.append([name, length])
    return phases_text(merged)
