"""Standard output that a closed pipe or a full disk cannot stop: a command
runs to its end and writes its files, then says in one line what could not
be printed (docs/faults.md)."""
import contextlib
import errno
import io
import os
import sys


class KeptStream(object):
    """A text stream whose first failed write is recorded, not raised.

    Each write is flushed at once; after the first failure the stream's
    descriptor points at ``os.devnull``, so that nothing later (Python's
    flush at exit included) fails again.

    Attributes:
        failure (OSError): The first write that failed, or None.

    """

    def __init__(self, stream):
        self.stream = stream
        self.failure = None

    def write(self, text):
        self._try(self.stream.write, text)
        self.flush()
        return len(text)

    def flush(self):
        self._try(self.stream.flush)

    def _try(self, call, *args):
        if self.failure is not None:
            return
        try:
            call(*args)
        except (OSError, ValueError) as e:
            self.failure = e if isinstance(e, OSError) else OSError(0, str(e))
            # No descriptor (a test's capture): later writes are dropped.
            with contextlib.suppress(OSError, ValueError,
                                     io.UnsupportedOperation):
                null = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(null, self.stream.fileno())
                finally:
                    os.close(null)

    def __getattr__(self, name):  # isatty, fileno, encoding, ...
        return getattr(self.stream, name)


@contextlib.contextmanager
def kept_going():
    """Keeps ``sys.stdout`` and ``sys.stderr`` from stopping the block;
    yields standard output's :class:`KeptStream`."""
    saved = sys.stdout, sys.stderr
    with contextlib.ExitStack() as stack:
        # A closed descriptor (``>&-``) is None: writes go nowhere, and a
        # closed standard output is told as a failure.
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
    said in one line on standard error, if that can be written)."""
    with kept_going() as stdout:
        status = main(*args)
    if stdout.failure is None or status != 0:
        return status
    try:
        sys.stderr.write(
            '{}: error: could not write to standard output ({}), so part of '
            'what the command prints is missing; it ran to its end and its '
            'files are written: rerun with the output sent to a file to see '
            'it all\n'.format(prog, stdout.failure.strerror or
                              stdout.failure))
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # None: closed
        pass
    return 2
