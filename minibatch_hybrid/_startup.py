"""Ctrl-C while a command of the package is still starting up.

Importing chainer, NumPy and matplotlib takes a second or two; an
interruption then should end a command the way it ends later, in one line
with exit status 130, not with a traceback through the import machinery.
Library users (anything that is not one of the package's commands) get the
KeyboardInterrupt as usual.  Nothing heavy is imported here.

The first few milliseconds of a command, before Python runs any of the
package's code, are beyond reach: a Ctrl-C there gets Python's own
traceback.
"""
import contextlib
import os
import signal
import sys
import threading

#: Programs of this package, by the name they are started with.
COMMANDS = ('minibatch-hybrid', 'reproduce.py', 'train_chainer.py',
            'check_subnormals.py')


def started_as_command():
    """Whether this process runs one of the package's commands."""
    argv = getattr(sys, 'orig_argv', None) or sys.argv
    if '-m' in argv[:-1]:
        module = argv[argv.index('-m') + 1]
        return module.split('.')[0] == 'minibatch_hybrid'
    return os.path.basename(sys.argv[0] if sys.argv else '') in COMMANDS


@contextlib.contextmanager
def interruptible():
    """Defers a Ctrl-C during the block, when a command of the package is
    starting, and then ends the command in one line with exit status 130.

    Deferred, not raised: a KeyboardInterrupt raised inside an extension
    module's import can surface as an ImportError (NumPy's does), so the
    imports are let finish, which takes a moment.
    """
    if not started_as_command() or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted = []
    previous = signal.signal(signal.SIGINT,
                             lambda signum, frame: interrupted.append(signum))
    try:
        yield
    except KeyboardInterrupt:  # one that came before the handler
        interrupted.append(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        sys.stderr.write('interrupted while starting: nothing was run\n')
        raise SystemExit(130)
