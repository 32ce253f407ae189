"""The text form of schedules, as used on the command line.

A schedule is written as phases joined by ``+``; a phase is a name with an
optional ``:epochs``.  Lists of schedules are separated by commas::

    random                         random reshuffling, every epoch
    fixed:250+random:250           the post's hybrid
    random:250+fixed:250           the reverse hybrid
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


def _parse_epochs(text, phase):
    try:
        epochs = int(text)
    except ValueError:
        raise SettingsError(
            'the epochs of phase {!r} must be an integer, got {!r} ({})'
            .format(phase, text, _EXAMPLE)) from None
    check_positive_int(epochs, 'the epochs of phase {!r}'.format(phase))
    return epochs


def parse_schedule(text, seed, size=None):
    """Builds a schedule from its text form.

    Args:
        text (str): E.g. ``'random'``, ``'fixed:250+random:250'`` or
            ``'hybrid:250'``.
        seed (int): Seed of every randomized phase.
        size (int): If given, the data set size the schedule is for (see
            :meth:`Schedule.with_size`).

    Returns:
        Schedule: A simple schedule for a single phase without epochs, else a
        :class:`Phased` schedule.  ``str()`` of it gives the text back
        (``hybrid:K`` is written out as ``fixed:K+random``).

    .. doctest::

        >>> str(parse_schedule('hybrid:250', seed=0))
        'fixed:250+random'

    """
    if not isinstance(text, str) or not text.strip():
        raise SettingsError('empty schedule; {}'.format(_EXAMPLE))
    phases = []
    for phase in text.strip().split('+'):
        name, sep, epochs_text = phase.strip().partition(':')
        epochs = _parse_epochs(epochs_text, phase) if sep else None
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
    if len(phases) == 1 and phases[0][1] is None:
        schedule = phases[0][0]
    else:
        schedule = Phased(phases)
    return schedule if size is None else schedule.with_size(size)


def parse_schedules(text, seed):
    """Builds a list of schedules from comma-separated text forms.

    Args:
        text (str): E.g. ``'random,fixed:250+random:250'``.
        seed (int): Seed of every randomized phase.

    Returns:
        list of Schedule: The schedules in the order given.

    """
    if not isinstance(text, str) or not text.strip():
        raise SettingsError('empty list of schedules; {}'.format(_EXAMPLE))
    return [parse_schedule(part, seed) for part in text.split(',')]


def phases_text(phases):
    """Returns the text form of a schedule given as its phases.

    Phases of no epochs are left out, and a schedule of one phase is its
    name alone (it covers the whole run).

    Args:
        phases (sequence): ``(name, epochs)`` pairs, in order.

    .. doctest::

        >>> phases_text([('fixed', 4), ('random', 5)])
        'fixed:4+random:5'
        >>> phases_text([('fixed', 0), ('random', 9)])
        'random'

    """
    phases = [(name, epochs) for name, epochs in phases if epochs]
    if len(phases) == 1:
        return phases[0][0]
    return '+'.join('{}:{}'.format(name, epochs) for name, epochs in phases)


#: The post's hybrid over E epochs, as help texts and messages write it
#: (:func:`hybrid_halves` writes it out).
HYBRID_HALVES = 'fixed:E/2+random:E/2'


def hybrid_phases(epochs, literal=False):
    """Returns the epochs of the post's hybrid's fixed and random phases.

    Args:
        epochs (int): Epochs of the run.
        literal (bool): As the post's code ran it rather than as its text
            says: its Python 2 ``range(1, (n_epoch + 1) / 2)`` gives each
            phase ``(epochs + 1) // 2 - 1`` epochs (249 + 249 of 500).  By
            default, half each (250 + 250; the random phase gets the odd
            one).

    .. doctest::

        >>> hybrid_phases(500), hybrid_phases(500, literal=True)
        ((250, 250), (249, 249))

    """
    if literal:
        half = (epochs + 1) // 2 - 1
        return half, half
    return epochs // 2, epochs - epochs // 2


def hybrid_halves(epochs, epoch_option='--epoch',
                  schedule_option='--schedules'):
    """Returns the text of the post's hybrid over ``epochs`` epochs: fixed
    order for the first half, random for the rest.

    Args:
        epochs (int): Epochs of the run.
        epoch_option (str): The option that gave ``epochs``, for the
            message.
        schedule_option (str): The option that gives other schedules, for
            the message.

    Raises:
        SettingsError: If ``epochs`` is not a positive integer, or too short
            to give each phase an epoch (it needs at least 2).

    .. doctest::

        >>> hybrid_halves(9)
        'fixed:4+random:5'

    """
    check_positive_int(epochs, 'epochs')
    if epochs < 2:
        raise SettingsError(
            '{} {} is too short for the hybrid schedule {} (one epoch or '
            'more in each phase): it needs at least 2 epochs; raise {} or '
            'give {}'.format(epoch_option, epochs, HYBRID_HALVES,
                             epoch_option, schedule_option))
    fixed, random = hybrid_phases(epochs)
    return phases_text([('fixed', fixed), ('random', random)])


def canonical_schedule(text, epochs):
    """Returns the canonical text form of a schedule in a run of ``epochs``.

    Two schedules give every epoch of the run the same order if and only
    if they have the same canonical form: the open last phase is given the
    epochs left, and neighbouring phases of the same schedule are joined
    (every schedule that has a text form draws the order of an epoch from
    its seed and the epoch alone, whatever the phase).  ``hybrid:6``,
    ``fixed:6+random`` and ``fixed:6+random:3+random:3`` are all
    ``fixed:6+random:6`` at 12 epochs; a single schedule over the whole run
    is its name.  ``shuffle_once`` draws its one permutation as ``random``
    draws its first (``default_rng([seed])`` is ``default_rng([seed,
    0])``), so a ``shuffle_once`` phase at the start gives its first epoch
    to ``random``: ``shuffle_once:1+random`` is ``random``.

    Args:
        text (str): A schedule's text form.
        epochs (int): Epochs of the run (the schedule must cover them, see
            :meth:`Schedule.check_epochs`).

    .. doctest::

        >>> canonical_schedule('hybrid:6', 12)
        'fixed:6+random:6'
        >>> canonical_schedule('random:4+random:8', 12)
        'random'
        >>> canonical_schedule('shuffle_once:1+random', 12)
        'random'
        >>> canonical_schedule('shuffle_once', 12)
        'random:1+shuffle_once:11'

    """
    schedule = parse_schedule(text, 0)
    schedule.check_epochs(epochs)
    if isinstance(schedule, Phased):
        phases = [(str(phase), epochs - start if length is None else length)
                  for start, (phase, length) in zip(schedule.starts,
                                                    schedule.phases)]
    else:
        phases = [(str(schedule), epochs)]
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
