"""Children that take Ctrl-C as a terminal's commands do.

A process started in the background by a non-interactive shell (``cmd &``,
``nohup``) inherits SIGINT *ignored*, and Python keeps it ignored; so do
the commands this suite starts from it, and a test's SIGINT would be lost.
Tests that interrupt a child start it with :func:`default_sigint` as its
``preexec_fn``: the verdict then does not depend on how pytest was started.
"""
import signal


def default_sigint():
    """Restores SIGINT's default action (run in the child, before exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
