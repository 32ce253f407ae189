"""The package's errors: one base for what a user can fix.

Every error the package raises for a cause outside the program (a bad
setting, a file that is not what it should be, a folder of another run,
kernels that cannot run here, a cluster that cannot be reached) derives
from :class:`Error`, and from the built-in class it was before
(:class:`ValueError`, :class:`RuntimeError`), so that code catching those
keeps working.  The command line turns an :class:`Error` into one line;
anything else is a bug and keeps its traceback.
"""


class Error(Exception):
    """Base of the errors a user can fix; the message says how."""


class SettingsError(Error, ValueError):
    """A setting or argument out of its range; the message says the fix."""
