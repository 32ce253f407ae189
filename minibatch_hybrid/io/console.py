"""Standard output that a closed pipe or a full disk cannot stop.

A command prints its tables before it writes its files (so that the
numbers are seen even where no file can be written).  If standard output
is a pipe whose reader has gone (``minibatch-hybrid study | head -1``), a
full disk or ``/dev/full``, that print raises, and the files would never be
written.  While :func:`kept_going` runs, a failed write to standard output
or error is recorded instead, and everything later on that stream is
dropped: the command runs to its end and writes its files, then says in one
line what was lost.
"""
import contextlib
import errno
import io
import os
import sys


class KeptStream(object):
    """A text stream whose first failed write is recorded, not raised.

    Each write is flushed at once, so that a failure shows where it
    happens, not at some later print or at exit.  After the first failure
    the stream's descriptor is pointed at ``os.devnull``: neither later
    writes nor Python's own flush at exit can fail again.

    Args:
        stream: The stream to write to (``sys.stdout``, ``sys.stderr``).

    Attributes:
        failure (OSError): The first write that failed, or None.

    """

    def __init__(self, stream):
        self.stream = stream
        self.failure = None

    def write(self, text):
        if self.failure is None:
            try:
                written = self.stream.write(text)
                self.stream.flush()
                return written
            except (OSError, ValueError) as e:
                self._lose(e)
        return len(text)

    def flush(self):
        if self.failure is None:
            try:
                self.stream.flush()
            except (OSError, ValueError) as e:
                self._lose(e)

    def _lose(self, error):
        self.failure = error if isinstance(error, OSError) else \
            OSError(0, str(error))
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self.stream.fileno())
            finally:
                os.close(null)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # no descriptor (a test's capture): later writes dropped

    def __getattr__(self, name):  # isatty, fileno, encoding, ...
        return getattr(self.stream, name)


@contextlib.contextmanager
def kept_going():
    """Keeps ``sys.stdout`` and ``sys.stderr`` from stopping the block.

    Yields:
        KeptStream: Standard output, to ask whether it failed
        (``failure``) once the block is done.  A failure of standard error
        is not told: there is nowhere left to tell it.

    """
    saved = sys.stdout, sys.stderr
    with contextlib.ExitStack() as stack:
        # A closed descriptor (``>&-``): Python gives None; writes go
        # nowhere, and a closed standard output is told as a failure.
        sink = None
        if sys.stdout is None or sys.stderr is None:
            sink = stack.enter_context(open(os.devnull, 'w'))
        out = KeptStream(sys.stdout or sink)
        if sys.stdout is None:
            out.failure = OSError(errno.EBADF, 'it is closed')
        sys.stdout, sys.stderr = out, KeptStream(sys.stderr or sink)
        try:
            yield out
        finally:
            sys.stdout, sys.stderr = saved


def run(prog, main, *args):
    """Runs a command's ``main(*args)`` under :func:`kept_going`; returns
    its exit status, or 2 if it succeeded but standard output failed (then
    said in one line, :func:`tell_lost_output`)."""
    with kept_going() as stdout:
        status = main(*args)
    if stdout.failure is not None and status == 0:
        tell_lost_output(prog, stdout.failure)
        return 2
    return status


def tell_lost_output(prog, failure):
    """Says on standard error, in one line, that standard output failed
    (nothing if standard error fails too: there is nowhere to say it)."""
    try:
        sys.stderr.write(
            '{}: error: could not write to standard output ({}), so part of '
            'what the command prints is missing; it ran to its end and its '
            'files are written: rerun with the output sent to a file to see '
            'it all\n'.format(prog, failure.strerror or failure))
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # None: closed
        pass
