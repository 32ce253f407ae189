"""The settings of a study, checked whole before anything runs."""
import dataclasses

import numpy

from minibatch_hybrid import native
from minibatch_hybrid._checks import SEED_LIMIT
from minibatch_hybrid._checks import check_memory
from minibatch_hybrid._checks import check_positive_int
from minibatch_hybrid._checks import check_run
from minibatch_hybrid._checks import check_seed
from minibatch_hybrid.schedules import parse_schedule


@dataclasses.dataclass
class StudyConfig:
    """The settings of a study.

    Args:
        schedules (list of str): Text forms of the schedules to compare,
            each covering ``epochs`` epochs (``'random'`` does; a phased
            schedule's phases must add up to it).
        seeds (int): Number of seeds: ``first_seed``, ``first_seed + 1``, ...
        first_seed (int): The first seed.
        epochs (int): Epochs of every run.
        batchsize (int): Mini-batch size.
        n_units (int): Hidden width.
        n_data (int): Training points.
        n_heldout (int): Held-out points (drawn with each run's seed).
        chunk (int): Seeds per saved chunk; each chunk trains
            ``chunk * len(schedules)`` replicas at once.  It changes speed
            and memory, never the results; a folder is continued with the
            chunk size that started it (its chunk files are cut by it).
        device: Chainer device specifier.
        engine (str): ``'auto'``, ``'native'`` or ``'numpy'``: the
            ensemble's arithmetic (:func:`native.resolve_engine`).  Engines
            agree to float32 rounding, so a study records the one it ran
            with and is continued only with the same; the native engine
            gives the same bits on every CPU that runs it.

    """

    schedules: list
    seeds: int = 64
    first_seed: int = 0
    epochs: int = 500
    batchsize: int = 10
    n_units: int = 100
    n_data: int = 1000
    n_heldout: int = 1000
    chunk: int = 32
    device: object = '@numpy'
    engine: str = 'auto'

    def __post_init__(self):
        native.check_engine(self.engine)
        check_positive_int(self.seeds, 'the number of seeds')
        check_positive_int(self.chunk, 'chunk')
        check_seed(self.first_seed, 'the first seed')
        if self.first_seed + self.seeds > SEED_LIMIT:
            raise ValueError(
                'seeds must be below 2**32 (NumPy\'s RandomState draws the '
                'initial weights), but {} seeds from {} reach {}; lower '
                '--first-seed or --seeds'.format(
                    self.seeds, self.first_seed,
                    self.first_seed + self.seeds - 1))
        check_run(self.epochs, self.batchsize, self.n_units, self.n_data,
                  self.n_heldout)
        if not isinstance(self.schedules, (list, tuple)) or \
                not self.schedules:
            raise ValueError('a study needs at least one schedule')
        texts = []
        for text in self.schedules:
            schedule = parse_schedule(text, 0)
            schedule.check_epochs(self.epochs)
            texts.append(str(schedule))
        if len(set(texts)) != len(texts):
            raise ValueError('schedules are listed twice: {}'.format(texts))
        self.schedules = texts

    def seed_list(self):
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def chunks(self):
        """Returns the seeds of each chunk."""
        seeds = self.seed_list()
        return [seeds[i:i + self.chunk]
                for i in range(0, len(seeds), self.chunk)]

    def to_dict(self):
        return dataclasses.asdict(self)

    def identity(self):
        """The settings a study folder is continued with, but the engine.

        All settings but the device (which changes speed only) and the
        engine (recorded apart, as resolved); the chunk size is among them
        because it cuts the chunk files.
        """
        settings = self.to_dict()
        del settings['device'], settings['engine']
        return settings

    def memory_needed(self, parallel=1):
        """Bytes a run needs at its peak, roughly: results and the chunks
        trained at once (``parallel``: local worker processes).

        The results keep every run's per-epoch loss in float64 (twice, while
        they are put together); a chunk's ensemble keeps, per replica, the
        weights, Adam's two moments and the activations of a batch.
        """
        runs = len(self.schedules) * self.seeds
        results = 2 * runs * (self.epochs + 2) * 8
        n, replicas = self.n_units, len(self.schedules) * min(self.chunk,
                                                              self.seeds)
        per_replica = 4 * (3 * (n * n + 4 * n + 1) + 3 * self.batchsize * n +
                           2 * (self.n_data + self.n_heldout))
        return results + parallel * replicas * per_replica

    def check_memory(self, available=None, parallel=1):
        """Raises ValueError if the study cannot fit in memory here."""
        check_memory(
            self.memory_needed(parallel),
            'this study ({} runs of {} epochs, {} hidden units, chunks of {} '
            'seeds)'.format(len(self.schedules) * self.seeds, self.epochs,
                            self.n_units, min(self.chunk, self.seeds)),
            'use fewer --seeds, --epoch or --units, or a smaller --chunk',
            available)


class StudyResult(object):
    """The results of a study, one row per (schedule, seed).

    Attributes:
        config (StudyConfig): Its settings.
        loss (numpy.ndarray): ``(schedules, seeds, epochs)``: the post's
            per-epoch loss of each run.
        final_loss (numpy.ndarray): ``(schedules, seeds)``: the full-data
            training loss after the last epoch.
        heldout_mse (numpy.ndarray): ``(schedules, seeds)``.
        engine (str): The engine that ran: ``'native'``, ``'numpy'`` or
            ``'cupy'``.

    """

    def __init__(self, config, loss, final_loss, heldout_mse, engine):
        self.config = config
        self.engine = engine
        self.loss = loss
        self.final_loss = final_loss
        self.heldout_mse = heldout_mse

    def stuck(self):
        """``(schedules, seeds)`` booleans: runs that ended on a plateau."""
        from minibatch_hybrid import stats
        return numpy.array([[stats.plateau(c) for c in runs]
                            for runs in self.loss])
