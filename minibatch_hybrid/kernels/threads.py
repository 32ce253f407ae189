"""Splitting independent NumPy work across the CPU's cores.

NumPy releases the GIL inside its matrix products and ufuncs, so threads
that work on disjoint slices of the same arrays run in parallel.  Each
slice's result does not depend on how the work is split, so results are the
same bits with one thread or many.
"""
import concurrent.futures
import os

from minibatch_hybrid.errors import SettingsError

_pool = None

#: The environment variable that sets the threads (a local Dask cluster
#: gives each worker process its share of the cores).  It takes an integer
#: from 1 to :data:`THREADS_PER_CORE` times the cores this process may use;
#: anything else is refused (:func:`check_threads`).
THREADS_VARIABLE = 'MINIBATCH_HYBRID_THREADS'

#: Threads allowed per core: more only slow the work down (each thread
#: takes a slice of the same arrays) and cost memory.
THREADS_PER_CORE = 4


def cores():
    """Returns the number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_threads(value=None):
    """Returns the thread count ``MINIBATCH_HYBRID_THREADS`` asks for.

    Args:
        value (str): The variable's value (default: read from the
            environment).  Unset or empty means all the cores.

    Returns:
        int or None: The count, or None if the variable is unset or empty.

    Raises:
        SettingsError: Unless the value is an integer from 1 to
            :data:`THREADS_PER_CORE` times :func:`cores`, in one line that
            names the variable, the value and the range.

    """
    if value is None:
        value = os.environ.get(THREADS_VARIABLE, '')
    text = value.strip()
    if not text:
        return None
    n = cores()
    limit = THREADS_PER_CORE * n
    if text.isascii() and text.isdigit() and 1 <= int(text) <= limit:
        return int(text)
    raise SettingsError(
        '{}={!r} is not a thread count: give an integer from 1 to {} ({} '
        'per core, of the {} this process may use), or unset it to use '
        'every core'.format(THREADS_VARIABLE, value, limit, THREADS_PER_CORE,
                            n))


def workers():
    """Returns the number of threads to use: the cores this process may use,
    or ``MINIBATCH_HYBRID_THREADS`` if that is set (a bad value raises
    SettingsError, see :func:`check_threads`)."""
    return check_threads() or cores()


def slices(n, parts):
    """Returns up to ``parts`` contiguous slices that cover ``range(n)``."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def run(function, parts):
    """Calls ``function(part)`` for each part, in parallel when worthwhile.

    The calling thread takes the first part itself: one hand-over fewer.
    """
    global _pool
    if len(parts) == 1:
        function(parts[0])
        return
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(
            workers(), thread_name_prefix='minibatch_hybrid')
    futures = [_pool.submit(function, part) for part in parts[1:]]
    try:
        function(parts[0])
    finally:
        for future in futures:
            future.result()
