"""Writing results: whole files or none, and what produced them."""
import csv
import io
import json
import os
import platform
import sys
import tempfile

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
    info['native_kernels'] = native.kernels() if native.available() else None
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
