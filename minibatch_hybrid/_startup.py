"""Ctrl-C while a command of the package is still starting up.

Importing chainer, NumPy and matplotlib takes a second or two; a Ctrl-C
then ends a command in one line with exit status 130, as it does later.
Library users get the KeyboardInterrupt as usual.  A program declares
itself a command by setting ``__minibatch_hybrid_command__ = True`` in its
main module before it imports the package.
"""
import contextlib
import os
import signal
import sys
import threading

#: The package's command, as setup.py installs it.
PROGRAM = 'minibatch-hybrid'

#: What a program sets to True to declare itself a command.
DECLARATION = '__minibatch_hybrid_command__'


def started_as_command():
    """Whether this process runs :data:`PROGRAM`, a module of the package
    (``python -m``) or a program that sets :data:`DECLARATION`."""
    argv = getattr(sys, 'orig_argv', None) or sys.argv
    if '-m' in argv[:-1]:
        module = argv[argv.index('-m') + 1]
        return module.split('.')[0] == 'minibatch_hybrid'
    if getattr(sys.modules.get('__main__'), DECLARATION, False) is True:
        return True
    return os.path.basename(sys.argv[0] if sys.argv else '') == PROGRAM


@contextlib.contextmanager
def holding_interrupts():
    """Holds a Ctrl-C back during the block, in the main thread (elsewhere
    it holds nothing); yields the list of the signals held."""
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
    """Returns a SIGINT handler for after a command's work: it flushes the
    output, writes ``message`` and ends the process with status 130."""
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
    """Defers a Ctrl-C during the block, when a command is starting, then
    ends it in one line with exit status 130."""
    if not started_as_command():
        yield
        return
    # Deferred, not raised: a KeyboardInterrupt inside an extension
    # module's import can surface as an ImportError (NumPy's does).
    with holding_interrupts() as interrupted:
        try:
            yield
        except KeyboardInterrupt:  # one that came before the handler
            interrupted.append(signal.SIGINT)
    if interrupted:
        sys.stderr.write('interrupted while starting: nothing was run\n')
        raise SystemExit(130)
