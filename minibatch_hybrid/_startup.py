"""Ctrl-C while a command of the package is still starting up.

Importing chainer, NumPy and matplotlib takes a second or two; an
interruption then should end a command the way it ends later, in one line
with exit status 130, not with a traceback through the import machinery.
Library users (anything that is not one of the package's commands) get the
KeyboardInterrupt as usual.  Nothing heavy is imported here.

The package knows its own command (``minibatch-hybrid``, or ``python -m
minibatch_hybrid...``), not the programs built on it: a program declares
itself one of the package's commands by setting, in its main module and
before it imports the package::

    __minibatch_hybrid_command__ = True

The first few milliseconds of a command, before Python runs any of the
package's code, are beyond reach: a Ctrl-C there gets Python's own
traceback.
"""
import contextlib
import os
import signal
import sys
import threading

#: The package's command, by the name it is installed as (setup.py's
#: console script).
PROGRAM = 'minibatch-hybrid'

#: The name a program sets to True in its main module, before it imports
#: the package, to declare itself one of the package's commands.
DECLARATION = '__minibatch_hybrid_command__'


def started_as_command():
    """Whether this process runs one of the package's commands.

    Those are :data:`PROGRAM`, a module of the package run with ``python
    -m``, and a program whose main module sets :data:`DECLARATION` to
    True (before it imports the package).
    """
    argv = getattr(sys, 'orig_argv', None) or sys.argv
    if '-m' in argv[:-1]:
        module = argv[argv.index('-m') + 1]
        return module.split('.')[0] == 'minibatch_hybrid'
    if getattr(sys.modules.get('__main__'), DECLARATION, False) is True:
        return True
    return os.path.basename(sys.argv[0] if sys.argv else '') == PROGRAM


@contextlib.contextmanager
def holding_interrupts():
    """Holds a Ctrl-C back during the block, in the main thread.

    Yields the list of the signals held (empty if none came); the caller
    decides what a held one means.  Elsewhere than in the main thread,
    where no handler can be set, it holds nothing.
    """
    interrupted = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    previous = signal.signal(signal.SIGINT,
                             lambda signum, frame: interrupted.append(signum))
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def exit_130_handler(message):
    """Returns a SIGINT handler for the moments after a command's work is
    done: it flushes the output, writes ``message`` as one line and ends
    the process with exit status 130 at once."""
    line = (message + '\n').encode()

    def handler(signum, frame):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        try:
            os.write(2, line)
        finally:
            os._exit(130)

    return handler


@contextlib.contextmanager
def interruptible():
    """Defers a Ctrl-C during the block, when a command of the package is
    starting, and then ends the command in one line with exit status 130.

    Deferred, not raised: a KeyboardInterrupt raised inside an extension
    module's import can surface as an ImportError (NumPy's does), so the
    imports are let finish, which takes a moment.
    """
    if not started_as_command():
        yield
        return
    with holding_interrupts() as interrupted:
        try:
            yield
        except KeyboardInterrupt:  # one that came before the handler
            interrupted.append(signal.SIGINT)
    if interrupted:
        sys.stderr.write('interrupted while starting: nothing was run\n')
        raise SystemExit(130)
