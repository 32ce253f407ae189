"""Argument checks shared by the package, with messages that say the fix.

Each raises :class:`~minibatch_hybrid.errors.SettingsError`.
"""
import os

from minibatch_hybrid.errors import SettingsError

#: Seeds are NumPy RandomState's, which draws the initial weights.
SEED_LIMIT = 2 ** 32


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(value, what):
    """Raises SettingsError unless ``value`` is an integer >= 1."""
    if not _is_int(value) or value <= 0:
        raise SettingsError('{} must be a positive integer, got {!r}'.format(
            what, value))


def check_batchsize(batchsize, size):
    """Raises SettingsError unless ``1 <= batchsize <= size``."""
    if not _is_int(batchsize) or not 1 <= batchsize <= size:
        raise SettingsError(
            'batch size must be an integer from 1 to the data set size {}, '
            'got {!r}'.format(size, batchsize))


def check_seed(value, what='seed'):
    """Raises SettingsError unless ``value`` is an integer in [0, 2**32)."""
    if not _is_int(value) or value < 0:
        raise SettingsError(
            '{} must be a non-negative integer, got {!r}'.format(what, value))
    if value >= SEED_LIMIT:
        raise SettingsError('{} must be below 2**32 = 4294967296 (NumPy\'s '
                            'RandomState draws the initial weights), got '
                            '{}'.format(what, value))


def available_memory():
    """Bytes this process can take for a new allocation (None if unknown):
    what the machine has free, less under ``ulimit -v``."""
    free = _machine_free()
    limit = _address_space_left()
    if limit is None:
        return free
    return limit if free is None else min(free, limit)


def _machine_free():
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return None


def _address_space_left():
    """Bytes left under ``RLIMIT_AS`` (None: no limit, or unknown)."""
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open('/proc/self/statm') as f:
            used = int(f.read().split()[0]) * os.sysconf('SC_PAGE_SIZE')
    except (ImportError, OSError, ValueError, IndexError, AttributeError):
        return None
    return max(0, soft - used)


def check_memory(needed, what, fix, available=None):
    """Raises SettingsError if ``needed`` bytes are more than are free.

    Args:
        needed (int): Bytes the work needs, roughly.
        what (str): What needs them ("this study", ...).
        fix (str): What the user can lower.
        available (int): Bytes free (default: measured).

    """
    available = available_memory() if available is None else available
    if available is not None and needed > available:
        raise SettingsError('{} needs about {:.3g} GB of memory, and this '
                            'machine has {:.3g} GB free; {}'.format(
                                what, needed / 1e9, available / 1e9, fix))
