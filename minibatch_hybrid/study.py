"""Many seeds, compared pair by pair: does the hybrid beat random order?

A study trains every schedule from every seed's initial weights (the same
weights for all schedules of a seed) as one :class:`Ensemble` per chunk of
seeds, and saves each chunk as soon as it is done: rerunning an interrupted
study continues where it stopped and ends with the same numbers as an
uninterrupted run, because a replica's results do not depend on which other
replicas share its ensemble.
"""
import dataclasses
import itertools
import json
import os

import numpy

from minibatch_hybrid import native
from minibatch_hybrid import plots
from minibatch_hybrid import results as results_io
from minibatch_hybrid import stats
from minibatch_hybrid._checks import check_positive_int
from minibatch_hybrid._checks import check_run
from minibatch_hybrid._checks import check_seed
from minibatch_hybrid.data import SinDataset
from minibatch_hybrid.data import make_heldout_dataset
from minibatch_hybrid.data import make_sin_dataset
from minibatch_hybrid.device import get_device
from minibatch_hybrid.ensemble import Ensemble
from minibatch_hybrid.model import make_optimizer
from minibatch_hybrid.progress import Progress
from minibatch_hybrid.schedules import parse_schedule
from minibatch_hybrid.training import train

#: Seed of the bootstrap resamples of :func:`summarize`.
BOOTSTRAP_SEED = 20161127


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
            and memory, never the results.
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
        check_run(self.epochs, self.batchsize, self.n_units, self.n_data,
                  self.n_heldout)
        if not self.schedules:
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
        """The settings that determine the results, but for the engine.

        (The device and the chunk size change speed only; the engine that
        ran is recorded apart, as resolved.)
        """
        settings = self.to_dict()
        del settings['device'], settings['engine']
        return settings


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
        return numpy.array([[stats.plateau(c) for c in runs]
                            for runs in self.loss])


def _chunk_path(out, index):
    return os.path.join(out, 'chunks', 'chunk-{:05d}.npz'.format(index))


def _check_out(config, engine, out):
    path = os.path.join(out, 'study.json')
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved['config'] != config.identity():
            changed = sorted(
                k for k in set(saved['config']) | set(config.identity())
                if saved['config'].get(k) != config.identity().get(k))
            raise ValueError(
                '{} holds a study with other settings ({} differ); give '
                'another --out, or delete that folder to start over'.format(
                    out, ', '.join(changed)))
        # Studies saved before engines existed ran on NumPy.
        ran = saved.get('engine', 'numpy')
        if ran.startswith('native-'):
            raise ValueError(
                '{} holds a study run by the {} kernels of an earlier '
                'version, whose arithmetic depended on the CPU; the native '
                'engine now computes other (CPU-independent) bits, so it '
                'cannot continue that study. Give another --out, or delete '
                'that folder to start over'.format(out, ran))
        if ran != engine:
            raise ValueError(
                '{} holds a study run by the {} engine, and this run would '
                'use {}; their results differ in rounding, so they are not '
                'mixed. Continue with --engine {}, give another --out, or '
                'delete that folder to start over'.format(
                    out, ran, engine,
                    'native' if native.is_native(ran) else 'numpy'))
    else:
        results_io.write_json(path, {'config': config.identity(),
                                     'engine': engine})


def _heldout(config, seeds):
    # Each run is measured on its own seed's held-out points, as in
    # ``reproduce``: a (K, N, 1) data set, one slice per replica.
    sets = [make_heldout_dataset(config.n_heldout, seed) for seed in seeds]
    sets = sets * len(config.schedules)
    return SinDataset(numpy.stack([h.x for h in sets]),
                      numpy.stack([h.y for h in sets]))


def _train_chunk(config, engine, seeds, device, dataset, progress,
                 done_before):
    replica_seeds = [seed for _ in config.schedules for seed in seeds]
    if native.is_native(engine):
        ensemble = native.NativeEnsemble.from_seeds(replica_seeds,
                                                    config.n_units)
        optimizer = None
    else:
        ensemble = Ensemble.from_seeds(replica_seeds, config.n_units)
        ensemble.to_device(device)
        optimizer = make_optimizer(ensemble)
    schedules = [parse_schedule(text, seed)
                 for text in config.schedules for seed in seeds]

    def callback(entry):
        progress.update(done_before + entry.epoch, 'median loss {:.3e}'.format(
            float(numpy.median(entry.loss))))

    result = train(ensemble, optimizer, dataset, schedules,
                   config.epochs, config.batchsize,
                   heldout=_heldout(config, seeds), callback=callback,
                   train_loss='last')
    shape = (len(config.schedules), len(seeds))
    return {
        'seeds': numpy.array(seeds),
        'loss': result.loss.T.reshape(shape + (config.epochs,)),
        'final_loss': result.train_loss[-1].reshape(shape),
        'heldout_mse': result.heldout_mse.reshape(shape),
    }


def run_study(config, out, log=print, progress_stream=None):
    """Runs (or continues) a study, saving each chunk when it is done.

    Args:
        config (StudyConfig): The settings.
        out (str): Output folder; chunks go to ``out/chunks``.  A folder
            with chunks of the same study is continued.
        log (callable): Takes one line of text.
        progress_stream: Where the progress bar goes (standard error).

    Returns:
        StudyResult

    """
    device = get_device(config.device)
    engine = native.resolve_engine(config.engine, device)
    _check_out(config, engine, out)
    dataset = make_sin_dataset(config.n_data).to_device(device)
    chunks = config.chunks()
    saved = [os.path.exists(_chunk_path(out, i)) for i in range(len(chunks))]
    if any(saved):
        log('continuing: {} of {} chunks already saved in {}'.format(
            sum(saved), len(chunks), out))
    todo = [i for i in range(len(chunks)) if not saved[i]]
    progress = Progress(len(todo) * config.epochs, progress_stream)
    try:
        for n, i in enumerate(todo):
            data = _train_chunk(config, engine, chunks[i], device, dataset,
                                progress, n * config.epochs)
            results_io.atomic_write(
                _chunk_path(out, i),
                lambda f: numpy.savez(f, **data), binary=True)
    finally:
        progress.close()
    parts = []
    for i, seeds in enumerate(chunks):
        with numpy.load(_chunk_path(out, i)) as data:
            if data['seeds'].tolist() != seeds:
                raise ValueError('{} does not hold seeds {}; delete it and '
                                 'rerun'.format(_chunk_path(out, i), seeds))
            parts.append({k: data[k] for k in data.files})
    return StudyResult(
        config,
        numpy.concatenate([p['loss'] for p in parts], axis=1),
        numpy.concatenate([p['final_loss'] for p in parts], axis=1),
        numpy.concatenate([p['heldout_mse'] for p in parts], axis=1),
        engine)


def summarize(result):
    """Returns the study's summary: per schedule and per pair of schedules.

    Per schedule: quartiles of the final training loss and of the held-out
    MSE, and how many runs ended on a plateau (:func:`stats.plateau`).  Per
    pair ``(a, b)`` of schedules, in the order given: the fraction of seeds
    where ``b`` ended lower, the median of ``a / b`` over seeds, and its
    bootstrap 95% interval (resamples drawn with :data:`BOOTSTRAP_SEED`).
    """
    config = result.config
    stuck = result.stuck()
    rng = numpy.random.default_rng(BOOTSTRAP_SEED)
    summary = {
        'seeds': config.seeds, 'first_seed': config.first_seed,
        'epochs': config.epochs, 'engine': result.engine,
        'plateau': {
            'criterion': 'loss within a factor {} over the last {:.0%} of '
                         'epochs, above {}'.format(
                             stats.PLATEAU_FLATNESS, stats.PLATEAU_FRACTION,
                             stats.PLATEAU_LOSS)},
        'schedules': {}, 'pairs': []}
    for i, text in enumerate(config.schedules):
        summary['schedules'][text] = {
            'final_loss': dict(zip(('q25', 'median', 'q75'),
                                   stats.quartiles(result.final_loss[i]))),
            'heldout_mse': dict(zip(('q25', 'median', 'q75'),
                                    stats.quartiles(result.heldout_mse[i]))),
            'stuck': int(stuck[i].sum()),
        }
    for i, j in itertools.combinations(range(len(config.schedules)), 2):
        pair = {'a': config.schedules[i], 'b': config.schedules[j]}
        pair.update(stats.paired(result.final_loss[i], result.final_loss[j],
                                 rng))
        summary['pairs'].append(pair)
    return summary


def summary_table(summary):
    """Returns the summary as lines of text."""
    lines = ['{} seeds, {} epochs, {} engine; final training loss (full '
             'data):'.format(summary['seeds'], summary['epochs'],
                             summary['engine'])]
    lines.append('{:<28} {:>10} {:>10} {:>10} {:>8}'.format(
        'schedule', 'q25', 'median', 'q75', 'stuck'))
    for text, row in summary['schedules'].items():
        q = row['final_loss']
        lines.append('{:<28} {:>10.3e} {:>10.3e} {:>10.3e} {:>8}'.format(
            text, q['q25'], q['median'], q['q75'], row['stuck']))
    if summary['pairs']:
        lines.append('{:<28} {:<28} {:>7} {:>9} {:>19}'.format(
            'a', 'b', 'b wins', 'a/b med', '95% CI'))
    for pair in summary['pairs']:
        lines.append('{:<28} {:<28} {:>6.0%} {:>9.3g} [{:>7.3g}, {:>7.3g}]'
                     .format(pair['a'], pair['b'], pair['b_wins'],
                             pair['median_ratio'], *pair['ratio_ci']))
    lines.append('stuck: ' + summary['plateau']['criterion'])
    return lines


#: Files that :func:`write_study_outputs` writes.
STUDY_FILES = ('curves.npz', 'final.csv', 'summary.json', 'curves.png',
               'paired.png')


def write_study_outputs(result, summary, out, paired_figure=True):
    """Writes curves, per-run finals, the summary and the figures."""
    config = result.config
    stuck = result.stuck()
    seeds = config.seed_list()

    def curves(f):
        numpy.savez_compressed(
            f, loss=result.loss.astype(numpy.float32),
            schedules=numpy.array(config.schedules), seeds=numpy.array(seeds))

    results_io.atomic_write(os.path.join(out, 'curves.npz'), curves,
                            binary=True)
    rows = [[seed, text, float(result.loss[i, k, -1]),
             float(result.final_loss[i, k]), float(result.heldout_mse[i, k]),
             int(stuck[i, k])]
            for i, text in enumerate(config.schedules)
            for k, seed in enumerate(seeds)]
    results_io.write_csv(os.path.join(out, 'final.csv'),
                         ['seed', 'schedule', 'last_epoch_loss',
                          'final_train_loss', 'heldout_mse', 'stuck'], rows)
    results_io.write_json(os.path.join(out, 'summary.json'), {
        'summary': summary, 'config': config.to_dict(),
        'environment': results_io.environment(get_device(config.device))})
    results_io.save_figure(
        plots.band_figure({text: result.loss[i]
                           for i, text in enumerate(config.schedules)}),
        os.path.join(out, 'curves.png'))
    if paired_figure and len(config.schedules) > 1:
        labels = config.schedules
        results_io.save_figure(plots.paired_figure(
            (labels[0], result.final_loss[0]),
            [(labels[i], result.final_loss[i])
             for i in range(1, len(labels))],
            {label: stuck[i] for i, label in enumerate(labels)}),
            os.path.join(out, 'paired.png'))


def sweep_schedules(epochs, fractions, reverse=True):
    """Returns the schedules of a switch-point sweep at ``epochs`` epochs.

    Args:
        epochs (int): Epochs of every run.
        fractions (list of float): Fractions of the epochs in fixed order,
            each in [0, 1]; rounded to whole epochs.
        reverse (bool): Also run each fraction with random order first.

    Returns:
        dict: ``'fixed first'`` (and ``'random first'``) to a list of
        ``(fraction, schedule text)``; fraction 0 is ``random`` and 1 is
        ``fixed`` in both.

    """
    if not fractions:
        raise ValueError('a sweep needs at least one fraction')
    out = {'fixed first': []}
    if reverse:
        out['random first'] = []
    for f in fractions:
        if not 0 <= f <= 1:
            raise ValueError('fractions must lie in [0, 1], got {}'.format(f))
        k = int(round(f * epochs))
        for direction in out:
            if k == 0:
                text = 'random'
            elif k == epochs:
                text = 'fixed'
            elif direction == 'fixed first':
                text = 'fixed:{}+random:{}'.format(k, epochs - k)
            else:
                text = 'random:{}+fixed:{}'.format(epochs - k, k)
            out[direction].append((k / epochs, text))
    return out


def write_sweep_outputs(result, sweep, out):
    """Writes the sweep's table and figure: final loss against fraction."""
    index = {text: i for i, text in enumerate(result.config.schedules)}
    rows, quartiles, fractions, stuck_rate = [], {}, {}, {}
    stuck = result.stuck()
    for direction, entries in sweep.items():
        qs = [stats.quartiles(result.final_loss[index[text]])
              for _, text in entries]
        fractions[direction] = [f for f, _ in entries]
        quartiles[direction] = list(zip(*qs))
        stuck_rate[direction] = [stuck[index[text]].mean()
                                 for _, text in entries]
        for (f, text), q in zip(entries, qs):
            rows.append([direction, f, text, q[0], q[1], q[2],
                         int(stuck[index[text]].sum())])
    results_io.write_csv(os.path.join(out, 'sweep.csv'),
                         ['order', 'fixed_fraction', 'schedule', 'q25',
                          'median', 'q75', 'stuck'], rows)
    results_io.save_figure(plots.sweep_figure(fractions, quartiles,
                                              stuck_rate),
                           os.path.join(out, 'sweep.png'))
    return rows
