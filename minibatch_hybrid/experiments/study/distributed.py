"""Studies that outgrow one machine, on Dask (``dask.distributed``).

A study is a set of independent chunks whose results do not depend on
where they ran, which is the work Dask's scheduler already knows how to
spread over processes and machines, to rerun when a worker dies, and to
cancel.  This module only connects to a cluster (a running scheduler, or a
local cluster of worker processes), checks that every worker would compute
the client's bits, submits
:func:`~minibatch_hybrid.experiments.study.run.train_chunk` per chunk and
saves each result on the client as it arrives.

Without a cluster nothing here is imported: Dask is an optional
dependency, ``pip install 'minibatch_hybrid[distributed]'``.
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
from minibatch_hybrid import _startup
from minibatch_hybrid import engines
from minibatch_hybrid._version import __version__
from minibatch_hybrid.errors import Error
from minibatch_hybrid.experiments.study.folder import StudyFolderError
from minibatch_hybrid.experiments.study.run import train_chunk

#: Seconds to wait for a scheduler (the connection and Dask's greeting on
#: it) before giving up, in one line.
CONNECT_TIMEOUT = 10

#: Local worker processes allowed per core (``--workers``): more only
#: compete for the cores, each with its own memory.
WORKERS_PER_CORE = 2

#: The most bytes a Dask scheduler's greeting may take (a real one: about
#: 60); a listener that announces more is not a scheduler.
GREETING_LIMIT = 1 << 16

_FIX = 'give the address "dask scheduler" prints (tcp://HOST:8786 by default)'


class ClusterError(Error, ValueError):
    """The cluster cannot be used for this study (the message says why)."""


def _distributed():
    # Dask is optional: imported when a cluster is asked for, not before.
    try:
        import distributed
    except ImportError:
        raise ClusterError(
            'running a study on a cluster needs Dask: pip install '
            '"minibatch_hybrid[distributed]" (or dask[distributed])') from None
    return distributed


def parse_address(text):
    """Checks a scheduler address as Dask reads it; returns its parts.

    Dask takes ``[tcp://]HOST:PORT``, with an IPv6 host in brackets
    (``tcp://[::1]:8786``).  Only ``tcp://`` is supported here: the other
    schemes Dask knows (``tls://`` needs certificates, ``inproc://`` a
    scheduler in this process, ``ucx://``, ``ws://`` other libraries) are
    refused at once.

    Args:
        text (str): The address.

    Returns:
        tuple: ``('tcp://HOST:PORT', host, port)``, ``host`` without
        brackets.

    Raises:
        ClusterError: In one line that says what is wrong and the fix.

    """
    address = text.strip()
    scheme, sep, rest = address.rpartition('://')
    if sep and scheme.lower() != 'tcp':
        raise ClusterError(
            'the scheduler address {!r} uses {}://, and only tcp:// is '
            'supported: give tcp://HOST:PORT (what "dask scheduler" '
            'prints)'.format(text, scheme))
    match = re.match(r'^(?:\[([0-9A-Fa-f:.%\w]+)\]|([^\s:/\[\]@]+))'
                     r':([0-9]+)$', rest)
    if not match:
        raise ClusterError(
            'the scheduler address {!r} is not one Dask takes: give '
            'tcp://HOST:PORT (what "dask scheduler" prints; an IPv6 host '
            'in brackets, tcp://[::1]:8786)'.format(text))
    host = match.group(1) or match.group(2)
    port = int(match.group(3))
    if not 1 <= port <= 65535:
        raise ClusterError(
            'the scheduler address {!r} has port {}: a port is from 1 to '
            '65535 (a scheduler listens on 8786 by default)'.format(
                text, port))
    shown = '[{}]'.format(host) if match.group(1) else host
    return 'tcp://{}:{}'.format(shown, port), host, port


def check_local_workers(workers, cores=None):
    """Refuses a local cluster far larger than this machine.

    Args:
        workers (int): Worker processes asked for (``--workers``).
        cores (int): The cores this process may use (default: counted).

    Raises:
        ClusterError: Unless ``1 <= workers <= WORKERS_PER_CORE * cores``.

    """
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
    """Checks, within ``timeout`` seconds, that a Dask scheduler listens at
    ``host``:``port``: it accepts, and sends Dask's greeting (a small framed
    message that names the pickle protocol) unasked, as Dask's servers do.
    Sends nothing; reads at most :data:`GREETING_LIMIT` bytes."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        raise ClusterError(
            'cannot reach the Dask scheduler at {} within {} s (no answer to '
            'the connection); start one with "dask scheduler" and check the '
            'address'.format(address, timeout)) from None
    except OSError as e:
        raise ClusterError(
            'cannot reach the Dask scheduler at {} within {} s ({}); start '
            'one with "dask scheduler" and check the address'.format(
                address, timeout, e.strerror or e)) from None

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

    not_dask = 'the listener at {} is not a Dask scheduler ({}); ' + _FIX
    with sock:
        try:
            size, = struct.unpack('<Q', read(8))
            if not 16 <= size <= GREETING_LIMIT:
                raise ValueError
            if b'pickle-protocol' not in read(size):
                raise ValueError
        except socket.timeout:
            raise ClusterError(
                'the listener at {} did not greet as a Dask scheduler within '
                '{} s: it is not one (a dashboard, often on port 8787, is '
                'not), or it is stuck; {}'.format(address, timeout, _FIX)) \
                from None
        except EOFError:
            raise ClusterError(not_dask.format(
                address, 'it closed the connection without Dask\'s '
                'greeting')) from None
        except ValueError:
            raise ClusterError(not_dask.format(
                address, 'it answered something else')) from None
        except OSError as e:
            raise ClusterError(not_dask.format(
                address, 'the connection failed: {}'.format(
                    e.strerror or e))) from None
    return max(0.1, deadline - time.monotonic())


#: Loggers that Dask sets up with a handler of their own.
_LOGGERS = ('distributed', 'distributed.client', 'distributed.scheduler',
            'distributed.worker', 'distributed.nanny', 'tornado',
            'tornado.application', 'asyncio')

#: Loggers, with their children, whose records are dropped while a
#: cluster is open.
_SILENCED = ('distributed', 'tornado', 'asyncio')


class _Silence(logging.Filter):
    """Drops Dask's records (and those of Tornado and asyncio, which it
    runs on) while a study runs: its failures become one line of this
    package.  Every other record, a user's own logging included, passes."""

    def filter(self, record):
        name = record.name
        return not any(name == n or name.startswith(n + '.')
                       for n in _SILENCED)


def _silence():
    """Silences Dask's loggers; returns the function that restores them."""
    drop = _Silence()
    handlers = set(logging.getLogger().handlers)
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    for logger in loggers:
        handlers.update(logger.handlers)
        logger.addFilter(drop)
    for handler in handlers:
        handler.addFilter(drop)

    def restore():
        for logger in loggers:
            logger.removeFilter(drop)
        for handler in handlers:
            handler.removeFilter(drop)
    return restore


@contextlib.contextmanager
def _deferred_interrupt():
    """Holds a Ctrl-C back while Dask starts (a client, a local cluster),
    then raises it: a KeyboardInterrupt in the middle of Dask's start
    leaves threads and processes behind that print as they die."""
    with _startup.holding_interrupts() as interrupted:
        try:
            yield
        finally:
            # A Ctrl-C held back wins over an error of the block: the user
            # asked to stop (exit status 130), whatever failed meanwhile.
            if interrupted:
                raise KeyboardInterrupt


def dask_setup(worker):
    """Dask's preload hook, run in each local worker process: a Ctrl-C at
    the terminal reaches the whole process group, and the client, not the
    workers, handles it (cancels, closes the cluster)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class Cluster(object):
    """A Dask cluster to run a study's chunks on; a context manager.

    A local cluster starts worker processes: in a script, create it under
    ``if __name__ == '__main__':``, as for any multiprocessing code.

    Args:
        scheduler (str): Address of a running scheduler, e.g.
            ``'tcp://10.0.0.5:8786'`` (``dask scheduler`` prints it).
        workers (int): Instead, start a local cluster of this many worker
            processes on this machine (each with its share of the cores);
            at most :data:`WORKERS_PER_CORE` per core
            (:func:`check_local_workers`, the command's check too).
        timeout (float): Seconds to wait for the scheduler.

    """

    def __init__(self, scheduler=None, workers=None, timeout=CONNECT_TIMEOUT):
        if (scheduler is None) == (workers is None):
            raise ClusterError('give a scheduler address or a number of '
                               'local workers (not both)')
        if scheduler is not None:
            address, host, port = parse_address(scheduler)
        else:
            # The command's check too: a local cluster far larger than
            # this machine is refused, from a library call as well.
            check_local_workers(workers)
        distributed = _distributed()
        self._local = None
        self.client = None
        self.address = scheduler
        # Dask's logs stay silent while the cluster is in use: its
        # failures are told in one line by this class.
        self._restore_logs = _silence()
        try:
            if scheduler is not None:
                self.address = address
                # Plain sockets: a Ctrl-C ends this wait at once.
                left = _greeting(host, port, address, timeout)
                with _deferred_interrupt():
                    self._connect(distributed, left, timeout)
            else:
                with _deferred_interrupt():
                    self._start_local(distributed, workers)
        except BaseException:
            self.close()
            raise

    def _connect(self, distributed, left, timeout):
        try:
            self.client = distributed.Client(
                self.address, timeout=left, set_as_default=False)
        except Exception as e:
            raise ClusterError(
                'cannot connect to the Dask scheduler at {} within {} s ({}: '
                '{}); check that it runs this version of Dask, and the '
                'address'.format(self.address, timeout, type(e).__name__,
                                 (str(e).splitlines() or [''])[0])) from None

    def _start_local(self, distributed, workers):
        per_worker = max(1, threads.workers() // workers)
        self._local = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True,
            host='127.0.0.1', dashboard_address=None,
            # The scheduler's HTTP server runs without a dashboard too:
            # on a free port, not 8787, so that a taken 8787 (another
            # run, a user's dashboard) is no warning.
            scheduler_kwargs={'dashboard_address': '127.0.0.1:0'},
            silence_logs=logging.ERROR,
            # Workers leave a Ctrl-C to the client (dask_setup).
            preload=[__name__],
            env={threads.THREADS_VARIABLE: str(per_worker)})
        self.client = distributed.Client(self._local, set_as_default=False)
        self.address = self._local.scheduler_address

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Closes the client and the local cluster, if any (quietly)."""
        try:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close()
            if self._local is not None:
                with contextlib.suppress(Exception):
                    self._local.close()
        finally:
            self.client = None
            self._local = None
            restore = getattr(self, '_restore_logs', None)
            self._restore_logs = None
            if restore is not None:
                restore()

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
                from minibatch_hybrid import kernels
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
        again elsewhere.  A chunk that fails, or one that cannot be saved
        in the folder (a full disk), stops the run, but the chunks already
        finished on the workers are still taken and saved (in the folder,
        else where :meth:`StudyFolder.save` puts what the folder cannot
        take); only the unfinished ones are cancelled.  An interruption
        (Ctrl-C) cancels what has not been saved; what was saved stays
        saved.
        """
        distributed = _distributed()
        chunks = config.chunks()
        run = uuid.uuid4().hex  # keys no other client shares
        futures = {}
        for index in todo:
            future = self.client.submit(
                train_chunk, config, engine, chunks[index], __version__,
                key='minibatch-hybrid-{}-chunk-{}'.format(run, index),
                pure=False)
            futures[future] = index
        taken = set()
        try:
            done = distributed.as_completed(futures, loop=self.client.loop)
            n = 0
            for n, future in enumerate(done, 1):
                taken.add(future)
                try:
                    self._save(folder, futures[future], future, chunks)
                except (ClusterError, StudyFolderError, OSError) as e:
                    raise self._salvage(folder, futures, taken, chunks,
                                        e) from None
                progress.update(n, 'chunk {} saved'.format(futures[future]))
            if n < len(futures):
                self._check_scheduler(folder)
                raise ClusterError(
                    'the Dask cluster at {} stopped answering after {} of '
                    'the {} chunks this run gave it; {} of {} chunks are '
                    'saved in {}: rerun the same command to continue from '
                    'them'.format(self.address, n, len(futures),
                                  len(folder.saved()), len(chunks),
                                  folder.out))
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures))
            raise

    def _save(self, folder, index, future, chunks):
        """Takes a finished task's chunk and saves it (``folder.save``)."""
        try:
            data = future.result()
        except Exception as e:
            self._check_scheduler(folder)
            raise ClusterError(
                'chunk {} failed on the cluster: {}: {}'.format(
                    index, type(e).__name__,
                    str(e).splitlines()[0] if str(e) else '')) from None
        # What the worker says it trained must be this chunk.
        expected = folder.record(index, chunks[index])
        if not isinstance(data, dict) or data.get('record') != {
                k: expected[k] for k in (
                    'config', 'engine', 'version', 'seeds')}:
            raise ClusterError(
                'the cluster returned another study\'s result for chunk {}; '
                'nothing of it was saved'.format(index))
        folder.save(index, data)

    def _salvage(self, folder, futures, taken, chunks, error):
        """After ``error`` stopped the run: saves the chunks that already
        finished on the workers (without waiting for the others, which are
        then cancelled) and returns the one-line error to raise, with the
        chunks the folder really holds."""
        if getattr(self.client, 'status', 'running') != 'running':
            return error  # nothing more can be fetched
        rescued, failures = [], []
        for future, index in sorted(futures.items(), key=lambda f: f[1]):
            if future in taken or getattr(future, 'status', None) != \
                    'finished':
                continue
            taken.add(future)
            try:
                self._save(folder, index, future, chunks)
            except (ClusterError, StudyFolderError, OSError) as e:
                failures.append(str(e))
                continue
            rescued.append(index)
        if not rescued and not failures:
            return error  # its count is true
        cls = StudyFolderError if isinstance(error, StudyFolderError) \
            else ClusterError
        parts = [str(error)]
        if rescued:
            parts.append('the chunk{} {} that had finished on the cluster '
                         '{} saved in {} as well'.format(
                             's' if len(rescued) > 1 else '',
                             ', '.join(map(str, rescued)),
                             'were' if len(rescued) > 1 else 'was',
                             os.path.join(folder.out, 'chunks')))
        parts.extend(failures)
        parts.append('in all, {} of {} chunks are saved in {}'.format(
            len(folder.saved()), len(chunks),
            os.path.join(folder.out, 'chunks')))
        return cls('; '.join(parts))

    def _check_scheduler(self, folder):
        """Raises ClusterError in one line if the scheduler went away."""
        status = getattr(self.client, 'status', 'running')
        if status == 'running':
            return
        saved = len(folder.saved())
        raise ClusterError(
            'the Dask scheduler at {} went away; {} of {} chunks are saved '
            'in {}: rerun the same command (with a scheduler that runs) to '
            'continue from them'.format(
                self.address, saved, len(folder.config.chunks()),
                folder.out))
