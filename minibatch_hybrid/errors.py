"""The package's errors: one base for what a user can fix.

Every error the package raises for a cause outside the program (a bad
setting, a file that is not what it should be, a folder of another run,
kernels that cannot run here, a cluster that cannot be reached) derives
from :class:`Error`, and from the built-in class it was before
(:class:`ValueError`, :class:`RuntimeError`), so that code catching those
keeps working.  The command line turns an :class:`Error` into one line;
anything else is a bug and keeps its traceback.

The errors of one concern are defined beside it, each deriving from one
class here:

* :class:`SettingsError`: settings and arguments, schedule texts
  (:mod:`~minibatch_hybrid.schedules`), a snapshot of other settings
  (:class:`~minibatch_hybrid.chainer_ext.extensions.SettingsMismatch`).
* :class:`FileError`: files that are not what they should be: snapshots
  (:mod:`~minibatch_hybrid.io.snapshots`), a FIFO where a file is read.
* :class:`Error` itself: output folders
  (:class:`~minibatch_hybrid.io.results.OutputError`), study folders
  (:class:`~minibatch_hybrid.experiments.study.folder.StudyFolderError`),
  clusters
  (:class:`~minibatch_hybrid.experiments.study.distributed.ClusterError`),
  a worker of another version
  (:class:`~minibatch_hybrid.experiments.study.run.VersionMismatch`), the
  kernels (:class:`~minibatch_hybrid.kernels.NativeUnavailable`).

:func:`boundary` is where a command turns them into one line.
"""
import contextlib


class Error(Exception):
    """Base of the errors a user can fix; the message says how."""


class SettingsError(Error, ValueError):
    """A setting or argument out of its range; the message says the fix."""


class FileError(Error, ValueError):
    """A file that is not what it should be (damaged, of another format,
    not a regular file); the message names it and says what to do."""


@contextlib.contextmanager
def boundary(parser, file_hint=''):
    """The error boundary of a command, around its work.

    An :class:`Error` raised in the block, and an :class:`OSError` that
    names its file, end the command with exit status 2 and one line,
    ``PROG: error: MESSAGE`` (through ``parser.exit``); anything else,
    an OSError without a file among them, is a bug and keeps its
    traceback.

    Args:
        parser (argparse.ArgumentParser): The command's parser: its name
            and its exit.
        file_hint (str): Added to the line of an OSError (what is kept,
            and how to go on).

    """
    try:
        yield
    except Error as e:  # the user's to fix: one line
        parser.exit(2, '{}: error: {}\n'.format(parser.prog, e))
    except OSError as e:  # one that names its file: one line too
        if e.filename is None:  # no file to name: a bug, with its traceback
            raise
        parser.exit(2, '{}: error: {}: {}{}\n'.format(
            parser.prog, e.filename, e.strerror or e, file_hint))


def frame_scopes(error):
    """Yields the local variables (a dict) of every frame that ``error``
    went through, then those of the errors it was raised while handling
    (its context and cause), each once.

    What a failure left half done (a file, an archive, a client) is found
    there, and closed before it is collected noisily.
    """
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
