"""The package's errors: one base for what a user can fix.

Every error raised for a cause outside the program derives from
:class:`Error` (and from the built-in class it was before, so that code
catching that keeps working).  :func:`boundary` turns one into one line;
anything else is a bug and keeps its traceback.
"""
import contextlib


class Error(Exception):
    """Base of the errors a user can fix; the message says how."""


class SettingsError(Error, ValueError):
    """A setting or argument out of its range; the message says the fix."""


class FileError(Error, ValueError):
    """A file that is not what it should be; the message names it."""


@contextlib.contextmanager
def boundary(parser, file_hint=''):
    """The error boundary of a command, around its work.

    An :class:`Error`, or an :class:`OSError` that names its file, ends the
    command with exit status 2 and one line, ``PROG: error: MESSAGE``.

    Args:
        parser (argparse.ArgumentParser): The command's parser.
        file_hint (str): Added to the line of an OSError.

    """
    try:
        yield
    except Error as e:
        parser.exit(2, '{}: error: {}\n'.format(parser.prog, e))
    except OSError as e:
        if e.filename is None:  # no file to name: a bug
            raise
        parser.exit(2, '{}: error: {}: {}{}\n'.format(
            parser.prog, e.filename, e.strerror or e, file_hint))


def frame_scopes(error):
    """Yields the local variables of every frame ``error`` went through,
    then those of its context and cause, each once: where a failure left
    something half done (a file, a client) to close."""
    seen, errors = set(), [error]
    while errors:
        error = errors.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        errors += [error.__context__, error.__cause__]
        tb = error.__traceback__
        while tb is not None:
            yield tb.tb_frame.f_locals
            tb = tb.tb_next
