"""The ``minibatch-hybrid`` command."""
import signal
import sys
import threading

from minibatch_hybrid import _startup

#: Ctrl-Cs that came after the imports but before :func:`main` could take
#: them (see :func:`_take_interrupts`).
_deferred = []


def _defer_interrupt(signum, frame):
    _deferred.append(signum)


def _runs_the_command():
    """Whether Ctrl-C is this module's to handle: in the main thread of a
    command's own process (not a worker process that it started, which
    imports the command's script again), at Python's default handler."""
    multiprocessing = sys.modules.get('multiprocessing')
    worker = '--multiprocessing-fork' in getattr(sys, 'orig_argv', ()) or (
        multiprocessing is not None and (
            multiprocessing.parent_process() is not None or
            multiprocessing.current_process().name != 'MainProcess'))
    return not worker and _startup.started_as_command() and \
        threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler


# A command keeps a Ctrl-C from here until main() is in its handler, so that
# none falls between the start-up block and main(): it is raised there.
if _runs_the_command():
    signal.signal(signal.SIGINT, _defer_interrupt)

with _startup.interruptible():  # Ctrl-C here: one line, exit status 130
    import argparse
    import contextlib
    import os

    from minibatch_hybrid import kernels
    from minibatch_hybrid.kernels import threads
    from minibatch_hybrid import engines
    from minibatch_hybrid import errors
    from minibatch_hybrid.experiments import bench
    from minibatch_hybrid.experiments import remedies
    from minibatch_hybrid.experiments import reproduce
    from minibatch_hybrid.experiments import study
    from minibatch_hybrid.experiments.study import StudyConfig
    from minibatch_hybrid.core.device import get_device
    from minibatch_hybrid.io import console
    from minibatch_hybrid.io import results
    from minibatch_hybrid import settings

#: The command's name, as its messages give it.
PROG = 'minibatch-hybrid'

#: The environment variable that names a Dask scheduler (--scheduler).
SCHEDULER_VARIABLE = 'MINIBATCH_HYBRID_SCHEDULER'

#: Epochs of ``--quick``: enough to see both phases.
QUICK_EPOCHS = 40

#: Seeds of ``study --quick`` and ``sweep --quick``, unless --seeds is
#: given.
QUICK_SEEDS = 4


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
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
    reproduction = reproduce.ReproductionConfig
    settings.add_options(p, ('epochs', 'seed', 'batchsize', 'n_units',
                             'device'), reproduction,
                         quick={'epochs': QUICK_EPOCHS})
    p.add_argument('--out', '-o', default=os.path.join('results',
                                                       'reproduce'),
                   help='output folder (default: results/reproduce)')
    p.add_argument('--literal', action='store_true',
                   help="run the hybrid as the post's code did: 249 fixed + "
                   "249 random epochs of 500 (its Python 2 range); the "
                   "default follows its text, 250 + 250")
    settings.add_options(p, ('engine',), reproduction)
    p.add_argument('--quick', action='store_true',
                   help='a quick look: {} epochs unless --epoch is given'
                   .format(QUICK_EPOCHS))
    p.set_defaults(func=_reproduce)

    p = commands.add_parser(
        'study', help='many seeds, schedules compared pair by pair',
        description='Train every schedule from every seed\'s initial '
        'weights (shared by the schedules of a seed) as one ensemble per '
        'chunk of seeds, and compare the final losses seed by seed. Chunks '
        'are saved as they finish: rerun the same command after an '
        'interruption to continue.')
    _add_study_options(p, out='study')
    p.add_argument('--schedules', '-s', default=None,
                   help='comma-separated schedules (default: "{}" for E '
                   'epochs)'.format(','.join(settings.DEFAULT_SCHEDULES)))
    p.set_defaults(func=_study)

    p = commands.add_parser(
        'sweep', help='final loss against the switch point',
        description='Runs hybrids with a growing fraction of fixed-order '
        'epochs (and the reverse, random first) at a fixed total of epochs, '
        'over many seeds; resumable like study.')
    _add_study_options(p, out='sweep', chunk=study.sweep.CHUNK)
    p.add_argument('--fractions', default='0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,'
                   '0.8,0.9,1', help='fractions of epochs in fixed order')
    p.add_argument('--no-reverse', action='store_true',
                   help='leave out the reverse hybrids (random first)')
    p.set_defaults(func=_sweep)

    p = commands.add_parser(
        'remedies', help='cures for the stuck hybrid compared over the '
        'same seeds',
        description='Trains the post\'s hybrid from every seed once per '
        'remedy applied at its switch (none; dead units revived in layer '
        '1, 2 or both; Adam reset; a learning-rate restart) and counts, '
        'against the plain hybrid, the stuck runs freed, the healthy runs '
        'made stuck and the median ratio on healthy runs. Writes '
        'remedies.csv and remedies.json.')
    settings.add_options(p, ('seeds', 'first_seed', 'epochs', 'n_units',
                             'engine'), StudyConfig,
                         quick={'seeds': QUICK_SEEDS,
                                'epochs': QUICK_EPOCHS})
    _add_out_and_quick(p, 'remedies')
    p.set_defaults(func=_remedies)

    p = commands.add_parser(
        'bench', help='speed of the post\'s loop, the package\'s loop and '
        'both engines on the study\'s real workload, side by side',
        description='Trains the study\'s replicas (half random, half '
        'hybrid) to late training, then times a window of epochs from that '
        'state for each contender in turn, several rounds: the post\'s '
        'loop, the package\'s loop, the numpy engine and the native engine '
        'with each kernel set the CPU runs; the same from fresh weights. '
        'Prints medians with their spread and writes bench.json into the '
        'output folder.')
    p.add_argument('--replicas', '-k', default='64,128',
                   help='ensemble sizes (default: 64,128; a study chunk '
                   'trains 64)')
    p.add_argument('--warmup', type=int, default=300,
                   help='epochs trained before the timed window (default: '
                   '300, of the study\'s 500: 50 past the switch)')
    p.add_argument('--window', type=int, default=2,
                   help='epochs timed per contender and round (default: 2)')
    p.add_argument('--repeat', type=int, default=5,
                   help='rounds (default: 5)')
    settings.add_options(p, ('device',), helps={
        'device': 'device of the numpy engine\'s ensemble, e.g. @cupy:0 '
        '(default: {default}); the rest runs on the CPU'})
    p.add_argument('--out', '-o', default=os.path.join('results', 'bench'),
                   help='output folder (default: results/bench)')
    p.set_defaults(func=_bench)
    return parser


def _add_study_options(p, out, chunk=None):
    """Adds the options that the study and the sweep share; ``chunk``
    replaces the settings' default chunk size."""
    settings.add_options(
        p, ('seeds', 'first_seed', 'epochs', 'batchsize', 'n_units',
            'device', 'engine', 'chunk', 'revive'), StudyConfig,
        quick={'seeds': QUICK_SEEDS, 'epochs': QUICK_EPOCHS},
        defaults={} if chunk is None else {'chunk': chunk})
    p.add_argument('--scheduler', default=None, metavar='ADDRESS',
                   help='run the chunks as tasks on the Dask cluster whose '
                   'scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786; '
                   'default: ${} if set; tcp:// only), with the native '
                   'engine; the results are the same bytes'
                   .format(SCHEDULER_VARIABLE))
    p.add_argument('--workers', type=int, default=None, metavar='N',
                   help='run the chunks on a local Dask cluster of N worker '
                   'processes (at most 2 per core)')
    _add_out_and_quick(p, out)


def _add_out_and_quick(p, out):
    """Adds ``--out`` (default ``results/<out>``) and the many-seed
    commands' ``--quick``."""
    p.add_argument('--out', '-o', default=os.path.join('results', out),
                   help='output folder (default: results/{})'.format(out))
    p.add_argument('--quick', action='store_true',
                   help='a quick look: {} epochs, {} seeds unless given'
                   .format(QUICK_EPOCHS, QUICK_SEEDS))


def _cluster(args, config):
    """The Dask cluster the options ask for, or None (then no Dask).

    Everything that can be checked here is, before a cluster starts.
    """
    if args.scheduler is not None and not args.scheduler.strip():
        raise errors.SettingsError('--scheduler needs an address, such as '
                                   'tcp://10.0.0.5:8786')
    # Imported here: no Dask is imported before a cluster is asked for.
    from minibatch_hybrid.experiments.study import distributed
    scheduler = (args.scheduler or os.environ.get(SCHEDULER_VARIABLE, '')
                 ).strip() or None
    # An error about an address from the environment says where it came
    # from.
    source = '' if args.scheduler else '{}={}: '.format(
        SCHEDULER_VARIABLE, os.environ.get(SCHEDULER_VARIABLE, ''))
    try:
        if scheduler:
            scheduler = distributed.parse_address(scheduler)[0]
        if scheduler and args.workers is not None:
            raise errors.SettingsError(
                'give --scheduler (or ${}) or --workers, not both'.format(
                    SCHEDULER_VARIABLE))
        if scheduler is None and args.workers is None:
            return None
        if args.workers is not None:
            distributed.check_local_workers(args.workers)
        config.check_memory(parallel=args.workers or 1)
        engine = engines.resolve_engine(config.engine,
                                       get_device(config.device))
        if not engines.is_native(engine):
            distributed.Cluster.check_engine(engine)
        return distributed.Cluster(scheduler=scheduler,
                                   workers=args.workers)
    except distributed.ClusterError as e:
        if scheduler is None or not source:
            raise
        raise distributed.ClusterError(source + str(e)) from None


def _apply_quick(args):
    """Fills in the epochs (and a study's seeds) that depend on --quick."""
    if args.epoch is None:
        args.epoch = QUICK_EPOCHS if args.quick else \
            settings.default('epochs')
    if getattr(args, 'seeds', 0) is None:
        args.seeds = QUICK_SEEDS if args.quick else \
            settings.default('seeds', StudyConfig)


def _study(args):
    _apply_quick(args)
    text = args.schedules
    if text is None:
        text = ','.join(settings.default_schedules(args.epoch))
    config = study.StudyConfig([t.strip() for t in text.split(',')],
                               **settings.from_args(args, StudyConfig))
    with contextlib.ExitStack() as stack:
        cluster = _cluster(args, config)
        if cluster is not None:
            stack.enter_context(cluster)
        study.run_study(config, args.out, cluster=cluster,
                        finish=_study_outputs(args.out),
                        outputs=study.STUDY_FILES)
    print('wrote ' + ', '.join(os.path.join(args.out, name)
                               for name in study.STUDY_FILES))


def _study_outputs(out):
    """Writes a study's files, its table printed first: the numbers are
    seen even where no file can be written (run with the folder held)."""

    def finish(result):
        summary = study.summarize(result)
        for line in study.summary_table(summary):
            print(line)
        study.write_study_outputs(result, summary, out)
    return finish


def _sweep(args):
    _apply_quick(args)
    try:
        fractions = [float(f) for f in args.fractions.split(',')]
    except ValueError:
        raise errors.SettingsError(
            '--fractions must be comma-separated numbers in [0, 1], got '
            '{!r}'.format(args.fractions)) from None
    sweep, config = study.sweep_config(
        fractions, not args.no_reverse,
        **settings.from_args(args, StudyConfig))
    with contextlib.ExitStack() as stack:
        cluster = _cluster(args, config)
        if cluster is not None:
            stack.enter_context(cluster)
        study.run_sweep(sweep, config, args.out, cluster=cluster,
                        show=print)
    print('wrote {}'.format(', '.join(os.path.join(args.out, name)
                                      for name in study.SWEEP_FILES)))


def _remedies(args):
    _apply_quick(args)
    # The study's checks of seeds, epochs, width and engine.
    config = StudyConfig([settings.hybrid_halves(args.epoch)],
                         **settings.from_args(args, StudyConfig))
    config.check_memory()
    results.check_output_dir(args.out, targets=remedies.OUTPUT_FILES)
    seeds = config.seed_list()
    runs = remedies.run_remedies(
        seeds, config.epochs, n_units=config.n_units, engine=config.engine,
        log=lambda line: print(line, file=sys.stderr))
    rows = remedies.compare(runs)
    for line in remedies.table(rows, len(seeds)):
        print(line)
    for name, part in remedies.at_switch(runs).items():
        print('at the switch, the {} {} runs: dead units (median, least, '
              'most) layer 1 {}, layer 2 {}; {} with no second-layer unit '
              'active at the last x'.format(
                  part['runs'], name, part['dead_layer1'],
                  part['dead_layer2'], part['uncovered']))
    args.written = remedies.write_outputs(runs, rows, seeds, args.out)
    print('wrote ' + ', '.join(args.written))


def _bench(args):
    try:
        replicas = [int(k) for k in args.replicas.split(',')]
    except ValueError:
        replicas = [0]
    if any(k < 1 for k in replicas):
        raise errors.SettingsError(
            '--replicas must be comma-separated positive integers, got '
            '{!r}'.format(args.replicas))
    bench.check_settings(replicas, args.warmup, args.window, args.repeat)
    if 'bench.json' in results.check_output_dir(args.out,
                                                targets=('bench.json',)):
        print('{} holds an earlier bench.json; this run replaces it'.format(
            args.out))
    result = bench.run_benchmark(replicas, args.warmup, args.window,
                                 args.repeat, device=args.device,
                                 log=lambda line: print(line,
                                                        file=sys.stderr))
    for line in bench.table(result):
        print(line)
    result['environment'] = results.environment()
    path, = results.save_results(args.out, {
        'bench.json': lambda p: results.write_json(p, result)},
        prefix='minibatch-hybrid-bench-')
    print('wrote ' + path)


def _reproduce(args):
    _apply_quick(args)
    config = reproduce.ReproductionConfig(
        literal=args.literal,
        **settings.from_args(args, reproduce.ReproductionConfig))
    config.check_memory()
    # A bad device or output folder fails before anything starts.
    get_device(config.device)
    earlier = set(results.check_output_dir(
        args.out, targets=reproduce.OUTPUT_FILES)) & set(
        reproduce.OUTPUT_FILES)
    if earlier:
        print('{} holds the results of an earlier run ({}); this run '
              'replaces them, all together, when it ends'.format(
                  args.out, ', '.join(sorted(earlier))))
    print('start...')
    outcome = reproduce.run_reproduction(config)
    print('end')
    # The numbers first: they are printed even if no file can be written.
    for line in reproduce.summary(outcome):
        print(line)
    paths = reproduce.write_outputs(outcome, config, args.out)
    args.written = paths
    print('wrote ' + ', '.join(paths))


def _take_interrupts():
    """Lets Ctrl-C raise KeyboardInterrupt again, and raises one that came
    while it was kept (after the start-up block, before :func:`main`)."""
    if signal.getsignal(signal.SIGINT) is _defer_interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if _deferred:
        del _deferred[:]
        raise KeyboardInterrupt


def main(argv=None):
    """Runs the command line; returns the exit status.

    An error the user can fix (:class:`~minibatch_hybrid.errors.Error`),
    and an :class:`OSError` that names its file, end it with exit status
    2 and one line; anything else is a bug, and keeps its traceback.

    A Ctrl-C at any moment ends it with exit status 130 and one line: one
    that comes before the command runs (while the options are read, say)
    is taken here, one while it runs by the command's own handler.

    Standard output that fails (a closed pipe, a full disk) does not stop
    the command: it runs to its end and writes its files, then says so in
    one line, with exit status 2 (:mod:`~minibatch_hybrid.io.console`).
    """
    return console.run(PROG, _main_guarded, argv)


def _main_guarded(argv):
    finished = []
    try:
        _take_interrupts()
        return _main(argv, finished)
    except KeyboardInterrupt:
        sys.stderr.write('interrupted after the command ended\n' if finished
                         else 'interrupted while starting: nothing was '
                         'run\n')
        return 130
    finally:
        # Python's exit (threads joined, modules freed) takes a moment too.
        if _runs_the_command():
            signal.signal(signal.SIGINT, _interrupted_while_exiting)


#: Ends a command that a Ctrl-C reaches after :func:`main` returned: its
#: output is out, and its exit status becomes 130.
_interrupted_while_exiting = _startup.exit_130_handler(
    'interrupted after the command ended')


def _main(argv, finished):
    parser = build_parser()
    args = parser.parse_args(argv)
    # An OSError naming a file comes from writing after a run: a study's
    # chunks are saved by then.
    hint = '; the chunks are saved: rerun the same command to write the ' \
        'outputs' if args.command in ('study', 'sweep') else ''
    try:
        with errors.boundary(parser, hint):
            # A bad MINIBATCH_HYBRID_THREADS is refused before any work.
            threads.check_threads()
            kernels.check_environment()  # and MINIBATCH_HYBRID_KERNELS
            args.func(args)
    except KeyboardInterrupt:
        if args.command in ('study', 'sweep'):
            sys.stderr.write('interrupted: the chunks finished so far are '
                             'saved in {}; rerun the same command to '
                             'continue\n'.format(args.out))
        elif getattr(args, 'written', None):
            sys.stderr.write('interrupted after the results were written: '
                             '{}\n'.format(', '.join(args.written)))
        else:
            sys.stderr.write('interrupted: no result files were written or '
                             'changed\n')
        finished.append(True)
        return 130
    finished.append(True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
