"""Ctrl-C in the package's commands: the one policy, in one module.

A command ends on a Ctrl-C in one line with exit status 130, whenever it
comes: while it starts (:func:`interruptible`), before its work starts
(a :class:`Recorder`), while its files are moved into place
(:func:`blocked`), while Dask starts or closes (:func:`deferred`) and
after its work (:func:`exit_130_handler`).  While a cluster is open, a
SIGTERM is taken as a Ctrl-C (:class:`Termination`).  Library users get
the KeyboardInterrupt as usual.  A program declares itself a command by
setting ``__minibatch_hybrid_command__ = True`` in its main module before
it imports the package.  Nothing heavy is imported here.
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

#: The line of a command interrupted before it ran anything.
STARTING = 'interrupted while starting: nothing was run'


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


def _main_thread():
    return threading.current_thread() is threading.main_thread()


class Recorder(object):
    """Records a signal instead of raising it; :meth:`check` raises it.

    Python raises a SIGINT's KeyboardInterrupt wherever the main thread
    is; inside a ``__del__`` or a weakref callback (Chainer runs many) it
    is printed and lost.  Recorded, it is raised where nothing swallows
    it.

    Args:
        signum (int): The signal (SIGINT unless given).

    """

    def __init__(self, signum=signal.SIGINT):
        self.signum = signum
        #: The signals that came while installed.
        self.pending = []
        self.installed = False
        self._previous = None

    def install(self):
        """Records the signal from now on; True if this call installed it.

        Not outside the main thread, and not where the signal is ignored
        (a background job's SIGINT): there it stays as it is.
        """
        if self.installed or not _main_thread() or \
                signal.getsignal(self.signum) == signal.SIG_IGN:
            return False
        self._previous = signal.signal(self.signum, self._record)
        self.installed = True
        return True

    def uninstall(self):
        """Gives the signal back to the handler it had before."""
        if self.installed:
            signal.signal(self.signum, signal.SIG_DFL
                          if self._previous is None else self._previous)
            self.installed = False

    def _record(self, signum, frame):
        self.pending.append(signum)

    def check(self):
        """Raises KeyboardInterrupt if the signal came."""
        if self.pending:
            raise KeyboardInterrupt


@contextlib.contextmanager
def held():
    """Holds a Ctrl-C back during the block (main thread); yields the list
    of those that came."""
    recorder = Recorder()
    recorder.install()
    try:
        yield recorder.pending
    finally:
        recorder.uninstall()


@contextlib.contextmanager
def interruptible():
    """Holds a Ctrl-C back while a command starts (imports), then ends it
    in one line with exit status 130; elsewhere does nothing."""
    if not started_as_command():
        yield
        return
    # Held, not raised: a KeyboardInterrupt inside an extension module's
    # import can surface as an ImportError (NumPy's does).
    with held() as interrupted:
        try:
            yield
        except KeyboardInterrupt:  # one that came before the handler
            interrupted.append(signal.SIGINT)
    if interrupted:
        sys.stderr.write(STARTING + '\n')
        raise SystemExit(130)


@contextlib.contextmanager
def blocked():
    """Blocks SIGINT during the block (main thread): it is delivered, and
    raised, when the block is done."""
    block = hasattr(signal, 'pthread_sigmask') and _main_thread()
    if block:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        yield
    finally:
        if block:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


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


class Termination(object):
    """Takes SIGTERM as a Ctrl-C in a command's main thread, where it has
    its default action (a library's caller keeps its own); while ``held``
    is a list, a SIGTERM goes to it instead."""

    def __init__(self):
        self.held = self.previous = None
        if _main_thread() and started_as_command() and \
                signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        if self.held is None:
            raise KeyboardInterrupt
        self.held.append(signum)

    def restore(self):
        """Puts SIGTERM's default action back."""
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None


@contextlib.contextmanager
def deferred(termination=None, ctrl_c=True):
    """Holds a Ctrl-C (if ``ctrl_c``) and a SIGTERM of ``termination``
    during the block, then raises it, over an error of the block: the
    user asked to stop."""
    with (held() if ctrl_c else contextlib.nullcontext([])) as came:
        if termination is not None:
            termination.held = came
        try:
            yield
        finally:
            if termination is not None:
                termination.held = None
            if came:
                raise KeyboardInterrupt
