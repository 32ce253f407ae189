"""Remedies for the stuck hybrid, compared over the same seeds.

Each remedy acts once, at the hybrid's switch, on every run of its arm;
every arm trains the same seeds from the same weights in the same orders,
and ``none`` is the plain hybrid, bit for bit the study's.
"""
import numpy

from minibatch_hybrid.core.adam import HYPERPARAMS
from minibatch_hybrid.core.data import make_sin_dataset
from minibatch_hybrid.core.loop import train
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.revival import Revival
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.engines import make_ensemble
from minibatch_hybrid.engines import resolve_engine
from minibatch_hybrid.core.device import get_device
from minibatch_hybrid.experiments import stats
from minibatch_hybrid.experiments.study.config import first_switch
from minibatch_hybrid.io import results
from minibatch_hybrid.schedules import parse_schedule
from minibatch_hybrid.schedules.text import hybrid_halves

#: The remedies compared, in the order of the table.
REMEDIES = ('none', 'revive layer 1', 'revive layer 2', 'revive both',
            'Adam reset', 'learning-rate restart')
#: The learning-rate restart: alpha times this, for this many epochs.
RESTART_FACTOR, RESTART_EPOCHS = 10, 10
#: Files that :func:`write_outputs` writes.
OUTPUT_FILES = ('remedies.csv', 'remedies.json')


class AdamReset(object):
    """An intervention: Adam's moments and step count (shared by the
    replicas) back to zero after ``epoch`` epochs."""

    def __init__(self, epoch):
        self.epoch = epoch

    def __call__(self, engine, x):
        for which in ('m', 'v'):
            engine.load(which, {name: numpy.zeros_like(numpy.asarray(a))
                                for name, a in engine.arrays(which).items()})
        engine.t = 0


class StepSize(object):
    """An intervention: Adam's ``alpha`` set to ``alpha`` after ``epoch``
    epochs."""

    def __init__(self, epoch, alpha):
        self.epoch = epoch
        self.alpha = alpha

    def __call__(self, engine, x):
        hyperparams = getattr(engine, 'hyperparams', None)
        if hyperparams is not None:
            hyperparams['alpha'] = self.alpha
        else:
            engine.optimizer.hyperparam.alpha = self.alpha


class Probe(object):
    """An intervention that records the engine's
    :class:`~minibatch_hybrid.core.diagnosis.Activity` after ``epoch``
    epochs (as :attr:`activity`)."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.activity = None

    def __call__(self, engine, x):
        self.activity = engine.activity(x)


def interventions(remedy, switch, seeds, epochs, alpha=HYPERPARAMS.alpha):
    """Returns the interventions of ``remedy`` at epoch ``switch`` for an
    ensemble of one replica per seed, in runs of ``epochs``."""
    replicas = range(len(seeds))
    layers = {'revive layer 1': (1,), 'revive layer 2': (2,),
              'revive both': (1, 2)}
    if remedy in layers:
        return [Revival(switch, replicas, seeds, layers[remedy])]
    if remedy == 'Adam reset':
        return [AdamReset(switch)]
    if remedy == 'learning-rate restart':
        end = min(switch + RESTART_EPOCHS, epochs - 1)
        if end <= switch:
            raise SettingsError(
                'a learning-rate restart needs an epoch after the switch '
                '(epoch {}) before the run ends: give --epoch {} or '
                'more'.format(switch, 2 * (switch + 2)))
        return [StepSize(switch, alpha * RESTART_FACTOR),
                StepSize(end, alpha)]
    return []


def run_remedies(seeds, epochs=500, remedies=REMEDIES, n_units=100,
                 engine='auto', log=None):
    """Trains the post's hybrid from each seed with each remedy.

    Returns:
        dict: Each remedy to ``{'final', 'stuck', 'coverage'}``, one value
        per seed; ``'at_switch'``: the runs' Activity at the switch;
        ``'schedule'``, ``'engine'``, ``'switch'`` and ``'last_x'`` (the
        last training x).

    """
    schedule = hybrid_halves(epochs)
    switch = first_switch(schedule)
    device = get_device('@numpy')
    engine = resolve_engine(engine, device)
    dataset = make_sin_dataset()
    out = {'schedule': schedule, 'engine': engine, 'switch': switch,
           'last_x': float(numpy.max(dataset.x))}
    for remedy in remedies:
        ensemble = make_ensemble(
            engine, [make_model(n_units, s) for s in seeds], device)
        probe = Probe(switch)
        result = train(ensemble, None, dataset,
                       [parse_schedule(schedule, s) for s in seeds], epochs,
                       train_loss='last',
                       interventions=[probe] + interventions(
                           remedy, switch, seeds, epochs))
        out['at_switch'] = probe.activity
        out[remedy] = {
            'final': result.train_loss[-1].astype(numpy.float64),
            'stuck': numpy.array([stats.plateau(c) for c in result.loss.T]),
            'coverage': ensemble.activity(dataset.x).coverage()[:, 1]}
        if log is not None:
            log('{}: {} of {} stuck'.format(
                remedy, int(out[remedy]['stuck'].sum()), len(seeds)))
    return out


def compare(runs, remedies=REMEDIES):
    """Returns one row per remedy against ``none``
    (:func:`~minibatch_hybrid.experiments.stats.freed`)."""
    base = runs['none']
    rows = []
    for remedy in remedies:
        r = runs[remedy]
        row = {'remedy': remedy, 'stuck': int(r['stuck'].sum())}
        compared = stats.freed(base['final'], base['stuck'], r['final'],
                               r['stuck'])
        del compared['stuck']
        row.update(compared)
        row['median_final'] = float(numpy.median(r['final']))
        rows.append(row)
    return rows


def at_switch(runs):
    """Returns, for the runs that end stuck without a remedy and for the
    rest, their dead units per hidden layer at the switch (median, least,
    most) and how many had no second-layer unit active at the last x."""
    activity, stuck = runs['at_switch'], runs['none']['stuck']
    dead, coverage = activity.dead(), activity.coverage()[:, 1]
    top = runs['last_x']
    out = {}
    for name, rows in (('stuck', stuck), ('healthy', ~stuck)):
        part = {'runs': int(rows.sum())}
        for layer in (0, 1):
            values = dead[rows, layer]
            part['dead_layer{}'.format(layer + 1)] = [
                float(numpy.median(values)), int(values.min()),
                int(values.max())] if len(values) else None
        part['uncovered'] = int((~(coverage[rows] >= top)).sum())
        out[name] = part
    return out


def table(rows, seeds):
    """Returns the comparison as lines of text."""
    lines = ['{} seeds; against the plain hybrid ("none"):'.format(seeds),
             '{:<22} {:>6} {:>6} {:>11} {:>15} {:>12} {:>12}'.format(
                 'remedy', 'stuck', 'freed', 'made stuck',
                 'healthy higher', 'ratio (hlt)', 'median')]
    for r in rows:
        lines.append('{:<22} {:>6} {:>6} {:>11} {:>9}/{:<5} {:>12.3g} '
                     '{:>12.3e}'.format(
                         r['remedy'], r['stuck'], r['freed'],
                         r['made_stuck'], r['healthy_higher'], r['healthy'],
                         r['median_ratio_healthy'], r['median_final']))
    lines.append('ratio (hlt): median over the runs healthy without a '
                 'remedy of final loss without / with it (> 1: better)')
    return lines


def write_outputs(runs, rows, seeds, out):
    """Writes the per-run table and the comparison together
    (:func:`~minibatch_hybrid.io.results.save_results`)."""
    switch = runs['at_switch']
    dead, coverage = switch.dead(), switch.coverage()[:, 1]
    per_run = [[seed, remedy, float(runs[remedy]['final'][k]),
                int(runs[remedy]['stuck'][k]),
                float(runs[remedy]['coverage'][k]), int(dead[k, 0]),
                int(dead[k, 1]), float(coverage[k])]
               for remedy in [r['remedy'] for r in rows]
               for k, seed in enumerate(seeds)]
    saved = {'schedule': runs['schedule'], 'engine': runs['engine'],
             'switch': runs['switch'], 'seeds': list(seeds),
             'comparison': rows, 'at_switch': at_switch(runs)}
    csv_name, json_name = OUTPUT_FILES
    return results.save_results(out, {
        csv_name: lambda path: results.write_csv(
            path, ['seed', 'remedy', 'final_train_loss', 'stuck',
                   'coverage', 'dead1_at_switch', 'dead2_at_switch',
                   'coverage_at_switch'], per_run),
        json_name: lambda path: results.write_json(path, saved)},
        prefix='minibatch-hybrid-remedies-')
