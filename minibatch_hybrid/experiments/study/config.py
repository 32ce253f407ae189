"""The settings of a study, checked whole before anything runs."""
import dataclasses

import numpy

from minibatch_hybrid.checks import SEED_LIMIT
from minibatch_hybrid.checks import check_memory
from minibatch_hybrid.checks import check_positive_int
from minibatch_hybrid.checks import check_seed
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.experiments import stats
from minibatch_hybrid.schedules import parse_schedule
from minibatch_hybrid.schedules.text import canonical_schedule
from minibatch_hybrid.schedules.text import phases_text
from minibatch_hybrid.settings import ARRAY_BYTES
from minibatch_hybrid.settings import Settings
from minibatch_hybrid.settings import engine_setting
from minibatch_hybrid.settings import setting

#: Runs longer than this are not searched for the epochs that tell a
#: sweep's fractions apart (:func:`check_fractions`).
_MAX_SEARCH = 100000
#: The ``--revive`` value that revives each schedule at its first switch.
AT_SWITCH = 'switch'


def revive_value(text):
    """Converts ``--revive``'s text: an epoch, or ``'switch'``."""
    if text is None or text == AT_SWITCH or (
            isinstance(text, int) and not isinstance(text, bool)):
        return text
    try:
        if isinstance(text, str):  # not 2.5 or True
            return int(text)
    except ValueError:
        pass
    raise SettingsError('--revive takes an epoch (a whole number) or {!r}, '
                        'not {!r}'.format(AT_SWITCH, text))


def first_switch(text):
    """Returns the epoch at which a schedule first changes order, or None
    for a schedule of one phase."""
    starts = getattr(parse_schedule(text, 0), 'starts', [0])
    return starts[1] if len(starts) > 1 else None


def study_arms(schedules, revive=None):
    """Returns a study's arms, ``(label, schedule text, revival epoch or
    None)``: the schedules, then their revived arms (``revive`` as
    :class:`StudyConfig`'s)."""
    arms = [(text, text, None) for text in schedules]
    if revive is None:
        return arms
    for text in schedules:
        epoch = first_switch(text) if revive == AT_SWITCH else revive
        if epoch is not None:
            arms.append(('{} revive@{}'.format(text, epoch), text, epoch))
    return arms


def switch_epoch(fraction, epochs):
    """Returns the fixed-order epochs of a sweep's ``fraction``."""
    return int(round(fraction * epochs))


def _collision(fractions, epochs):
    """The first two fractions with the same switch epoch, or None."""
    seen = {}
    for f in fractions:
        k = switch_epoch(f, epochs)
        if k in seen:
            return seen[k], f
        seen[k] = f
    return None


def check_fractions(fractions, epochs):
    """Raises SettingsError unless a sweep's fractions lie in [0, 1] and
    give distinct runs (no two round to one :func:`switch_epoch`); the
    message says how many epochs would tell them apart."""
    check_positive_int(epochs, 'epochs')
    fractions = list(fractions)
    for f in fractions:
        if not 0 <= f <= 1:
            raise SettingsError('fractions must lie in [0, 1], got '
                                '{}'.format(f))
    for i, f in enumerate(fractions):
        if f in fractions[:i]:
            raise SettingsError('--fractions lists {!r} twice: the same '
                                'runs twice; give it once'.format(f))
    pair = _collision(fractions, epochs)
    if pair is None:
        return
    a, b = pair
    k = switch_epoch(a, epochs)
    same = phases_text([('fixed', k), ('random', epochs - k)])
    # Any run longer than 1 / (the smallest gap) keeps every pair apart;
    # below that, find the last run length that does not.
    values = sorted(set(fractions))
    gap = min(y - x for x, y in zip(values, values[1:]))
    bound = int(1 / gap) + 2
    if bound > _MAX_SEARCH:
        fix = 'give only one of them'
    else:
        least = bound
        while least - 1 > epochs and _collision(values, least - 1) is None:
            least -= 1
        fix = 'raise --epoch to at least {}, or give only one of ' \
            'them'.format(least)
    raise SettingsError(
        '--epoch {} is too short to tell the fractions {!r} and {!r} apart: '
        'both give {} fixed epochs ({}), the same runs twice; {}'.format(
            epochs, a, b, k, same, fix))


@dataclasses.dataclass
class _Runs:
    schedules: list
    seeds: int = setting(64, 'number of seeds', ('--seeds',), int)
    first_seed: int = setting(0, 'the first seed', ('--first-seed',), int)


# Dataclasses take the fields of the last base first: the schedules and
# seeds stay the first arguments.
@dataclasses.dataclass
class StudyConfig(Settings, _Runs):
    """The settings of a study; the shared ones are :class:`Settings`'.

    Args:
        schedules (list of str): The schedules compared, as text.
        seeds (int): Number of seeds, from ``first_seed`` on.
        first_seed (int): The first seed.
        chunk (int): Seeds per saved chunk, trained at once.
        revive (int or str): Also train each schedule with its dead
            second-layer units revived after this epoch, or at its first
            switch (:data:`AT_SWITCH`).

    """

    engine: str = engine_setting('auto')
    chunk: int = setting(
        32, 'seeds trained at once and saved together (default: '
        '{default}); changes speed, not results (a folder is continued '
        'with the same)', ('--chunk',), int)
    revive: object = setting(
        None, 'also train each schedule with its dead second-layer units '
        'revived after epoch REVIVE, from the same weights (an arm named '
        '"<schedule> revive@REVIVE"); "switch": at each schedule\'s first '
        'change of order (default: {default}, no revived arms)',
        ('--revive',))

    def __post_init__(self):
        super().__post_init__()
        self.schedules = [str(parse_schedule(text, 0))
                          for text in self.schedules]

    def check(self):
        """Raises SettingsError unless every setting is in its range, the
        seeds are below 2**32 and each schedule covers the epochs and
        gives other runs than the rest."""
        super().check()
        check_positive_int(self.seeds, 'the number of seeds')
        check_positive_int(self.chunk, 'chunk')
        check_seed(self.first_seed, 'the first seed')
        if self.first_seed + self.seeds > SEED_LIMIT:
            raise SettingsError(
                'seeds must be below 2**32 (NumPy\'s RandomState draws the '
                'initial weights), but {} seeds from {} reach {}; lower '
                '--first-seed or --seeds'.format(
                    self.seeds, self.first_seed,
                    self.first_seed + self.seeds - 1))
        if not isinstance(self.schedules, (list, tuple)) or \
                not self.schedules:
            raise SettingsError('a study needs at least one schedule')
        # Each covers the epochs, or canonical_schedule says so.
        forms = [canonical_schedule(text, self.epochs)
                 for text in self.schedules]
        texts = [str(parse_schedule(text, 0)) for text in self.schedules]
        if len(set(texts)) != len(texts):
            raise SettingsError('schedules are listed twice: {}'.format(
                texts))
        for i, form in enumerate(forms):  # hybrid:6 is fixed:6+random:6
            if forms.index(form) != i:
                raise SettingsError(
                    'schedules {!r} and {!r} give the same runs at {} '
                    'epochs (both are {}): list one of them'.format(
                        self.schedules[forms.index(form)],
                        self.schedules[i], self.epochs, form))
        self.revive = revive_value(self.revive)
        if isinstance(self.revive, int) and \
                not 1 <= self.revive < self.epochs:
            raise SettingsError(
                '--revive {} is outside the run: revive after an epoch from '
                '1 to {} (runs of {} epochs)'.format(
                    self.revive, self.epochs - 1, self.epochs))
        if self.revive == AT_SWITCH and len(self.arms()) == \
                len(self.schedules):
            raise SettingsError(
                '--revive switch revives each schedule at its first change '
                'of order, and none of {} changes; give an epoch '
                'instead'.format(', '.join(self.schedules)))

    def arms(self):
        """Returns the study's arms (:func:`study_arms`)."""
        return study_arms(self.schedules, self.revive)

    def labels(self):
        """Returns the arms' labels (the rows of the results)."""
        return [label for label, _, _ in self.arms()]

    def revived_arms(self):
        """Returns ``{schedule text: label of its revived arm}``."""
        return {text: label for label, text, epoch in self.arms()
                if epoch is not None}

    def seed_list(self):
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def chunks(self):
        """Returns the seeds of each chunk."""
        seeds = self.seed_list()
        return [seeds[i:i + self.chunk]
                for i in range(0, len(seeds), self.chunk)]

    def identity(self):
        """The settings a study folder is continued with: all but the
        device and the engine (recorded apart)."""
        settings = self.to_dict()
        del settings['device'], settings['engine']
        if settings.get('revive') is None:  # as folders before --revive
            settings.pop('revive', None)
        return settings

    def memory_needed(self, parallel=1):
        """Bytes the study needs at its peak, roughly: its results and the
        chunks trained at once by ``parallel`` workers."""
        runs = len(self.arms()) * self.seeds
        replicas = len(self.arms()) * min(self.chunk, self.seeds)
        return self.memory(replicas=parallel * replicas,
                           records=runs * (self.epochs + 2),
                           record_bytes=ARRAY_BYTES)

    def check_memory(self, available=None, parallel=1):
        """Raises SettingsError if the study cannot fit in memory here."""
        check_memory(
            self.memory_needed(parallel),
            'this study ({} runs of {} epochs, {} hidden units, chunks of {} '
            'seeds)'.format(len(self.arms()) * self.seeds, self.epochs,
                            self.n_units, min(self.chunk, self.seeds)),
            'use fewer --seeds, --epoch or --units, or a smaller --chunk',
            available)


class StudyResult(object):
    """The results of a study, one row per arm (:attr:`labels`) and seed.

    Attributes:
        loss (numpy.ndarray): ``(arms, seeds, epochs)``: the post's
            per-epoch loss of each run.
        final_train_loss (numpy.ndarray): ``(arms, seeds)``: the loss on
            the whole training set at the end (older name: final_loss).
        heldout_mse (numpy.ndarray): ``(arms, seeds)``.
        coverage (numpy.ndarray): ``(arms, seeds)``: the largest training
            x where a second-layer unit is active at the end (or NaN).

    """

    def __init__(self, config, loss, final_train_loss, heldout_mse, engine,
                 coverage):
        self.config = config
        self.labels = config.labels()
        self.engine = engine
        self.loss = loss
        self.final_train_loss = final_train_loss
        self.heldout_mse = heldout_mse
        self.coverage = coverage

    @property
    def final_loss(self):
        """The older name of :attr:`final_train_loss`."""
        return self.final_train_loss

    def stuck(self):
        """``(arms, seeds)`` booleans: runs that ended on a plateau."""
        return numpy.array([[stats.plateau(c) for c in runs]
                            for runs in self.loss])
