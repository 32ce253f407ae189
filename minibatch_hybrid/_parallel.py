"""Splitting independent NumPy work across the CPU's cores.

NumPy releases the GIL inside its matrix products and ufuncs, so threads
that work on disjoint slices of the same arrays run in parallel.  Each
slice's result does not depend on how the work is split, so results are the
same bits with one thread or many.
"""
import concurrent.futures
import os

_pool = None

#: The environment variable that caps the threads (a local Dask cluster
#: gives each worker process its share of the cores).
THREADS_VARIABLE = 'MINIBATCH_HYBRID_THREADS'


def workers():
    """Returns the number of threads to use: the cores this process may use,
    or ``MINIBATCH_HYBRID_THREADS`` if that is set."""
    value = os.environ.get(THREADS_VARIABLE, '').strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
