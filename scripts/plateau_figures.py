"""Draws the plateau's figures of docs/findings.md.

    python scripts/plateau_figures.py [--out docs]

Trains the post's hybrid with the native engine (the same bits on every
CPU) from seeds whose hybrid gets stuck (4, 8, 10, 14) and from seeds
whose does not (0, 1, 2, 3), recording the second hidden layer's coverage
after every epoch, and the stuck seeds once more with their dead units
revived at the switch.  Writes plateau-coverage.png, plateau-functions.png
and plateau.json (the derived c* and L*, and each run's final loss and
coverage).
"""
import argparse

import numpy

from minibatch_hybrid.core.data import make_sin_dataset
from minibatch_hybrid.core.loop import train
from minibatch_hybrid.core.revival import Revival
from minibatch_hybrid.engines.native import NativeEnsemble
from minibatch_hybrid.experiments import plateau
from minibatch_hybrid.io import plots
from minibatch_hybrid.io import results
from minibatch_hybrid.schedules import parse_schedule

STUCK, HEALTHY = [4, 8, 10, 14], [0, 1, 2, 3]
SCHEDULE, SWITCH = 'fixed:250+random:250', 250


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='docs')
    out = parser.parse_args().out
    results.check_output_dir(out)
    seeds = STUCK + HEALTHY
    plain, plain_result, coverage = plateau.coverage_history(seeds,
                                                             SCHEDULE)
    dataset = make_sin_dataset()
    # The stuck ones again, revived at the switch.
    revived = NativeEnsemble.from_seeds(STUCK)
    revived_result = train(
        revived, None, dataset,
        [parse_schedule(SCHEDULE, s) for s in STUCK], 500, train_loss='last',
        interventions=[Revival(SWITCH, range(len(STUCK)), STUCK)])
    x = numpy.linspace(0, 2 * numpy.pi, 600)
    f_plain = plateau.replica_functions(plain, x)
    f_revived = plateau.replica_functions(revived, x)
    c = plateau.plateau_boundary()
    k = len(STUCK)
    panels = [
        ('hybrid, stuck (seeds {})'.format(STUCK),
         {'seed {}'.format(s): f_plain[i] for i, s in enumerate(STUCK)}),
        ('the same seeds revived at epoch {}'.format(SWITCH),
         {'seed {}'.format(s): f_revived[i] for i, s in enumerate(STUCK)}),
        ('hybrid, healthy (seeds {})'.format(HEALTHY),
         {'seed {}'.format(s): f_plain[k + i]
          for i, s in enumerate(HEALTHY)})]
    record = {
        'command': 'python scripts/plateau_figures.py',
        'c_star': c, 'tail_mean_at_c_star': plateau.tail_mean(c),
        'L_star_continuous': plateau.plateau_loss(c),
        'L_star_1000_points': plateau.plateau_loss(c, dataset.x),
        'runs': {
            'hybrid': {str(s): {
                'final_train_loss': float(plain_result.train_loss[-1, i]),
                'coverage': float(coverage[-1, i, 1])}
                for i, s in enumerate(seeds)},
            'revived': {str(s): {
                'final_train_loss': float(revived_result.train_loss[-1, i]),
                'coverage': float(revived.activity(dataset.x)
                                  .coverage()[i, 1])}
                for i, s in enumerate(STUCK)}}}
    labels = ['seed {} (stuck)'.format(s) for s in STUCK] + \
        ['seed {} (healthy)'.format(s) for s in HEALTHY]
    written = results.save_results(out, {
        'plateau-coverage.png': lambda path: results.save_figure(
            plots.coverage_figure(coverage[:, :, 1], labels, c, SWITCH),
            path),
        'plateau-functions.png': lambda path: results.save_figure(
            plots.functions_figure(x, panels, c, plateau.tail_mean(c)),
            path),
        'plateau.json': lambda path: results.write_json(path, record)})
    print('wrote ' + ', '.join(written))


if __name__ == '__main__':
    main()
