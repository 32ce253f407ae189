#!/usr/bin/env python
"""The post's experiment as a Chainer Trainer, with a schedule and resume.

    python scripts/train_chainer.py --schedule fixed:250+random:250 -e 500
    python scripts/train_chainer.py -e 500 --resume result/snapshot_epoch_100

Writes result/log, result/loss.png and snapshots every --snapshot-every
epochs.  Ctrl-C and rerun with --resume to continue exactly where a snapshot
left off.
"""
#: A command of minibatch_hybrid (see minibatch_hybrid._interrupts): a Ctrl-C
#: while it starts ends it in one line.  Set before the package's imports.
__minibatch_hybrid_command__ = True

import sys

try:
    # Before the package's heavy imports (this one is light): from here
    # on, no moment of the run loses a Ctrl-C.
    from minibatch_hybrid import _interrupts

    INTERRUPTS = _interrupts.Recorder()
    if __name__ == '__main__':
        INTERRUPTS.install()
except KeyboardInterrupt:  # the moment before: one line too
    sys.stderr.write('interrupted while starting: nothing was run\n')
    raise SystemExit(130) from None

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import zipfile  # noqa: E402

with _interrupts.interruptible():  # Ctrl-C here: one line, exit status 130
    # First: chainer on today's stacks (NumPy 2, Python 3.12).
    from minibatch_hybrid._compat import chainer  # noqa: F401
    from chainer import training

    from minibatch_hybrid import errors
    from minibatch_hybrid import kernels
    from minibatch_hybrid.kernels import threads
    from minibatch_hybrid.io import console
    from minibatch_hybrid.io import results
    from minibatch_hybrid.io import snapshots
    from minibatch_hybrid.chainer_ext import trainer as trainer_module
    from minibatch_hybrid.schedules.text import HYBRID_HALVES
    from minibatch_hybrid import settings

#: What Chainer's writing extensions write, by class name.
WRITERS = {'_Snapshot': 'the snapshot', 'LogReport': 'the log',
           'PlotReport': 'the plot'}


def main(argv=None):
    # A closed or full standard output does not stop the run: it ends,
    # then says so in one line.
    return console.run(os.path.basename(sys.argv[0]) or 'train_chainer.py',
                       _interruptible_main, argv)


def _interruptible_main(argv):
    installed = INTERRUPTS.install()
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before training starts, or during it
        sys.stderr.write('interrupted: the snapshots written so far, if '
                         'any, are in the output folder; rerun with --resume '
                         '<snapshot> to continue\n')
        return 130
    finally:
        if installed:
            INTERRUPTS.uninstall()


def _snapshot_files(out):
    """Snapshots in ``out``: name -> (epoch, inode, mtime)."""
    found = {}
    try:
        names = os.listdir(out)
    except OSError:
        return found
    for name in names:
        match = re.fullmatch(r'snapshot_epoch_(\d+)', name)
        if match:
            try:
                st = os.stat(os.path.join(out, name))
            except OSError:
                continue
            found[name] = (int(match.group(1)), st.st_ino, st.st_mtime_ns)
    return found


def last_complete_snapshot(out, before):
    """The newest snapshot this run completed in ``out``, or None.

    Args:
        out (str): The output folder.
        before (dict): :func:`_snapshot_files` before the run: files that
            are still the same were written by an earlier run.

    """
    now = _snapshot_files(out)
    written = [(epoch, name) for name, (epoch, *stat) in now.items()
               if before.get(name) != (epoch, *stat)]
    for _, name in sorted(written, reverse=True):
        path = os.path.join(out, name)
        try:
            with snapshots.open_npz(path) as arrays:
                if 'updater/iteration' in arrays:
                    return path
        except (OSError, snapshots.SnapshotError):  # damaged: not complete
            continue
    return None


def what_failed(error, trainer):
    """Names what Chainer's extension was writing when ``error`` came.

    The extension whose method is on the traceback says it: the
    snapshot, the log or the plot; an error of another step is named by
    its file, if it has one.
    """
    tb = error.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get('self')
        if isinstance(owner, training.Extension):
            kind = type(owner).__name__
            what = WRITERS.get(kind, 'the extension ' + kind)
            name = getattr(owner, 'filename', None)
            if kind == '_Snapshot' and isinstance(name, str):
                try:
                    what += ' ' + name.format(trainer)
                except (AttributeError, IndexError, KeyError, ValueError):
                    pass
            return what
        tb = tb.tb_next
    return 'a file ' + error.filename if error.filename else 'a file'


def close_archives(error):
    """Closes the zip archives that a failed write left open.

    A snapshot that fails halfway (a full disk) leaves NumPy's
    ``zipfile.ZipFile`` open on a file that Chainer has closed; when it is
    collected, its ``__del__`` prints "Exception ignored ... seek of closed
    file".  Closed here (the second failure is the same full disk), it
    prints nothing.
    """
    # The error's frames, and those of the error it was raised while
    # handling: a real full disk fails again at Chainer's close.
    for scope in errors.frame_scopes(error):
        for value in list(scope.values()):
            if isinstance(value, zipfile.ZipFile):
                with contextlib.suppress(OSError, ValueError):
                    value.close()


def run(trainer, out, prog):
    """Runs ``trainer``; a failed write ends it in one line, status 2."""
    before = _snapshot_files(out)
    try:
        # No loop traceback from Chainer: a write that fails is one line.
        trainer.run(show_loop_exception_msg=False)
    except OSError as e:
        close_archives(e)
        last = last_complete_snapshot(out, before)
        sys.stderr.write(
            '{}: error: could not write {} into {}: {}; training stopped '
            'at epoch {}; {}\n'.format(
                prog, what_failed(e, trainer), out, e.strerror or e,
                trainer.updater.epoch,
                'the last complete snapshot is {0}: free some space and '
                'rerun with --resume {0}'.format(last) if last else
                'no snapshot of this run is complete: free some space and '
                'rerun'))
        return 2
    INTERRUPTS.check()  # one that came during the last iteration
    return 0


def build_parser():
    """Returns the script's option parser.

    The options it shares with the ``minibatch-hybrid`` command (the
    epochs, batch size, hidden units, device and seed) come from the
    settings (:func:`minibatch_hybrid.settings.add_options`), as the
    command's do; ``--unit`` is kept as another name of ``--units``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--schedule', '-s', default=None,
                        help='schedule in text form (default: {} for E '
                        'epochs)'.format(HYBRID_HALVES))
    settings.add_options(parser, ('epochs', 'batchsize', 'device'))
    parser.add_argument('--out', '-o', default='result',
                        help='output folder (default: result)')
    parser.add_argument('--resume', '-r', default=None,
                        help='snapshot to resume from')
    settings.add_options(parser, ('seed', 'n_units'),
                         aliases={'n_units': ('--unit',)})
    parser.add_argument('--snapshot-every', type=int, default=50,
                        help='epochs between snapshots (default: 50)')
    parser.add_argument('--iterator', default='serial',
                        choices=sorted(trainer_module.ITERATORS),
                        help='iterator (default: serial)')
    parser.add_argument('--no-report', action='store_true',
                        help='no printed report, progress bar or plot')
    return parser


def _main(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    with errors.boundary(parser):
        threads.check_threads()
        kernels.check_environment()  # a bad MINIBATCH_HYBRID_KERNELS
        earlier = [name for name in results.check_output_dir(args.out)
                   if name == 'log' or name.startswith('snapshot_epoch_')]
        # No --schedule: build_trainer gives the post's hybrid.
        trainer = trainer_module.build_trainer(
            args.schedule, seed=args.seed, out=args.out,
            snapshot_every=args.snapshot_every, iterator=args.iterator,
            report=not args.no_report, **settings.from_args(args))
        if args.resume is not None:
            trainer_module.resume(trainer, args.resume)
    if earlier:
        print('{} holds an earlier run\'s log and snapshots ({} files); '
              'this run writes over them'.format(args.out, len(earlier)))
    # Between iterations, before the writers: a Ctrl-C that came is raised.
    # A trigger without state, so that snapshots do not change.
    trainer.extend(lambda trainer: INTERRUPTS.check(), name='Interrupts',
                   trigger=lambda trainer: True,
                   priority=training.PRIORITY_WRITER + 1)
    INTERRUPTS.check()
    return run(trainer, args.out, parser.prog)


#: Ends a run that a Ctrl-C reaches after :func:`main` returned: its files
#: are written, and its exit status becomes 130.
_interrupted_while_exiting = _interrupts.exit_130_handler(
    'interrupted after the run ended: its log and snapshots are written')


def _exit_status(status):
    """The exit status of a run that :func:`main` ended with ``status``:
    130 if a Ctrl-C came after the run's last check (its final writes,
    the return), which the recording handler held.  From here on a
    Ctrl-C ends the process at once, with 130 as well."""
    if INTERRUPTS.installed:
        signal.signal(signal.SIGINT, _interrupted_while_exiting)
    if INTERRUPTS.pending and status == 0:
        sys.stderr.write('interrupted after the run ended: its log and '
                         'snapshots are written\n')
        return 130
    return status


if __name__ == '__main__':
    sys.exit(_exit_status(main()))
