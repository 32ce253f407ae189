"""Splitting independent work across the CPU's cores.

Threads work on disjoint slices of the same arrays (NumPy and the kernels
release the GIL); a slice's result does not depend on the split, so the
bits are the same with one thread or many.
"""
import concurrent.futures
import os

from minibatch_hybrid.errors import SettingsError

_pool = None

#: The environment variable that sets the threads (:func:`check_threads`).
THREADS_VARIABLE = 'MINIBATCH_HYBRID_THREADS'

#: Threads allowed per core: more only slow the work down.
THREADS_PER_CORE = 4


def cores():
    """Returns the number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_threads(value=None):
    """Returns the thread count ``MINIBATCH_HYBRID_THREADS`` (or
    ``value``) asks for, None if unset or empty; a SettingsError unless an
    integer from 1 to :data:`THREADS_PER_CORE` times :func:`cores`."""
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
    """Returns the number of threads to use: ``MINIBATCH_HYBRID_THREADS``
    if set (:func:`check_threads`), else the cores this process may use."""
    return check_threads() or cores()


def slices(n, parts):
    """Returns up to ``parts`` contiguous slices that cover ``range(n)``."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def run(function, parts):
    """Calls ``function(part)`` for each part, in parallel; the calling
    thread takes the first part itself."""
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
