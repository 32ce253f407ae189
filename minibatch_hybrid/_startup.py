"""Ctrl-C while a command of the package is still starting up.

Importing chainer, NumPy and matplotlib takes a second or two; an
interruption then should end a command the way it ends later, in one line
with exit status 130, not with a traceback through the import machinery.
Library users (anything that is not one of the package's commands) get the
KeyboardInterrupt as usual.  Nothing heavy is imported here.
"""
import contextlib
import os
import sys

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
    """Turns a Ctrl-C in the block into one line and exit status 130, when
    a command of the package is starting."""
    try:
        yield
    except KeyboardInterrupt:
        if not started_as_command():
            raise
        sys.stderr.write('interrupted while starting: nothing was run\n')
        raise SystemExit(130) from None
