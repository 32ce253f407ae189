"""Writing results: whole files or none, and what produced them."""
import contextlib
import csv
import io
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading

import chainer
import numpy

from minibatch_hybrid import _compat
from minibatch_hybrid._version import __version__


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
        import cupy
        info['cupy'] = cupy.__version__
    if device is not None:
        info['device'] = str(device)
    info['minibatch_hybrid'] = __version__
    info['compat_shims'] = list(_compat.APPLIED)
    from minibatch_hybrid import native  # the kernel set changes no result
    info['cpu'] = _cpu_model()
    try:
        info['native_kernels'] = native.kernels() if native.available() \
            else None
    except native.NativeUnavailable as e:  # a bad MINIBATCH_HYBRID_KERNELS
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


class OutputError(ValueError):
    """An output folder cannot take a run's results (the message says why)."""


def check_output_dir(out):
    """Makes sure results can be written into folder ``out``, before work.

    Creates the folder if needed and writes (and removes) a small file in
    it, so that a path naming a file, a path under a file, a place nobody
    may write and a read-only or full file system are reported before a
    run starts, in one line.

    Returns:
        list of str: Names of files already in the folder.

    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError('the output folder {} is a file; give a folder '
                          '(--out)'.format(out))
    try:
        os.makedirs(out, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix='.write-test-')
        try:
            os.write(fd, b'\0' * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
        return sorted(os.listdir(out))
    except OSError as e:
        raise OutputError('cannot write into the output folder {}: {}; give '
                          'another --out'.format(out, e.strerror or e)) \
            from None


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
    inside ``out``; then all are moved into place with Ctrl-C held back, so
    an interruption leaves either the earlier files or all the new ones.

    Returns:
        list of str: The paths written.

    """
    os.makedirs(out, exist_ok=True)
    staging = tempfile.mkdtemp(dir=out, prefix='.staging-')
    try:
        for name, write in writers.items():
            write(os.path.join(staging, name))
        with _interrupts_held():
            for name in writers:
                os.replace(os.path.join(staging, name),
                           os.path.join(out, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [os.path.join(out, name) for name in writers]


def save_results(out, writers, prefix='minibatch-hybrid-'):
    """Writes a result set into ``out``; if that fails, somewhere else.

    A run's results are never lost to a full or broken disk: when writing
    into ``out`` fails, they go to a new folder in the system's temporary
    directory, and :class:`OutputError` says where.

    Returns:
        list of str: The paths written (in ``out``).

    """
    try:
        return write_result_set(out, writers)
    except OSError as e:
        failure = '{}: {}'.format(e.filename or out, e.strerror or e)
    try:
        fallback = tempfile.mkdtemp(prefix=prefix)
        write_result_set(fallback, writers)
    except OSError as e:
        raise OutputError('could not write the results into {} ({}), nor '
                          'anywhere else ({}); they are lost'.format(
                              out, failure, e.strerror or e)) from None
    raise OutputError('could not write the results into {} ({}); they were '
                      'written to {} instead'.format(out, failure, fallback))
