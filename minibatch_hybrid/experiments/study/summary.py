"""A study's summary: per schedule, pair by pair, as tables and files."""
import itertools

import numpy

from minibatch_hybrid.io import plots
from minibatch_hybrid.io import results
from minibatch_hybrid.experiments import stats
from minibatch_hybrid.core.device import get_device
from minibatch_hybrid.experiments.study.folder import save_npz

#: Seed of the bootstrap resamples of :func:`summarize`.
BOOTSTRAP_SEED = 20161127


def summarize(result):
    """Returns the study's summary: per schedule and per pair of schedules.

    Per schedule: quartiles of the final training loss and held-out MSE,
    and the runs stuck on a plateau.  Per pair ``(a, b)``: how often ``b``
    ended lower, and the median of ``a / b`` with its bootstrap 95%
    interval (resamples drawn with :data:`BOOTSTRAP_SEED`).
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
    labels = result.labels
    for i, text in enumerate(labels):
        summary['schedules'][text] = {
            key: dict(zip(('q25', 'median', 'q75'), stats.quartiles(x[i])))
            for key, x in (('final_loss', result.final_train_loss),
                           ('heldout_mse', result.heldout_mse))}
        summary['schedules'][text].update({
            'stuck': int(stuck[i].sum()),
            'stuck_ci95': list(stats.rate_interval(int(stuck[i].sum()),
                                                   len(stuck[i]))),
            'coverage_median': float(numpy.nanmedian(result.coverage[i]))
            if numpy.isfinite(result.coverage[i]).any() else None})
    summary['pairs'] = [
        dict(a=labels[i], b=labels[j], **stats.paired(
            result.final_train_loss[i], result.final_train_loss[j], rng))
        for i, j in itertools.combinations(range(len(labels)), 2)]
    index = {label: i for i, label in enumerate(labels)}
    revivals = [(index[text], index[label])
                for text, label in config.revived_arms().items()]
    if revivals:
        summary['revivals'] = [
            dict(schedule=labels[i], revived=labels[j],
                 **stats.freed(result.final_train_loss[i], stuck[i],
                               result.final_train_loss[j], stuck[j]))
            for i, j in revivals]
    return summary


def summary_table(summary):
    """Returns the summary as lines of text."""
    lines = ['{} seeds, {} epochs, {} engine; final training loss (full '
             'data):'.format(summary['seeds'], summary['epochs'],
                             summary['engine'])]
    lines.append('{:<28} {:>10} {:>10} {:>10} {:>8} {:>13}'.format(
        'schedule', 'q25', 'median', 'q75', 'stuck', 'stuck 95% CI'))
    for text, row in summary['schedules'].items():
        q = row['final_loss']
        lines.append('{:<28} {:>10.3e} {:>10.3e} {:>10.3e} {:>8} {:>13}'
                     .format(text, q['q25'], q['median'], q['q75'],
                             row['stuck'], '{:.1%}-{:.1%}'.format(
                                 *row['stuck_ci95'])))
    if summary['pairs']:
        lines.append('{:<28} {:<28} {:>7} {:>9} {:>19}'.format(
            'a', 'b', 'b wins', 'a/b med', '95% CI'))
    for pair in summary['pairs']:
        lines.append('{:<28} {:<28} {:>6.0%} {:>9.3g} [{:>7.3g}, {:>7.3g}]'
                     .format(pair['a'], pair['b'], pair['b_wins'],
                             pair['median_ratio'], *pair['ratio_ci']))
    for row in summary.get('revivals', ()):
        lines.append(
            '{revived}: {freed} of {stuck} stuck runs freed, {made_stuck} '
            'of {healthy} healthy made stuck, healthy median ratio '
            '{median_ratio_healthy:.3g} (> 1: revived lower)'.format(**row))
    lines.append('stuck: ' + summary['plateau']['criterion'])
    return lines


#: Files that :func:`write_study_outputs` writes.
STUDY_FILES = ('curves.npz', 'final.csv', 'summary.json', 'curves.png',
               'paired.png')


def study_writers(result, summary, paired_figure=True):
    """Returns ``{file name: writer(path)}`` for a study's files."""
    config = result.config
    stuck = result.stuck()
    seeds = config.seed_list()
    rows = [[seed, text, float(result.loss[i, k, -1]),
             float(result.final_train_loss[i, k]),
             float(result.heldout_mse[i, k]),
             int(stuck[i, k]), float(result.coverage[i, k])]
            for i, text in enumerate(result.labels)
            for k, seed in enumerate(seeds)]
    saved = {'summary': summary, 'config': config.to_dict(),
             'environment': results.environment(get_device(config.device))}
    labels = result.labels
    writers = {
        # No time stamps: the same results give the same bytes.
        'curves.npz': lambda path: save_npz(
            path, {'loss': result.loss.astype(numpy.float32),
                   'schedules': numpy.array(labels),
                   'seeds': numpy.array(seeds)}, compress=True),
        'final.csv': lambda path: results.write_csv(
            path, ['seed', 'schedule', 'last_epoch_loss', 'final_train_loss',
                   'heldout_mse', 'stuck', 'coverage'], rows),
        'summary.json': lambda path: results.write_json(path, saved),
        'curves.png': lambda path: results.save_figure(
            plots.band_figure({text: result.loss[i]
                               for i, text in enumerate(labels)}), path),
    }
    if paired_figure and len(labels) > 1:
        writers['paired.png'] = lambda path: results.save_figure(
            plots.paired_figure(
                (labels[0], result.final_train_loss[0]),
                list(zip(labels[1:], result.final_train_loss[1:])),
                {label: stuck[i] for i, label in enumerate(labels)}), path)
    return writers


def write_study_outputs(result, summary, out, paired_figure=True):
    """Writes the study's files, all together (where ``out`` cannot take
    them, elsewhere: :func:`~minibatch_hybrid.io.results.save_results`)."""
    return results.save_results(
        out, study_writers(result, summary, paired_figure),
        prefix='minibatch-hybrid-study-')
