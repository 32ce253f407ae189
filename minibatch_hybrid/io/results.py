"""Writing results: whole files or none, never lost to a full disk, and
what produced them (docs/faults.md)."""
import contextlib
import csv
import errno
import fcntl
import io
import json
import os
import platform
import shutil
import stat
import sys
import tempfile

import chainer
import numpy

from minibatch_hybrid import _compat
from minibatch_hybrid import _interrupts
from minibatch_hybrid import kernels
from minibatch_hybrid._version import __version__
from minibatch_hybrid.errors import Error
from minibatch_hybrid.errors import FileError

#: Reading without following a link, waiting on a FIFO, or a child's copy.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def atomic_write(path, write, binary=False):
    """Writes file ``path`` whole or not at all: ``write(f)`` writes into
    a temporary file beside it (opened in binary mode if ``binary``), which
    then replaces it, or is removed if ``write`` raises."""
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
        # Gone if a Ctrl-C came just after the replace: the file is whole.
        with contextlib.suppress(FileNotFoundError):
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


def save_figure(figure, path):
    """Saves a matplotlib figure as PNG, atomically."""
    def write(f):
        buffer = io.BytesIO()
        figure.savefig(buffer, format='png', dpi=120)
        f.write(buffer.getvalue())
    atomic_write(path, write, binary=True)


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


class OutputError(Error, ValueError):
    """An output folder cannot take a run's results (the message says why)."""


def check_output_dir(out, clean=True, targets=()):
    """Makes sure results can be written into folder ``out``, before work.

    Args:
        out (str): The output folder, created if needed.
        clean (bool): Remove the staging folders of killed runs.
        targets (tuple of str): Names of the result files the run will
            write there (:func:`check_output_targets`).

    Returns:
        list of str: Names of files already in the folder.

    """
    if not out:
        raise OutputError('the output folder is empty text; give a folder '
                          '(--out)')
    try:
        os.stat(out)
    except OSError as e:
        if os.path.islink(out):
            why = 'a loop of links' if e.errno == errno.ELOOP else \
                'its target {} does not exist'.format(os.readlink(out))
            raise OutputError('the output folder {} is a link that leads '
                              'nowhere ({}); give a folder (--out)'.format(
                                  out, why)) from None
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


def check_output_targets(out, names):
    """Raises :class:`OutputError` if anything but a file is where one of
    the result files ``names`` goes in folder ``out``."""
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
                       (stat.S_ISLNK, 'a link'), (stat.S_ISFIFO, 'a FIFO'),
                       (stat.S_ISCHR, 'a character device'),
                       (stat.S_ISBLK, 'a block device'),
                       (stat.S_ISSOCK, 'a socket')):
        if test(mode):
            return name
    return 'not a regular file'


def open_regular(path, refuse=None):
    """Opens ``path`` for reading bytes if it is a regular file, not a link.

    Anything else (a FIFO, a device) is refused unread: ``refuse(path,
    why)`` makes the error (default: :class:`FileError` ``'PATH is WHY'``).
    """
    fd = None
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        fd = os.open(path, _READ_FLAGS)
        mode = os.fstat(fd).st_mode  # it may have changed since lstat
    if not stat.S_ISREG(mode):
        if fd is not None:
            os.close(fd)
        why = '{}, not a regular file; nothing was read from it'.format(
            file_kind(mode))
        if refuse is None:
            raise FileError('{} is {}'.format(path, why))
        raise refuse(path, why)
    return os.fdopen(fd, 'rb')


#: A run stages its result files in ``out/.staging-PID-XXXX``, marked as
#: this package's by a file that the run holds an ``flock`` on.
STAGING_PREFIX = '.staging-'
STAGING_MARKER = '.minibatch-hybrid-staging'


def remove_left_over(folder, remove):
    """Returns the entries of ``folder`` that ``remove(name, path)``
    removed (it returns True; False or an OSError: not removed)."""
    removed, names = [], []
    with contextlib.suppress(OSError):
        names = sorted(os.listdir(folder))
    for name in names:
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if remove(name, path):
                removed.append(path)
    return removed


def _remove_if_stale(name, path):
    # An OSError: not ours, or its run still writes into it.
    if not name.startswith(STAGING_PREFIX) or os.path.islink(path) or \
            not os.path.isdir(path):
        return False
    fd = os.open(os.path.join(path, STAGING_MARKER), _READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        shutil.rmtree(path, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def remove_stale_staging(out):
    """Removes the staging folders in ``out`` that killed runs left (on
    any host); returns them."""
    return remove_left_over(out, _remove_if_stale)


def write_result_set(out, writers):
    """Writes a run's files so that they appear together or not at all.

    Each ``writers[name](path)`` writes its file into a staging folder in
    ``out``, then all are moved into place with Ctrl-C held back.  Returns
    the paths written; an OSError names the path in ``out`` that failed.

    """
    os.makedirs(out, exist_ok=True)
    remove_stale_staging(out)
    for name in writers:
        target = os.path.join(out, name)
        if _target_problem(target):
            raise OSError(errno.EISDIR if os.path.isdir(target)
                          else errno.EEXIST, _target_problem(target), target)
    staging = tempfile.mkdtemp(
        dir=out, prefix='{}{}-'.format(STAGING_PREFIX, os.getpid()))
    fd = None
    try:
        # The marker is locked before it has its name, so that no other
        # run can find it unlocked (:func:`remove_stale_staging`).
        fd, tmp = tempfile.mkstemp(dir=staging, prefix='.marker-')
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, os.path.join(staging, STAGING_MARKER))
        for name, write in writers.items():
            write(os.path.join(staging, name))
        with _interrupts.blocked():
            for name in writers:
                try:
                    os.replace(os.path.join(staging, name),
                               os.path.join(out, name))
                except OSError as e:
                    raise OSError(e.errno, e.strerror,
                                  os.path.join(out, name)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if fd is not None:
            os.close(fd)
    return [os.path.join(out, name) for name in writers]


def write_elsewhere(out, prefix, write):
    """Tries each place until ``write(folder)`` works in a new folder
    ``prefix...`` there: beside ``out``, in the user's cache folder, in the
    temporary folder.  No folder is left behind where it fails.

    Returns:
        tuple: ``(folder, failures)``: the folder written (None if none
        could be), and ``'place (why)'`` for each place that failed.

    """
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(
        os.path.expanduser('~'), '.cache')
    places = {}  # each real place once
    for place in (os.path.dirname(os.path.abspath(out)),
                  os.path.join(cache, 'minibatch-hybrid'),
                  tempfile.gettempdir()):
        places.setdefault(os.path.realpath(place), place)
    failures = []
    for place in places.values():
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
                with contextlib.suppress(OSError):
                    os.rmdir(path)
    return None, failures


def save_results(out, writers, prefix='minibatch-hybrid-'):
    """:func:`write_result_set` into ``out``; if that fails, elsewhere
    (:func:`write_elsewhere`), and :class:`OutputError` says where."""
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
    """An OSError as ``path: why`` (or its message, if it names the path);
    ``path`` is named if ``error`` names none."""
    if error.strerror and error.strerror.startswith(str(error.filename)):
        return error.strerror
    return '{}: {}'.format(error.filename or path, error.strerror or error)
