"""The switch-point sweep: a study of fixed order for a fraction f of the
epochs, first (the post's hybrid at f = 0.5) or last, from the same
initial weights per seed."""

from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.io import plots
from minibatch_hybrid.io import results
from minibatch_hybrid.experiments import stats
from minibatch_hybrid.experiments.study.config import StudyConfig
from minibatch_hybrid.experiments.study.config import check_fractions
from minibatch_hybrid.experiments.study.config import switch_epoch
from minibatch_hybrid.experiments.study.run import run_study
from minibatch_hybrid.experiments.study.summary import study_writers
from minibatch_hybrid.experiments.study.summary import summarize
from minibatch_hybrid.schedules.text import phases_text
from minibatch_hybrid.settings import default

_EPOCHS = default('epochs')

#: Seeds per chunk of the ``sweep`` command by default: a chunk trains a
#: replica of each of a sweep's many schedules per seed.
CHUNK = 6

#: Files that :func:`run_sweep` writes, besides the study's chunks.
SWEEP_FILES = ('sweep.csv', 'sweep.png', 'summary.json', 'curves.png',
               'curves.npz', 'final.csv')


def sweep_schedules(epochs, fractions, reverse=True):
    """Returns the schedules of a switch-point sweep at ``epochs`` epochs.

    Args:
        epochs (int): Epochs of every run.
        fractions (list of float): Fractions of the epochs in fixed order,
            each in [0, 1] (rounded to whole epochs).
        reverse (bool): Also run each with random order first.

    Returns:
        dict: ``'fixed first'`` (and ``'random first'``) to a list of
        ``(fraction, schedule text)``.

    """
    if not fractions:
        raise SettingsError('a sweep needs at least one fraction')
    check_fractions(fractions, epochs)
    ks = [switch_epoch(f, epochs) for f in fractions]
    out = {'fixed first': [(k / epochs, phases_text(
        [('fixed', k), ('random', epochs - k)])) for k in ks]}
    if reverse:
        out['random first'] = [(k / epochs, phases_text(
            [('random', epochs - k), ('fixed', k)])) for k in ks]
    return out


def write_sweep_outputs(result, sweep, out, show=None, study=False):
    """Writes the sweep's table and figure, all together; returns the rows.

    ``show`` takes each line of the table (:func:`sweep_table`) first;
    ``study`` adds the study's files (:data:`SWEEP_FILES`).
    """
    revived = result.config.revived_arms()
    groups = []  # each direction, then its revived arms (--revive) if any
    for direction, entries in sweep.items():
        groups.append((direction, entries))
        arms = [(f, revived[text]) for f, text in entries if text in revived]
        if arms:
            groups.append((direction + ', revived', arms))
    index = {text: i for i, text in enumerate(result.labels)}
    rows, quartiles, fractions, stuck_rate = [], {}, {}, {}
    stuck = result.stuck()
    for name, entries in groups:
        qs = [stats.quartiles(result.final_train_loss[index[text]])
              for _, text in entries]
        fractions[name] = [f for f, _ in entries]
        quartiles[name] = list(zip(*qs))
        stuck_rate[name] = [stuck[index[text]].mean() for _, text in entries]
        for (f, text), q in zip(entries, qs):
            rows.append([name, f, text, q[0], q[1], q[2],
                         int(stuck[index[text]].sum())])
    writers = {
        'sweep.csv': lambda path: results.write_csv(
            path, ['order', 'fixed_fraction', 'schedule', 'q25', 'median',
                   'q75', 'stuck'], rows),
        'sweep.png': lambda path: results.save_figure(
            plots.sweep_figure(fractions, quartiles, stuck_rate), path),
    }
    if show is not None:
        for line in sweep_table(result, rows):
            show(line)
    if study:
        writers.update(study_writers(result, summarize(result),
                                     paired_figure=False))
    results.save_results(out, writers, prefix='minibatch-hybrid-sweep-')
    return rows


def sweep_config(fractions, reverse=True, epochs=_EPOCHS, **settings):
    """Returns ``(sweep, config)``: the sweep's schedules and its study
    (``settings`` are :class:`StudyConfig`'s)."""
    sweep = sweep_schedules(epochs, fractions, reverse)
    texts = list(dict.fromkeys(t for entries in sweep.values()
                               for _, t in entries))
    return sweep, StudyConfig(texts, epochs=epochs, **settings)


def run_sweep(sweep, config, out, log=print, progress_stream=None,
              cluster=None, show=None):
    """Runs (or continues) a sweep and writes its files.

    Args:
        sweep (dict): From :func:`sweep_config`.
        config (StudyConfig): Its study.
        out (str): Output folder.
        log, progress_stream, cluster: As :func:`run_study`.
        show (callable): Takes each line of the table before the files
            are written.

    Returns:
        tuple: ``(result, rows)``: the StudyResult and the table's rows.

    """
    rows = []
    result = run_study(
        config, out, log=log, progress_stream=progress_stream,
        cluster=cluster, outputs=SWEEP_FILES,
        finish=lambda result: rows.extend(
            write_sweep_outputs(result, sweep, out, show, study=True)))
    return result, rows


def sweep_table(result, rows):
    """Returns the sweep's table as lines of text."""
    config = result.config
    lines = ['{} seeds, {} epochs, {} engine; final training loss:'.format(
        config.seeds, config.epochs, result.engine)]
    lines.append('{:<22} {:>5} {:<40} {:>10} {:>10} {:>10} {:>6}'.format(
        'order', 'fixed', 'schedule', 'q25', 'median', 'q75', 'stuck'))
    for row in rows:
        lines.append('{:<22} {:>5.2f} {:<40} {:>10.3e} {:>10.3e} {:>10.3e} '
                     '{:>6}'.format(*row))
    return lines
