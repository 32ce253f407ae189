"""The ``minibatch-hybrid`` command."""
import argparse
import os
import sys

from minibatch_hybrid import reproduce

#: Epochs of ``reproduce --quick``: enough to see both phases.
QUICK_EPOCHS = 40


def _add_common(parser):
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the initial weights, the random orders '
                        'and the held-out points (default: 0)')
    parser.add_argument('--batchsize', '-b', type=int, default=10,
                        help='mini-batch size (default: 10, as the post)')
    parser.add_argument('--units', '-u', type=int, default=100,
                        help='hidden units per layer (default: 100)')
    parser.add_argument('--device', '-d', default='@numpy',
                        help='Chainer device specifier: @numpy or -1 for the '
                        'CPU, @cupy:0 or 0 for the first GPU '
                        '(default: @numpy)')


def build_parser():
    parser = argparse.ArgumentParser(
        prog='minibatch-hybrid',
        description='Mini-batch order schedules for Chainer, and the '
        '"fixed then random" sin(x) experiment.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True

    p = commands.add_parser(
        'reproduce', help="reproduce the post's figure (normal vs hybrid)",
        description="Train the post's MyChain on sin(x) twice from the same "
        "initial weights: in random order for all epochs (normal), and in "
        "fixed order for the first half, random for the second (hybrid). "
        "Writes {} into the output folder.".format(
            ', '.join(reproduce.OUTPUT_FILES)))
    p.add_argument('--epoch', '-e', type=int, default=None,
                   help='epochs per run (default: 500; {} with --quick)'
                   .format(QUICK_EPOCHS))
    _add_common(p)
    p.add_argument('--out', '-o', default=os.path.join('results',
                                                       'reproduce'),
                   help='output folder (default: results/reproduce)')
    p.add_argument('--literal', action='store_true',
                   help="run the hybrid as the post's code did: 249 fixed + "
                   "249 random epochs of 500 (its Python 2 range); the "
                   "default follows its text, 250 + 250")
    p.add_argument('--quick', action='store_true',
                   help='a quick look: {} epochs unless --epoch is given'
                   .format(QUICK_EPOCHS))
    p.set_defaults(func=_reproduce)
    return parser


def _reproduce(args):
    epochs = args.epoch
    if epochs is None:
        epochs = QUICK_EPOCHS if args.quick else 500
    config = reproduce.ReproductionConfig(
        seed=args.seed, epochs=epochs, batchsize=args.batchsize,
        n_units=args.units, literal=args.literal, device=args.device)
    print('start...')
    outcome = reproduce.run_reproduction(config)
    print('end')
    paths = reproduce.write_outputs(outcome, config, args.out)
    for line in reproduce.summary(outcome):
        print(line)
    print('wrote ' + ', '.join(paths))


def main(argv=None):
    """Runs the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:
        parser.exit(2, '{}: error: {}\n'.format(parser.prog, e))
    except KeyboardInterrupt:
        sys.stderr.write('interrupted: no result files were written or '
                         'changed\n')
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
