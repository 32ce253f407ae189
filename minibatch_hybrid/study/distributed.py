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
import uuid

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
                # The scheduler's HTTP server runs without a dashboard too:
                # on a free port, not 8787, so that a taken 8787 (another
                # run, a user's dashboard) is no warning.
                scheduler_kwargs={'dashboard_address': '127.0.0.1:0'},
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

    @staticmethod
    def check_engine(engine):
        """Refuses engines whose bits depend on the machine."""
        if not native.is_native(engine):
            raise ClusterError(
                'a study runs on a cluster with the native engine only: its '
                'numbers are the same on every CPU, the {} engine\'s follow '
                'each machine\'s BLAS library; use --engine native (or '
                'auto), or run without --scheduler/--workers'.format(engine))

    def check_workers(self, engine):
        """Refuses a cluster where a worker would compute other bits.

        Studies run on a cluster with the native engine only: its numbers
        are the same on every CPU that runs it (the numpy engine's follow
        each machine's BLAS).  Every worker must run this version of the
        package and be able to run the kernels (which kernel set does not
        matter).  Workers that join later are checked by the task itself.
        """
        self.check_engine(engine)

        def probe():
            # Sent by value: it answers even where the package is missing.
            try:
                import minibatch_hybrid
                from minibatch_hybrid import native as kernels
            except ImportError as e:
                return {'version': None, 'native': False, 'error': str(e)}
            return {'version': minibatch_hybrid.__version__,
                    'native': kernels.available()}

        try:
            infos = self.client.run(probe)
        except Exception as e:
            raise ClusterError('could not ask the workers at {} what they '
                               'run: {}: {}'.format(
                                   self.address, type(e).__name__,
                                   str(e).splitlines()[0] if str(e)
                                   else '')) from None
        if not infos:
            raise ClusterError(
                'the cluster at {} has no workers; start some with "dask '
                'worker {}"'.format(self.address, self.address))
        bad = []
        for address, info in sorted(infos.items()):
            if info['version'] is None:
                bad.append('{} cannot import minibatch_hybrid ({})'.format(
                    address, info.get('error')))
            elif info['version'] != __version__:
                bad.append('{} runs minibatch_hybrid {}'.format(
                    address, info['version']))
            elif not info['native']:
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
        run = uuid.uuid4().hex  # keys no other client shares
        futures = {}
        for index in todo:
            future = self.client.submit(
                train_chunk, config, engine, chunks[index], __version__,
                key='minibatch-hybrid-{}-chunk-{}'.format(run, index),
                pure=False)
            futures[future] = index
        try:
            done = distributed.as_completed(futures, loop=self.client.loop)
            for n, future in enumerate(done, 1):
                index = futures[future]
                try:
                    data = future.result()
                except Exception as e:
                    raise ClusterError(
                        'chunk {} failed on the cluster: {}: {}'.format(
                            index, type(e).__name__,
                            str(e).splitlines()[0] if str(e) else '')) \
                        from None
                # What the worker says it trained must be this chunk.
                expected = folder.record(index, chunks[index])
                if data.get('record') != {k: expected[k] for k in (
                        'config', 'engine', 'version', 'seeds')}:
                    raise ClusterError(
                        'the cluster returned another study\'s result for '
                        'chunk {}; nothing of it was saved'.format(index))
                folder.save(index, data)
                progress.update(n, 'chunk {} saved'.format(index))
        except BaseException:
            self.client.cancel(list(futures))
            raise
