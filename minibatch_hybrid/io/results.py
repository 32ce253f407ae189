"""Writing results: whole files or none, and what produced them."""
import contextlib
import csv
import errno
import fcntl
import io
import json
import os
import platform
import shutil
import signal
import stat
import sys
import tempfile
import threading

import chainer
import numpy

from minibatch_hybrid import _compat
from minibatch_hybrid import kernels
from minibatch_hybrid._version import __version__
from minibatch_hybrid.errors import Error
from minibatch_hybrid.errors import FileError


def atomic_write(path, write, binary=False):
    """Writes a file whole or not at all.

    ``write(f)`` writes into a temporary file beside ``path``, which then
    replaces ``path`` in one step; if ``write`` raises (a Ctrl-C included),
    the temporary file is removed and ``path`` is left as it was.

    Args:
        path (str): The file to write.
        write (callable): Takes the open file.
        binary (bool): Open the file in binary mode.

    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix='.' + os.path.basename(path) + '.',
        suffix='.tmp')
    try:
        # mkstemp creates the file private (0600); give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, 'wb' if binary else 'w',
                       **({} if binary else {'newline': '',
                                             'encoding': 'utf-8'})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json(path, obj):
    """Writes ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2) + '\n'))


def write_csv(path, header, rows):
    """Writes a header row and rows as CSV, atomically."""
    def write(f):
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow(header)
        writer.writerows(rows)
    atomic_write(path, write)


def float_list(array):
    """Returns an array's values as Python floats (exact for float32)."""
    return [float(v) for v in numpy.asarray(array).ravel()]


def environment(device=None):
    """Returns the versions and device a result came from, for config files."""
    info = {
        'python': platform.python_version(),
        'platform': platform.platform(),
        'numpy': numpy.__version__,
        'chainer': chainer.__version__,
        'cupy': None,
        'argv': list(sys.argv),
    }
    if chainer.backends.cuda.available:
        # Here, where Chainer found CuPy: never imported eagerly.
        import cupy
        info['cupy'] = cupy.__version__
    if device is not None:
        info['device'] = str(device)
    info['minibatch_hybrid'] = __version__
    info['compat_shims'] = list(_compat.APPLIED)
    info['cpu'] = _cpu_model()
    try:
        info['native_kernels'] = kernels.current() if kernels.available() \
            else None
    except kernels.NativeUnavailable as e:  # a bad MINIBATCH_HYBRID_KERNELS
        info['native_kernels'] = 'unavailable: {}'.format(e)
    return info


def _cpu_model():
    """The CPU's model name (Linux), else the platform's processor."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(('model name', 'Model')):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def save_figure(figure, path):
    """Saves a matplotlib figure as PNG, atomically."""
    def write(f):
        buffer = io.BytesIO()
        figure.savefig(buffer, format='png', dpi=120)
        f.write(buffer.getvalue())
    atomic_write(path, write, binary=True)


class OutputError(Error, ValueError):
    """An output folder cannot take a run's results (the message says why)."""


def check_output_dir(out, clean=True, targets=()):
    """Makes sure results can be written into folder ``out``, before work.

    Creates the folder if needed and writes (and removes) a small file in
    it, so that a path naming a file, a path under a file, a link that
    leads nowhere, a place nobody may write and a read-only or full file
    system are reported before a run starts, in one line.  Staging folders
    that a killed run left there are removed
    (:func:`remove_stale_staging`), unless ``clean`` is False (a study
    removes them once it holds its folder's lock).

    Args:
        out (str): The output folder.
        clean (bool): Remove the staging folders of killed runs.
        targets (tuple of str): Names of the result files the run will
            write there: a folder (or anything but a file) in the place of
            one is refused too (:func:`check_output_targets`).

    Returns:
        list of str: Names of files already in the folder.

    """
    if not out:
        raise OutputError('the output folder is empty text; give a folder '
                          '(--out)')
    if os.path.islink(out) and not os.path.exists(out):
        raise OutputError(
            'the output folder {} is a link that leads nowhere ({}); give '
            'a folder (--out)'.format(out, _broken_link(out)))
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError('the output folder {} is {}; give a folder '
                          '(--out)'.format(out,
                                           file_kind(os.stat(out).st_mode)))
    check_output_targets(out, targets)
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix='.write-test-')
        try:
            os.write(fd, b'\0' * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
        if clean:
            remove_stale_staging(out)
        return sorted(os.listdir(out))
    except OSError as e:
        raise OutputError('cannot write into the output folder {}: {}; give '
                          'another --out'.format(out, e.strerror or e)) \
            from None


def _broken_link(path):
    """Why the link ``path`` cannot be followed: a loop, or no target."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return 'a loop of links'
        return 'its target {} does not exist'.format(os.readlink(path))
    return 'it can be followed'


def check_output_targets(out, names):
    """Refuses, before a run, a folder (or anything but a file) where one
    of the result files ``names`` goes in folder ``out``.

    Raises:
        OutputError: One line naming the path and the fix.

    """
    for name in names:
        problem = _target_problem(os.path.join(out, name))
        if problem:
            raise OutputError(problem)


def _target_problem(path):
    """What keeps a result file from being written at ``path``, or None."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return None  # a file (or a link) is replaced as a whole
    return '{} is {}, where a result file goes; move it away (or give ' \
        'another --out) and rerun'.format(path, file_kind(mode))


def file_kind(mode):
    """Names the kind of file that ``mode`` (of os.lstat) describes."""
    for test, name in ((stat.S_ISREG, 'a file'), (stat.S_ISDIR, 'a folder'),
                       (stat.S_ISLNK, 'a link'),
                       (stat.S_ISFIFO, 'a FIFO'),
                       (stat.S_ISCHR, 'a character device'),
                       (stat.S_ISBLK, 'a block device'),
                       (stat.S_ISSOCK, 'a socket')):
        if test(mode):
            return name
    return 'not a regular file'


def _not_regular_file(path, why):
    return FileError('{} is {}'.format(path, why))


def open_regular(path, refuse=None):
    """Opens ``path`` for reading if it is a regular file, not a link.

    A FIFO, a device, a socket, a folder or a link (to ``/dev/zero``, say)
    is refused by its kind, without being opened for reading (a FIFO
    would wait for a writer, a device would read without end).

    Args:
        path (str): The file.
        refuse (callable): Makes the error to raise from ``(path, why)``
            (default: a :class:`~minibatch_hybrid.errors.FileError`
            ``'PATH is WHY'``).

    Raises:
        minibatch_hybrid.errors.FileError: ``path`` is not a regular file
            (or what ``refuse`` makes).
        OSError: It cannot be opened.

    Returns:
        file: ``path`` open for reading bytes.

    """
    refuse = refuse or _not_regular_file
    mode = os.lstat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _refused(path, mode, refuse)
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) |
                 getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_CLOEXEC', 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # it changed since lstat
        os.close(fd)
        raise _refused(path, mode, refuse)
    return os.fdopen(fd, 'rb')


def _refused(path, mode, refuse):
    return refuse(path, '{}, not a regular file; nothing was read from '
                  'it'.format(file_kind(mode)))


#: Staging folders are named after this (and the process that made them).
STAGING_PREFIX = '.staging-'
#: The file that marks a staging folder as this package's: the process
#: that writes the folder holds an ``flock`` on it until it removes the
#: folder, so a folder whose marker nobody holds was left by a killed run.
STAGING_MARKER = '.minibatch-hybrid-staging'


def _lock_marker(path):
    """Takes the marker's lock without waiting; returns its open file
    descriptor, or None if another process holds it (or it is not a
    regular file)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) |
                     getattr(os, 'O_NONBLOCK', 0) |
                     getattr(os, 'O_CLOEXEC', 0))
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
    except OSError:  # held: its run still writes into it
        pass
    os.close(fd)
    return None


def remove_stale_staging(out):
    """Removes the staging folders in ``out`` that a killed run left.

    A run stages its result files in ``out/.staging-PID-XXXX``, which
    holds a marker file (:data:`STAGING_MARKER`) that the run keeps locked
    (``flock``) until it has moved the files into place and removed the
    folder.  A folder whose marker can be locked was left by a run that
    was killed (SIGKILL) in between, wherever it ran (another container or
    host sharing the folder included, and whatever its process id), and
    is removed.  Folders named ``.staging-*`` without the marker are not
    this package's, and are left as they are.

    Returns:
        list of str: The folders removed.

    """
    removed = []
    try:
        names = os.listdir(out)
    except OSError:
        return removed
    for name in sorted(names):
        path = os.path.join(out, name)
        if not name.startswith(STAGING_PREFIX) or os.path.islink(path) or \
                not os.path.isdir(path):
            continue
        fd = _lock_marker(os.path.join(path, STAGING_MARKER))
        if fd is None:  # not ours, or its run still goes
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        removed.append(path)
    return removed


@contextlib.contextmanager
def _staging_folder(out):
    """A new staging folder in ``out``, marked and locked while the block
    runs (:func:`remove_stale_staging`), removed at its end."""
    staging = tempfile.mkdtemp(
        dir=out, prefix='{}{}-'.format(STAGING_PREFIX, os.getpid()))
    fd = None
    try:
        # Locked before it has its name, so that no other run can find the
        # marker unlocked in between.
        fd, tmp = tempfile.mkstemp(dir=staging, prefix='.marker-')
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, os.path.join(staging, STAGING_MARKER))
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def _interrupts_held():
    """Holds Ctrl-C (SIGINT) back until the block is done (main thread)."""
    held = (hasattr(signal, 'pthread_sigmask') and
            threading.current_thread() is threading.main_thread())
    if held:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        yield
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


def write_result_set(out, writers):
    """Writes a run's files so that they appear together or not at all.

    Each ``writers[name](path)`` writes its file into a staging folder
    inside ``out`` (marked and locked, so that a later run can tell one
    left by a killed run: :func:`remove_stale_staging`); then all are
    moved into place with Ctrl-C held back, so an interruption leaves
    either the earlier files or all the new ones.

    Raises:
        OSError: With ``filename`` the path that failed: the file in
            ``out`` (not the staging folder) where one cannot go there.

    Returns:
        list of str: The paths written.

    """
    os.makedirs(out, exist_ok=True)
    remove_stale_staging(out)
    for name in writers:
        target = os.path.join(out, name)
        if _target_problem(target):
            raise OSError(errno.EISDIR if os.path.isdir(target)
                          else errno.EEXIST, _target_problem(target), target)
    with _staging_folder(out) as staging:
        for name, write in writers.items():
            write(os.path.join(staging, name))
        with _interrupts_held():
            for name in writers:
                try:
                    os.replace(os.path.join(staging, name),
                               os.path.join(out, name))
                except OSError as e:
                    raise OSError(e.errno, e.strerror,
                                  os.path.join(out, name)) from None
    return [os.path.join(out, name) for name in writers]


def fallback_places(out):
    """Where results go when folder ``out`` cannot take them, in order:
    beside ``out``, the user's cache folder, the temporary folder."""
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(
        os.path.expanduser('~'), '.cache')
    places = [os.path.dirname(os.path.abspath(out)),
              os.path.join(cache, 'minibatch-hybrid'),
              tempfile.gettempdir()]
    unique = []
    for place in places:
        if os.path.realpath(place) not in [os.path.realpath(p)
                                           for p in unique]:
            unique.append(place)
    return unique


def write_elsewhere(out, prefix, write):
    """Tries each of :func:`fallback_places` until ``write(folder)`` works
    in a new folder there; leaves no folder behind where it fails.

    Args:
        out (str): The folder that failed.
        prefix (str): Start of the new folder's name.
        write (callable): Writes into the folder it is given.

    Returns:
        tuple: ``(folder, failures)``: the folder written (None if none
        could be), and ``'place (why)'`` for each place that failed.

    """
    failures = []
    for place in fallback_places(out):
        made = []  # folders this made, removed again if it fails
        folder = None
        try:
            parent = os.path.abspath(place)
            while not os.path.isdir(parent):
                made.append(parent)
                parent = os.path.dirname(parent)
            os.makedirs(place, exist_ok=True)
            folder = tempfile.mkdtemp(dir=place, prefix=prefix)
            write(folder)
            return folder, failures
        except OSError as e:
            failures.append('{} ({})'.format(place, e.strerror or e))
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            for path in made:  # deepest first
                try:
                    os.rmdir(path)
                except OSError:
                    pass
    return None, failures


def save_results(out, writers, prefix='minibatch-hybrid-'):
    """Writes a result set into ``out``; if that fails, somewhere else.

    A run's results are never lost to a full or broken disk: when writing
    into ``out`` fails, they go to a new folder beside ``out``, else in
    the user's cache folder, else in the system's temporary folder
    (:func:`fallback_places`), and :class:`OutputError` says where.

    Raises:
        OutputError: The results are not (all) in ``out``: the one line
            says why, and where they are, or that no place could take them.

    Returns:
        list of str: The paths written (in ``out``).

    """
    try:
        return write_result_set(out, writers)
    except OSError as e:
        failure = describe_failure(e, out)
    fallback, failures = write_elsewhere(
        out, prefix, lambda folder: write_result_set(folder, writers))
    if fallback is None:
        raise OutputError(
            'could not write the results into {} ({}), nor anywhere else: '
            '{}; free some space (or give another --out) and '
            'rerun'.format(out, failure, ', '.join(failures)))
    raise OutputError('could not write the results into {} ({}); they were '
                      'written to {} instead'.format(out, failure, fallback))


def describe_failure(error, path):
    """An OSError as ``path: why`` (or the whole problem if it says it).

    Args:
        error (OSError): What failed.
        path (str): The path to name if ``error`` names none.

    """
    if error.strerror and error.strerror.startswith(str(error.filename)):
        return error.strerror
    return '{}: {}'.format(error.filename or path, error.strerror or error)
