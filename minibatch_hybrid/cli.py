"""The ``minibatch-hybrid`` command."""
import signal
import sys
import threading

from minibatch_hybrid import _interrupts

#: Keeps a Ctrl-C that comes after the imports, before :func:`main` takes
#: it (raised there).
EARLY = _interrupts.Recorder()


def _runs_the_command():
    """Whether Ctrl-C is this module's to handle: in the main thread of the
    command's own process (not a worker process that imports its script
    again), at Python's default handler."""
    multiprocessing = sys.modules.get('multiprocessing')
    worker = '--multiprocessing-fork' in getattr(sys, 'orig_argv', ()) or (
        multiprocessing is not None and (
            multiprocessing.parent_process() is not None or
            multiprocessing.current_process().name != 'MainProcess'))
    return not worker and _interrupts.started_as_command() and \
        threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler


if _runs_the_command():
    EARLY.install()

with _interrupts.interruptible():  # Ctrl-C here: one line, exit status 130
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
#: Seeds of ``--quick`` (study, sweep, remedies) unless --seeds is given.
QUICK_SEEDS = 4


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Mini-batch order schedules for Chainer, and the '
        '"fixed then random" sin(x) experiment.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True
    quick = {'epochs': QUICK_EPOCHS, 'seeds': QUICK_SEEDS}

    p = _command(
        commands, 'reproduce', _reproduce,
        "reproduce the post's figure (normal vs hybrid)",
        "Train the post's MyChain on sin(x) twice from the same weights: in "
        'random order (normal), and in fixed order for the first half, '
        'random for the rest (hybrid). Writes {}.'.format(
            ', '.join(reproduce.OUTPUT_FILES)),
        {'epochs': QUICK_EPOCHS})
    settings.add_options(
        p, ('epochs', 'seed', 'batchsize', 'n_units', 'device', 'engine'),
        reproduce.ReproductionConfig, quick={'epochs': QUICK_EPOCHS})
    p.add_argument('--literal', action='store_true',
                   help="run the hybrid as the post's code did: 249 fixed + "
                   "249 random epochs of 500 (its Python 2 range); the "
                   "default follows its text, 250 + 250")

    p = _command(
        commands, 'study', _study,
        'many seeds, schedules compared pair by pair',
        'Train every schedule from every seed, a chunk of seeds at a time, '
        'and compare the final losses seed by seed. Rerun the same command '
        'after an interruption to continue.', quick)
    _add_study_options(p, quick)
    p.add_argument('--schedules', '-s', default=None,
                   help='comma-separated schedules (default: "{}" for E '
                   'epochs)'.format(','.join(settings.DEFAULT_SCHEDULES)))

    p = _command(
        commands, 'sweep', _sweep, 'final loss against the switch point',
        'Run hybrids with a growing fraction of fixed-order epochs (and the '
        'reverse, random first) over many seeds; resumable like study.',
        quick)
    _add_study_options(p, quick, study.sweep.CHUNK)
    p.add_argument('--fractions', default='0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,'
                   '0.8,0.9,1', help='fractions of epochs in fixed order')
    p.add_argument('--no-reverse', action='store_true',
                   help='leave out the reverse hybrids (random first)')

    p = _command(
        commands, 'remedies', _remedies,
        'cures for the stuck hybrid compared over the same seeds',
        "Train the post's hybrid from every seed once per remedy applied at "
        'its switch, and compare each with the plain hybrid. Writes '
        'remedies.csv and remedies.json.', quick)
    settings.add_options(p, ('seeds', 'first_seed', 'epochs', 'n_units',
                             'engine'), StudyConfig, quick=quick)

    p = _command(
        commands, 'bench', _bench,
        "speed of the loops and engines on the study's workload",
        "Time the post's loop, the package's loop and the engines on the "
        "study's replicas, late in training and from fresh weights, in "
        'turns over several rounds. Writes bench.json.')
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
    return parser


def _command(commands, name, func, help, description, quick=None):
    """Adds the subcommand ``name``, run by ``func(args)``, with its
    ``--out`` and the ``--quick`` that gives the values ``quick``."""
    p = commands.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    p.add_argument('--out', '-o', default=os.path.join('results', name),
                   help='output folder (default: results/{})'.format(name))
    if quick:
        p.add_argument('--quick', action='store_true',
                       help='a quick look: {} unless given'.format(', '.join(
                           '{} {}'.format(v, k) for k, v in quick.items())))
    return p


def _add_study_options(p, quick, chunk=None):
    """Adds the options of the study and the sweep; ``chunk`` replaces the
    default chunk size."""
    settings.add_options(
        p, ('seeds', 'first_seed', 'epochs', 'batchsize', 'n_units',
            'device', 'engine', 'chunk', 'revive'), StudyConfig,
        quick=quick, defaults={} if chunk is None else {'chunk': chunk})
    p.add_argument('--scheduler', default=None, metavar='ADDRESS',
                   help='run the chunks on the Dask cluster whose scheduler '
                   'is at ADDRESS (tcp:// only; default: ${} if set), with '
                   'the native engine: the same bytes'.format(
                       SCHEDULER_VARIABLE))
    p.add_argument('--workers', type=int, default=None, metavar='N',
                   help='run the chunks on a local Dask cluster of N worker '
                   'processes (at most 2 per core)')


def _cluster(args, config):
    """The Dask cluster the options ask for, or None; checked as far as
    can be before it starts."""
    if args.scheduler is not None and not args.scheduler.strip():
        raise errors.SettingsError('--scheduler needs an address, such as '
                                   'tcp://10.0.0.5:8786')
    # Imported here: no Dask is imported before a cluster is asked for.
    from minibatch_hybrid.experiments.study import distributed
    variable = os.environ.get(SCHEDULER_VARIABLE, '')
    scheduler = (args.scheduler or variable).strip() or None
    # An error about an address from the environment names the variable.
    source = '' if args.scheduler else '{}={}: '.format(
        SCHEDULER_VARIABLE, variable)
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


def _run_chunks(args, config, run, files):
    """Calls ``run(cluster)`` with the cluster the options ask for, open,
    or None; then names the ``files`` written."""
    cluster = _cluster(args, config)
    with contextlib.nullcontext() if cluster is None else cluster:
        run(cluster)
    print('wrote ' + ', '.join(os.path.join(args.out, name)
                               for name in files))


def _log(line):
    print(line, file=sys.stderr)


def _check_out(out, files):
    """Checks the output folder before any work, and says which of the
    result ``files`` there the run replaces."""
    earlier = set(results.check_output_dir(out, targets=files)) & set(files)
    if earlier:
        print('{} holds the results of an earlier run ({}); this run '
              'replaces them, all together, when it ends'.format(
                  out, ', '.join(sorted(earlier))))


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

    def finish(result):  # the table first, even where no file can be
        summary = study.summarize(result)
        for line in study.summary_table(summary):
            print(line)
        study.write_study_outputs(result, summary, args.out)
    _run_chunks(args, config, lambda cluster: study.run_study(
        config, args.out, cluster=cluster, finish=finish,
        outputs=study.STUDY_FILES), study.STUDY_FILES)


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
    _run_chunks(args, config, lambda cluster: study.run_sweep(
        sweep, config, args.out, cluster=cluster, show=print),
        study.SWEEP_FILES)


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
        log=_log)
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
    _check_out(args.out, ('bench.json',))
    result = bench.run_benchmark(replicas, args.warmup, args.window,
                                 args.repeat, device=args.device, log=_log)
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
    get_device(config.device)  # a bad device fails before anything starts
    _check_out(args.out, reproduce.OUTPUT_FILES)
    print('start...')
    outcome = reproduce.run_reproduction(config)
    print('end')
    # The numbers first: they are printed even if no file can be written.
    for line in reproduce.summary(outcome):
        print(line)
    args.written = reproduce.write_outputs(outcome, config, args.out)
    print('wrote ' + ', '.join(args.written))


def _take_interrupts():
    """Lets Ctrl-C raise KeyboardInterrupt again, and raises one that came
    while :data:`EARLY` kept it."""
    EARLY.uninstall()
    if EARLY.pending:
        del EARLY.pending[:]
        raise KeyboardInterrupt


def main(argv=None):
    """Runs the command line; returns the exit status.

    An error the user can fix, and an OSError that names its file, end it
    with one line and exit status 2; a Ctrl-C, with one line and 130.  A
    failing standard output does not stop the command: it says so at the
    end, with exit status 2 (:mod:`~minibatch_hybrid.io.console`).
    """
    return console.run(PROG, _main_guarded, argv)


def _main_guarded(argv):
    finished = []
    try:
        _take_interrupts()
        return _main(argv, finished)
    except KeyboardInterrupt:
        sys.stderr.write('interrupted after the command ended\n' if finished
                         else _interrupts.STARTING + '\n')
        return 130
    finally:
        # Python's exit (threads joined, modules freed) takes a moment too.
        if _runs_the_command():
            signal.signal(signal.SIGINT, _interrupted_while_exiting)


#: Ends a command that a Ctrl-C reaches after :func:`main` returned: its
#: output is out, and its exit status becomes 130.
_interrupted_while_exiting = _interrupts.exit_130_handler(
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
            # Bad MINIBATCH_HYBRID_THREADS or _KERNELS: refused before work.
            threads.check_threads()
            kernels.check_environment()
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
