"""Does flushing subnormals change the study?  Runs it both ways and compares.

The native engine flushes subnormal numbers to zero (FTZ/DAZ) so that
Intel CPUs take no microcode assists.  This trains every run of a study
(by default the default study: 64 seeds, random and the post's hybrid, 500
epochs) twice with the native engine, flushing and under IEEE semantics,
and compares per-epoch losses, final training loss, held-out error, the
final weights bit for bit, and reports where Adam's moments differ (they
do, below about 1.2e-37) and how many first moments were subnormal in the
IEEE run.  Writes a JSON report; exits 1 if any result differs.

    python scripts/check_subnormals.py [--seeds 64] [--epoch 500]
"""
#: A command of minibatch_hybrid (see minibatch_hybrid._interrupts): a Ctrl-C
#: while it starts ends it in one line.  Set before the package's imports.
__minibatch_hybrid_command__ = True

import argparse
import json
import os
import sys
import time

import numpy

from minibatch_hybrid import kernels
from minibatch_hybrid.engines.native import NativeEnsemble
from minibatch_hybrid.io import results
from minibatch_hybrid.core.data import SinDataset
from minibatch_hybrid.core.data import make_heldout_dataset
from minibatch_hybrid.core.data import make_sin_dataset
from minibatch_hybrid.schedules import parse_schedule
from minibatch_hybrid.core.loop import train

TINY = numpy.finfo(numpy.float32).tiny


def subnormal(a):
    return (a != 0) & (numpy.abs(a) < TINY)


def flat(ensemble, which):
    """Returns the runs' weights or Adam's moments as one float32 array."""
    return numpy.concatenate(
        [a.ravel() for a in ensemble.arrays(which).values()])


def run_chunk(seeds, texts, epochs, ieee):
    """Trains the runs of one chunk; returns what they recorded."""
    runs = [(seed, text) for text in texts for seed in seeds]
    ensemble = NativeEnsemble.from_seeds([s for s, _ in runs])
    schedules = [parse_schedule(text, seed) for seed, text in runs]
    sets = [make_heldout_dataset(1000, seed) for seed, _ in runs]
    heldout = SinDataset(numpy.stack([h.x for h in sets]),
                         numpy.stack([h.y for h in sets]))
    fractions = []

    def callback(entry):
        if entry.epoch % 100 == 0:
            fractions.append(float(subnormal(flat(ensemble, 'm')).mean()))

    start = time.perf_counter()
    if ieee:
        with kernels.ieee_subnormals():
            result = train(ensemble, None, make_sin_dataset(), schedules,
                           epochs, heldout=heldout, callback=callback,
                           train_loss='last')
    else:
        result = train(ensemble, None, make_sin_dataset(), schedules, epochs,
                       heldout=heldout, callback=callback, train_loss='last')
    return {'loss': result.loss, 'final': result.train_loss[-1],
            'heldout': result.heldout_mse,
            'params': flat(ensemble, 'params'), 'm': flat(ensemble, 'm'),
            'v': flat(ensemble, 'v'), 'fractions': fractions,
            'seconds': time.perf_counter() - start}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, default=64)
    parser.add_argument('--epoch', '-e', type=int, default=500)
    parser.add_argument('--chunk', type=int, default=32)
    parser.add_argument('--out', '-o', default=os.path.join(
        'results', 'subnormals'))
    args = parser.parse_args(argv)
    kernels.check_available()
    half = args.epoch // 2
    texts = ['random', 'fixed:{}+random:{}'.format(half, args.epoch - half)]
    seeds = list(range(args.seeds))
    report = {'seeds': args.seeds, 'epochs': args.epoch, 'schedules': texts,
              'kernels': kernels.current(), 'chunks': []}
    for c in range(0, args.seeds, args.chunk):
        chunk = seeds[c:c + args.chunk]
        flush = run_chunk(chunk, texts, args.epoch, ieee=False)
        ieee = run_chunk(chunk, texts, args.epoch, ieee=True)
        differ = {k: flush[k] != ieee[k] for k in ('m', 'v')}
        row = {
            'seeds': [chunk[0], chunk[-1]],
            'runs': len(chunk) * len(texts),
            'epoch_losses_equal': bool(numpy.array_equal(flush['loss'],
                                                         ieee['loss'])),
            'final_loss_equal': bool(numpy.array_equal(flush['final'],
                                                       ieee['final'])),
            'heldout_equal': bool(numpy.array_equal(flush['heldout'],
                                                    ieee['heldout'])),
            'weights_equal': bool(numpy.array_equal(flush['params'],
                                                    ieee['params'])),
        }
        for k in ('m', 'v'):
            row[k + '_values_differing'] = int(differ[k].sum())
            row[k + '_largest_differing'] = float(max(
                numpy.abs(flush[k][differ[k]]).max(initial=0),
                numpy.abs(ieee[k][differ[k]]).max(initial=0)))
        row.update({
            'ieee_m_subnormal_fraction_per_100_epochs': ieee['fractions'],
            'flush_m_subnormal': int(subnormal(flush['m']).sum()),
            'seconds_flush': flush['seconds'],
            'seconds_ieee': ieee['seconds'],
        })
        report['chunks'].append(row)
        print(json.dumps(row), flush=True)
    same = all(r[k] for r in report['chunks'] for k in (
        'epoch_losses_equal', 'final_loss_equal', 'heldout_equal',
        'weights_equal'))
    report['all_results_equal'] = same
    report['environment'] = results.environment()
    results.write_json(os.path.join(args.out, 'report.json'), report)
    print('every loss, held-out error and weight the same bits: {}; wrote {}'
          .format(same, os.path.join(args.out, 'report.json')))
    return 0 if same else 1


if __name__ == '__main__':
    sys.exit(main())
