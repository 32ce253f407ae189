"""Studies that outgrow one machine, on Dask (``dask.distributed``).

A study is a set of independent chunks whose results do not depend on
where they ran, which is the work Dask's scheduler already knows how to
spread over processes and machines, to rerun when a worker dies, and to
cancel.  This module only connects to a cluster (a running scheduler, or a
local cluster of worker processes), checks that every worker would compute
the client's bits, submits :func:`~minibatch_hybrid.study.run.train_chunk`
per chunk and saves each result on the client as it arrives.

Without a cluster nothing here is imported: Dask is an optional
dependency, ``pip install 'minibatch_hybrid[distributed]'``.
"""
import logging
import os
import platform

from minibatch_hybrid import _parallel
from minibatch_hybrid import native
from minibatch_hybrid._version import __version__

#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT = 10


class ClusterError(ValueError):
    """The cluster cannot be used for this study (the message says why)."""


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            'running a study on a cluster needs Dask: pip install '
            '"minibatch_hybrid[distributed]" (or dask[distributed])') from None
    return distributed


def worker_info():
    """What a worker would compute with: runs on each worker."""
    available = native.available()
    return {'version': __version__, 'native': available,
            'kernels': native.kernels() if available else None,
            'python': platform.python_version(), 'pid': os.getpid()}


class Cluster(object):
    """A Dask cluster to run a study's chunks on; a context manager.

    A local cluster starts worker processes: in a script, create it under
    ``if __name__ == '__main__':``, as for any multiprocessing code.

    Args:
        scheduler (str): Address of a running scheduler, e.g.
            ``'tcp://10.0.0.5:8786'`` (``dask scheduler`` prints it).
        workers (int): Instead, start a local cluster of this many worker
            processes on this machine (each with its share of the cores).
        timeout (float): Seconds to wait for the scheduler.

    """

    def __init__(self, scheduler=None, workers=None, timeout=CONNECT_TIMEOUT):
        if (scheduler is None) == (workers is None):
            raise ClusterError('give a scheduler address or a number of '
                               'local workers (not both)')
        distributed = _distributed()
        self._local = None
        self.address = scheduler
        if scheduler is not None:
            try:
                self.client = distributed.Client(
                    scheduler, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise ClusterError(
                    'cannot reach the Dask scheduler at {} within {} s ({}); '
                    'start one with "dask scheduler" and check the '
                    'address'.format(scheduler, timeout,
                                     str(e).splitlines()[0])) from None
        else:
            if isinstance(workers, bool) or not isinstance(workers, int) \
                    or workers < 1:
                raise ClusterError('--workers must be a positive integer, '
                                   'got {!r}'.format(workers))
            threads = max(1, _parallel.workers() // workers)
            self._local = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                host='127.0.0.1', dashboard_address=None,
                silence_logs=logging.ERROR,
                env={_parallel.THREADS_VARIABLE: str(threads)})
            self.client = distributed.Client(self._local,
                                             set_as_default=False)
            self.address = self._local.scheduler_address

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        self.client.close()
        if self._local is not None:
            self._local.close()

    def check_workers(self, engine):
        """Refuses a cluster where a worker would compute other bits.

        Every worker must run this version of the package and, for the
        native engine, be able to run its kernels (every kernel set gives
        the same bits, so which set does not matter).
        """
        infos = self.client.run(worker_info)
        if not infos:
            raise ClusterError(
                'the cluster at {} has no workers; start some with "dask '
                'worker {}"'.format(self.address, self.address))
        bad = []
        for address, info in sorted(infos.items()):
            if info['version'] != __version__:
                bad.append('{} runs minibatch_hybrid {}'.format(
                    address, info['version']))
            elif native.is_native(engine) and not info['native']:
                bad.append('{} cannot run the native engine'.format(address))
        if bad:
            raise ClusterError(
                'workers that would compute other numbers are not mixed in: '
                '{}; install minibatch_hybrid {} with its compiled kernels on '
                'every worker (or use --engine numpy)'.format(
                    '; '.join(bad), __version__))
        return infos

    def run(self, config, engine, folder, todo, progress):
        """Runs the chunks ``todo`` as tasks; saves each as it arrives.

        A worker that dies costs only its chunk, which the scheduler runs
        again elsewhere.  An interruption (Ctrl-C) cancels what has not
        finished; what was saved stays saved.
        """
        distributed = _distributed()
        from minibatch_hybrid.study.run import train_chunk
        chunks = config.chunks()
        futures = {}
        for index in todo:
            future = self.client.submit(
                train_chunk, config, engine, chunks[index], __version__,
                key='minibatch-hybrid-chunk-{}-{}'.format(index, os.getpid()),
                pure=False)
            futures[future] = index
        try:
            done = distributed.as_completed(futures, loop=self.client.loop)
            for n, future in enumerate(done, 1):
                index = futures[future]
                folder.save(index, future.result())
                progress.update(n, 'chunk {} saved'.format(index))
        except BaseException:
            self.client.cancel(list(futures))
            raise
