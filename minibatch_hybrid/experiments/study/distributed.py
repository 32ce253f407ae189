"""A study's chunks as tasks on a Dask cluster (``dask.distributed``).

Dask is optional (``pip install 'minibatch_hybrid[distributed]'``); the
faults handled here, and why, are in ``docs/distributed.md``.
"""
import contextlib
import logging
import os
import re
import signal
import socket
import struct
import threading
import time
import uuid

from minibatch_hybrid.kernels import threads
from minibatch_hybrid import _interrupts
from minibatch_hybrid import engines
from minibatch_hybrid._version import __version__
from minibatch_hybrid.errors import Error
from minibatch_hybrid.errors import frame_scopes
from minibatch_hybrid.experiments.study.folder import StudyFolderError
from minibatch_hybrid.experiments.study.run import train_chunk

CONNECT_TIMEOUT = 10  #: Seconds to reach a scheduler, greeting included.
CHECK_INTERVAL = 2  #: Seconds between two questions to a scheduler.
ANSWER_TIMEOUT = CONNECT_TIMEOUT  #: Seconds a scheduler has to answer one.
NO_WORKERS_TIMEOUT = 20  #: Seconds a cluster may be without workers.
CLOSE_TIMEOUT = 5  #: Seconds to close Dask's client.
WORKERS_PER_CORE = 2  #: Local worker processes allowed per core.
GREETING_LIMIT = 1 << 16  #: The most bytes a scheduler's greeting may take.

_RERUN = 'rerun the same command (with a scheduler that runs)'

#: The loggers, with their children, of Dask and those it runs on.
_LOGGERS = ('distributed', 'tornado', 'asyncio')


class ClusterError(Error, ValueError):
    """The cluster cannot be used for this study (the message says why)."""


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            'running a study on a cluster needs Dask: pip install '
            '"minibatch_hybrid[distributed]" (or dask[distributed])') from None
    return distributed


def _one_line(error):
    return '{}: {}'.format(type(error).__name__,
                           (str(error).splitlines() or [''])[0])


def parse_address(text):
    """Checks a scheduler address as Dask reads it (``tcp://`` only).

    Args:
        text (str): ``[tcp://]HOST:PORT``, an IPv6 host in brackets.

    Returns:
        tuple: ``('tcp://HOST:PORT', host, port)``, ``host`` unbracketed.

    """
    scheme, sep, rest = text.strip().rpartition('://')
    match = re.match(r'^(?:\[([0-9A-Fa-f:.%\w]+)\]|([^\s:/\[\]@]+))'
                     r':([0-9]+)$', rest)
    port = int(match.group(3)) if match else None
    if sep and scheme.lower() != 'tcp':
        why = 'uses {}://, and only tcp:// is supported'.format(scheme)
    elif not match:
        why = 'is not one Dask takes'
    elif not 1 <= port <= 65535:
        why = 'has port {}: a port is from 1 to 65535 (a scheduler ' \
            'listens on 8786 by default)'.format(port)
    else:
        return ('tcp://{}:{}'.format(rest.rpartition(':')[0], port),
                match.group(1) or match.group(2), port)
    raise ClusterError(
        'the scheduler address {!r} {}; give tcp://HOST:PORT (what "dask '
        'scheduler" prints; an IPv6 host in brackets, tcp://[::1]:8786)'
        .format(text, why))


def check_local_workers(workers, cores=None):
    """Refuses a local cluster of more than :data:`WORKERS_PER_CORE`
    workers per core (``cores``: those this process may use)."""
    if isinstance(workers, bool) or not isinstance(workers, int) \
            or workers < 1:
        raise ClusterError('--workers must be a positive integer, got '
                           '{!r}'.format(workers))
    cores = threads.cores() if cores is None else cores
    limit = WORKERS_PER_CORE * cores
    if workers > limit:
        raise ClusterError(
            '--workers {} is far more than the {} cores this process may use '
            'can run: give at most {} ({} per core; each worker trains a '
            'chunk at a time), or use --scheduler for a cluster of several '
            'machines'.format(workers, cores, limit, WORKERS_PER_CORE))


def _greeting(host, port, address, timeout):
    """Checks within ``timeout`` s that a Dask scheduler greets at
    ``host``:``port`` (Dask's own wait for it has no bound); returns the
    seconds left."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise ClusterError(
            'cannot reach the Dask scheduler at {} within {} s ({}); start '
            'one with "dask scheduler" and check the address'.format(
                address, timeout, 'no answer to the connection'
                if isinstance(e, socket.timeout) else e.strerror or e)) \
            from None

    def read(n):
        data = b''
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout
            sock.settimeout(left)
            part = sock.recv(n - len(data))
            if not part:
                raise EOFError
            data += part
        return data

    with sock:
        try:
            # A framed message that names the pickle protocol, sent unasked.
            size, = struct.unpack('<Q', read(8))
            if not 16 <= size <= GREETING_LIMIT or \
                    b'pickle-protocol' not in read(size):
                raise ValueError
        except socket.timeout:
            why = 'did not greet as a Dask scheduler within {} s: it is not ' \
                'one (a dashboard, often on port 8787, is not), or it is ' \
                'stuck'.format(timeout)
        except EOFError:
            why = 'is not a Dask scheduler (it closed the connection ' \
                'without Dask\'s greeting)'
        except ValueError:
            why = 'is not a Dask scheduler (it answered something else)'
        except OSError as e:
            why = 'is not a Dask scheduler (the connection failed: {})'.format(
                e.strerror or e)
        else:
            return max(0.1, deadline - time.monotonic())
    raise ClusterError('the listener at {} {}; give the address "dask '
                       'scheduler" prints (tcp://HOST:8786 by default)'
                       .format(address, why))


def _silence():
    """Silences Dask's loggers; returns the function that restores them."""
    # Each of them: Dask's configuration gives some a level of their own.
    loggers = [logging.getLogger(name) for name in set(_LOGGERS).union(
        logging.root.manager.loggerDict) if name.split('.')[0] in _LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)

    def restore():
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return restore


def dask_setup(worker):
    """Dask's preload hook in each local worker: Ctrl-C is the client's,
    and the worker's logs stay silent (a failure reaches the client)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _silence()


class Cluster(object):
    """A Dask cluster to run a study's chunks on; a context manager.

    A local cluster starts worker processes: in a script, create it under
    ``if __name__ == '__main__':``.  In the package's commands, a SIGTERM
    while it is open is taken as a Ctrl-C.

    Args:
        scheduler (str): Address of a running scheduler, e.g.
            ``'tcp://10.0.0.5:8786'`` (``dask scheduler`` prints it).
        workers (int): Instead, start a local cluster of this many worker
            processes (:func:`check_local_workers`).
        timeout (float): Seconds to wait for the scheduler.

    """

    def __init__(self, scheduler=None, workers=None, timeout=CONNECT_TIMEOUT):
        if (scheduler is None) == (workers is None):
            raise ClusterError('give a scheduler address or a number of '
                               'local workers (not both)')
        if scheduler is not None:
            self.address, host, port = parse_address(scheduler)
        else:
            check_local_workers(workers)
        distributed = _distributed()
        self.client = self._local = None
        self._termination = _interrupts.Termination()
        self._restore_logs = _silence()
        try:
            if scheduler is not None:
                # Plain sockets: a Ctrl-C ends this wait at once.
                left = _greeting(host, port, self.address, timeout)
            with _interrupts.deferred(self._termination):
                if scheduler is None:
                    self._start_local(distributed, workers)
                else:
                    self._connect(distributed, left, timeout)
        except BaseException:
            self.close()
            raise

    def _connect(self, distributed, left, timeout):
        try:
            self.client = distributed.Client(
                self.address, timeout=left, set_as_default=False)
        except Exception as e:
            # A client left half started would be closed at exit, after
            # Dask's loop stopped: slowly, with a traceback.
            for scope in frame_scopes(e):
                if isinstance(scope.get('self'), distributed.Client):
                    with contextlib.suppress(Exception):
                        scope['self'].close(timeout=CLOSE_TIMEOUT)
                    break
            raise ClusterError(
                'cannot connect to the Dask scheduler at {} within {} s ({}); '
                'check that it runs this version of Dask, and the '
                'address'.format(self.address, timeout, _one_line(e))) \
                from None

    def _start_local(self, distributed, workers):
        self._local = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True,
            host='127.0.0.1', dashboard_address=None,
            # Its HTTP server on a free port: a taken 8787 is no warning.
            scheduler_kwargs={'dashboard_address': '127.0.0.1:0'},
            silence_logs=logging.ERROR, preload=[__name__],
            env={threads.THREADS_VARIABLE: str(
                max(1, threads.workers() // workers))})
        self.client = distributed.Client(self._local, set_as_default=False)
        self.address = self._local.scheduler_address

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the client and the local cluster, if any (quietly)."""
        termination, self._termination = self._termination, None
        try:
            with _interrupts.deferred(termination, ctrl_c=False):
                with contextlib.suppress(Exception):
                    if self.client is not None:
                        self.client.close(timeout=CLOSE_TIMEOUT)
                with contextlib.suppress(Exception):
                    if self._local is not None:
                        self._local.close()
        finally:
            self.client = self._local = None
            if self._restore_logs is not None:
                self._restore_logs()
                self._restore_logs = None
            if termination is not None:
                termination.restore()

    @staticmethod
    def check_engine(engine):
        """Refuses engines whose bits depend on the machine."""
        if not engines.is_native(engine):
            raise ClusterError(
                'a study runs on a cluster with the native engine only: its '
                'numbers are the same on every CPU, the {} engine\'s follow '
                'each machine\'s BLAS library; use --engine native (or '
                'auto), or run without --scheduler/--workers'.format(engine))

    def check_workers(self, engine):
        """Refuses a cluster where a worker would compute other bits: one
        without the kernels or this version (later ones: the task's check).
        """
        self.check_engine(engine)

        def probe(version):
            # Sent by value: it answers even where the package is missing.
            try:
                import minibatch_hybrid
                from minibatch_hybrid import kernels
            except ImportError as e:
                return 'cannot import minibatch_hybrid ({})'.format(e)
            if minibatch_hybrid.__version__ != version:
                return 'runs minibatch_hybrid ' + minibatch_hybrid.__version__
            return None if kernels.available() else \
                'cannot run the native engine'

        try:
            answers = self.client.run(probe, __version__)
        except Exception as e:
            raise ClusterError('could not ask the workers at {} what they '
                               'run: {}'.format(self.address, _one_line(e))) \
                from None
        if not answers:
            raise ClusterError(
                'the cluster at {} has no workers; start some with "dask '
                'worker {}"'.format(self.address, self.address))
        bad = ['{} {}'.format(address, problem)
               for address, problem in sorted(answers.items()) if problem]
        if bad:
            raise ClusterError(
                'workers that would compute other numbers are not mixed in: '
                '{}; install minibatch_hybrid {} with its compiled kernels on '
                'every worker (or use --engine numpy)'.format(
                    '; '.join(bad), __version__))

    def run(self, config, engine, folder, todo, progress):
        """Runs the chunks ``todo`` as tasks; saves each as it arrives.

        A fault stops the run in one line; what was saved stays saved, and
        the chunks finished on the workers are saved too.
        """
        distributed = _distributed()
        chunks = config.chunks()
        run = uuid.uuid4().hex  # keys no other client shares
        futures = {self.client.submit(
            train_chunk, config, engine, chunks[index], __version__,
            key='minibatch-hybrid-{}-chunk-{}'.format(run, index),
            pure=False): index for index in todo}
        left = dict(futures)
        try:
            done = distributed.as_completed(futures, loop=self.client.loop)
            for n, future in enumerate(self._arrivals(done, folder), 1):
                index = left.pop(future)
                try:
                    self._save(folder, index, future)
                except (ClusterError, StudyFolderError, OSError) as e:
                    raise self._salvage(folder, left, e) from None
                progress.update(n, 'chunk {} saved'.format(index))
            if left:
                self._check_scheduler(folder)
                raise self._stopped(
                    folder, 'cluster', 'stopped answering after {} of the {} '
                    'chunks this run gave it'.format(
                        len(futures) - len(left), len(futures)),
                    'rerun the same command')
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures))
            raise

    def _arrivals(self, done, folder):
        """Yields the finished tasks of ``done`` (Dask's ``as_completed``);
        while none is, asks the scheduler whether it answers and has
        workers (Dask alone would wait for ever)."""
        next_check = time.monotonic() + CHECK_INTERVAL
        alone = None  # since when the cluster has had no worker
        while not done.is_empty():
            if done.has_ready():
                yield next(done)
                continue
            if time.monotonic() >= next_check:
                self._check_scheduler(folder)
                try:
                    info = self.client.sync(self.client.scheduler.identity,
                                            callback_timeout=ANSWER_TIMEOUT)
                except Exception:
                    self._check_scheduler(folder)  # it went away meanwhile
                    raise self._stopped(
                        folder, 'scheduler', 'stopped answering (no answer '
                        'within {} s)'.format(ANSWER_TIMEOUT), _RERUN) \
                        from None
                now = time.monotonic()
                if info.get('workers'):
                    alone = None
                elif alone is None:
                    alone = now
                elif now - alone >= NO_WORKERS_TIMEOUT:
                    raise self._stopped(
                        folder, 'cluster', 'has had no worker for {} '
                        's'.format(NO_WORKERS_TIMEOUT), 'start workers ("dask '
                        'worker {}") and rerun the same command'.format(
                            self.address))
                next_check = now + CHECK_INTERVAL
            time.sleep(0.1)  # as as_completed itself waits

    def _stopped(self, folder, what, happened, fix):
        return ClusterError(
            'the Dask {} at {} {}; {} of {} chunks are saved in {}: {} to '
            'continue from them'.format(
                what, self.address, happened, len(folder.saved()),
                len(folder.config.chunks()), folder.out, fix))

    def _check_scheduler(self, folder):
        if self.client.status != 'running':
            raise self._stopped(folder, 'scheduler', 'went away', _RERUN)

    def _save(self, folder, index, future):
        """Takes a finished task's chunk and saves it (``folder.save``)."""
        try:
            data = future.result()
        except Exception as e:
            self._check_scheduler(folder)
            raise ClusterError('chunk {} failed on the cluster: {}'.format(
                index, _one_line(e))) from None
        folder.save(index, data)

    def _salvage(self, folder, left, error):
        """Saves the chunks of ``left`` that finished before ``error``
        stopped the run; returns the error to raise, which counts them."""
        if self.client.status != 'running':
            return error  # nothing more can be fetched
        rescued, failures = [], []
        for future, index in sorted(left.items(), key=lambda f: f[1]):
            if future.status == 'finished':
                try:
                    self._save(folder, index, future)
                    rescued.append(index)
                except (ClusterError, StudyFolderError, OSError) as e:
                    failures.append(str(e))
        if not rescued and not failures:
            return error  # its count is true
        parts = [str(error)]
        if rescued:
            many = len(rescued) > 1
            parts.append('the chunk{} {} that had finished on the cluster '
                         '{} saved in {} as well'.format(
                             's' if many else '', ', '.join(map(str, rescued)),
                             'were' if many else 'was',
                             os.path.join(folder.out, 'chunks')))
        parts += failures + ['in all, {} of {} chunks are saved in {}'.format(
            len(folder.saved()), len(folder.config.chunks()),
            os.path.join(folder.out, 'chunks'))]
        cls = StudyFolderError if isinstance(error, StudyFolderError) \
            else ClusterError
        return cls('; '.join(parts))
