#!/usr/bin/env python
"""The post's experiment as a Chainer Trainer, with a schedule and resume.

    python scripts/train_chainer.py --schedule fixed:250+random:250 -e 500
    python scripts/train_chainer.py -e 500 --resume result/snapshot_epoch_100

Writes result/log, result/loss.png and snapshots every --snapshot-every
epochs.  Ctrl-C and rerun with --resume to continue exactly where a snapshot
left off.
"""
import argparse
import sys

from minibatch_hybrid import _startup

with _startup.interruptible():  # Ctrl-C here: one line, exit status 130
    from minibatch_hybrid import results as results_io
    from minibatch_hybrid import trainer as trainer_module


def main(argv=None):
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before training starts, or during it
        sys.stderr.write('interrupted: the snapshots written so far, if '
                         'any, are in the output folder; rerun with --resume '
                         '<snapshot> to continue\n')
        return 130


def _main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--schedule', '-s', default=None,
                        help='schedule in text form (default: '
                        'fixed:E/2+random:E/2 for E epochs)')
    parser.add_argument('--epoch', '-e', type=int, default=500,
                        help='number of epochs (default: 500)')
    parser.add_argument('--batchsize', '-b', type=int, default=10,
                        help='mini-batch size (default: 10)')
    parser.add_argument('--device', '-d', default='@numpy',
                        help='device specifier: @numpy or -1 for the CPU, '
                        '@cupy:0 or 0 for the first GPU (default: @numpy)')
    parser.add_argument('--out', '-o', default='result',
                        help='output folder (default: result)')
    parser.add_argument('--resume', '-r', default=None,
                        help='snapshot to resume from')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of weights, orders, held-out points')
    parser.add_argument('--unit', '-u', type=int, default=100,
                        help='hidden units per layer (default: 100)')
    parser.add_argument('--snapshot-every', type=int, default=50,
                        help='epochs between snapshots (default: 50)')
    parser.add_argument('--iterator', default='serial',
                        choices=sorted(trainer_module.ITERATORS),
                        help='iterator (default: serial)')
    parser.add_argument('--no-report', action='store_true',
                        help='no printed report, progress bar or plot')
    args = parser.parse_args(argv)
    schedule = args.schedule
    if schedule is None:
        half = args.epoch // 2
        schedule = 'fixed:{}+random:{}'.format(half, args.epoch - half)
    try:
        earlier = [name for name in results_io.check_output_dir(args.out)
                   if name == 'log' or name.startswith('snapshot_epoch_')]
        trainer = trainer_module.build_trainer(
            schedule, args.epoch, args.batchsize, seed=args.seed,
            n_units=args.unit, device=args.device, out=args.out,
            snapshot_every=args.snapshot_every, iterator=args.iterator,
            report=not args.no_report)
        if args.resume:
            trainer_module.resume(trainer, args.resume)
    except ValueError as e:
        parser.exit(2, '{}: error: {}\n'.format(parser.prog, e))
    if earlier:
        print('{} holds an earlier run\'s log and snapshots ({} files); '
              'this run writes over them'.format(args.out, len(earlier)))
    trainer.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
