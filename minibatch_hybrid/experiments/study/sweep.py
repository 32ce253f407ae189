"""The switch-point sweep: a study over a generated list of schedules.

At a fixed total of epochs, a fraction f of them in fixed order, first (the
post's hybrid at f = 0.5) or last (the reverse hybrid); every fraction from
the same initial weights per seed.  :func:`run_sweep` is the whole thing:
the schedules, the study, its files and the table.
"""

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

#: Epochs of every run by default: the post's.
_EPOCHS = default('epochs')

#: Seeds per chunk of the ``sweep`` command by default (a study's is
#: :class:`StudyConfig`'s): a sweep has many more schedules (20 by
#: default), and a chunk trains a replica of each for each of its seeds.
CHUNK = 6

#: Files that :func:`run_sweep` writes, besides the study's chunks.
SWEEP_FILES = ('sweep.csv', 'sweep.png', 'summary.json', 'curves.png',
               'curves.npz', 'final.csv')


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
        raise SettingsError('a sweep needs at least one fraction')
    # Each fraction in [0, 1], the runs distinct, epochs >= 1.
    check_fractions(fractions, epochs)
    out = {'fixed first': []}
    if reverse:
        out['random first'] = []
    for f in fractions:
        k = switch_epoch(f, epochs)
        for direction in out:
            phases = [('fixed', k), ('random', epochs - k)]
            if direction == 'random first':
                phases.reverse()
            out[direction].append((k / epochs, phases_text(phases)))
    return out


def sweep_writers(result, sweep):
    """Returns ``(writers, rows)``: the sweep's table and figure (final
    loss against fraction) as ``{file name: writer(path)}``, and the
    table's rows."""
    index = {text: i for i, text in enumerate(result.labels)}
    rows, quartiles, fractions, stuck_rate = [], {}, {}, {}
    stuck = result.stuck()
    for direction, entries in _with_revived(sweep, result.config).items():
        qs = [stats.quartiles(result.final_train_loss[index[text]])
              for _, text in entries]
        fractions[direction] = [f for f, _ in entries]
        quartiles[direction] = list(zip(*qs))
        stuck_rate[direction] = [stuck[index[text]].mean()
                                 for _, text in entries]
        for (f, text), q in zip(entries, qs):
            rows.append([direction, f, text, q[0], q[1], q[2],
                         int(stuck[index[text]].sum())])
    writers = {
        'sweep.csv': lambda path: results.write_csv(
            path, ['order', 'fixed_fraction', 'schedule', 'q25', 'median',
                   'q75', 'stuck'], rows),
        'sweep.png': lambda path: results.save_figure(
            plots.sweep_figure(fractions, quartiles, stuck_rate), path),
    }
    return writers, rows


def _with_revived(sweep, config):
    """Returns the sweep's directions, each followed by its revived arms
    (``'fixed first, revived'``: the arms of ``--revive``) if any."""
    revived = config.revived_arms()
    out = {}
    for direction, entries in sweep.items():
        out[direction] = entries
        arms = [(f, revived[text]) for f, text in entries if text in revived]
        if arms:
            out[direction + ', revived'] = arms
    return out


def write_sweep_outputs(result, sweep, out):
    """Writes the sweep's table and figure (together); returns the rows."""
    writers, rows = sweep_writers(result, sweep)
    results.save_results(out, writers, prefix='minibatch-hybrid-sweep-')
    return rows


def sweep_config(fractions, reverse=True, epochs=_EPOCHS, **settings):
    """Returns ``(sweep, config)``: the sweep's schedules and its study.

    ``settings`` are :class:`StudyConfig`'s (seeds, chunk, engine, ...).
    """
    sweep = sweep_schedules(epochs, fractions, reverse)
    texts = list(dict.fromkeys(t for entries in sweep.values()
                               for _, t in entries))
    return sweep, StudyConfig(texts, epochs=epochs, **settings)


def run_sweep(sweep, config, out, log=print, progress_stream=None,
              cluster=None, show=None):
    """Runs (or continues) a sweep and writes its files.

    The files are written while the study folder is still held (its lock
    is released after they exist).

    Args:
        sweep (dict): From :func:`sweep_config` (or :func:`sweep_schedules`).
        config (StudyConfig): Its study.
        out (str): Output folder.
        log, progress_stream, cluster: As :func:`run_study`.
        show (callable): If given, takes each line of the table
            (:func:`sweep_table`) before the files are written, so that
            the numbers are seen even where no file can be written.

    Returns:
        tuple: ``(result, rows)``: the StudyResult and the table's rows
        (see :func:`sweep_table`).

    """
    rows = []

    def finish(result):
        writers, table = sweep_writers(result, sweep)
        rows.extend(table)
        if show is not None:
            for line in sweep_table(result, rows):
                show(line)
        writers.update(study_writers(result, summarize(result),
                                     paired_figure=False))
        # All of the sweep's files together, or none (then elsewhere).
        results.save_results(out, writers,
                                prefix='minibatch-hybrid-sweep-')

    result = run_study(config, out, log=log, progress_stream=progress_stream,
                       cluster=cluster, finish=finish, outputs=SWEEP_FILES)
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
