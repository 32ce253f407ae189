"""Studies that outgrow one machine, on Dask (``dask.distributed``).

A study is a set of independent chunks whose results do not depend on
where they ran, which is the work Dask's scheduler already knows how to
spread over processes and machines, to rerun when a worker dies, and to
cancel.  This module only connects to a cluster (a running scheduler, or a
local cluster of worker processes), checks that every worker would compute
the client's bits, submits
:func:`~minibatch_hybrid.experiments.study.run.train_chunk` per chunk and
saves each result on the client as it arrives, asking the scheduler
meanwhile whether it still answers and has workers (Dask alone would wait
for ever).

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
from minibatch_hybrid.errors import frame_scopes
from minibatch_hybrid.experiments.study.folder import StudyFolderError
from minibatch_hybrid.experiments.study.run import train_chunk

#: Seconds to wait for a scheduler (the connection and Dask's greeting on
#: it, then Dask's client's start in the time left) before giving up, in
#: one line.
CONNECT_TIMEOUT = 10

#: Seconds between two questions to the scheduler while a study runs:
#: does it answer, and has it a worker?
CHECK_INTERVAL = 2

#: Seconds the scheduler has to answer one of them: one that does not
#: (stopped, hung, or cut off without a closed connection) ends the run in
#: one line.
ANSWER_TIMEOUT = CONNECT_TIMEOUT

#: Seconds a cluster may be without any worker while chunks are left
#: before the run ends in one line (Dask itself waits for workers for
#: ever).
NO_WORKERS_TIMEOUT = 20

#: Seconds to close Dask's client, whatever the scheduler does.
CLOSE_TIMEOUT = 5

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
    Sends nothing; reads at most :data:`GREETING_LIMIT` bytes.

    Dask's own timeouts do not bound this wait: its connection reads the
    greeting without one, and a listener that stays silent (an HTTP
    server) holds Dask's client for ever.  Here a closed port, a listener
    that answers something else and one that hangs up are one line at
    once (Dask retries a closed port for its whole timeout)."""
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


def _close_unstarted(error, client_class):
    """Closes the Dask client whose start raised ``error``, if one is left.

    A client whose start fails on something other than an OSError (a
    listener that sent a greeting and then bytes that Dask cannot read,
    or nothing) is left half started, and Python closes it only at exit,
    after Dask's loop has stopped: its ``__del__`` then waits twice the
    timeout and prints a traceback.  Closed here, it closes at once.  The
    client is the ``self`` of its own ``__init__``, in the traceback.
    """
    for scope in frame_scopes(error):
        client = scope.get('self')
        if isinstance(client, client_class):
            with contextlib.suppress(Exception):
                client.close(timeout=CLOSE_TIMEOUT)
            return


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


class _Termination(object):
    """SIGTERM, while a cluster is open in one of the package's commands
    (in its main thread, where SIGTERM has its default action): taken as a
    Ctrl-C.

    By default a SIGTERM (``kill``, a batch system's stop) ends the process
    at once, and a local cluster with it: the semaphores its nannies made
    in this process are left to Python's resource tracker, which warns
    about them after the command has ended.  Taken as a Ctrl-C, it ends
    the run as one does: what was saved stays saved, the cluster is
    closed, one line, exit status 130.  Like a Ctrl-C it is held while
    Dask starts (:func:`_deferred_interrupt`), and while the cluster
    closes.  A library's caller keeps its own SIGTERM.
    """

    def __init__(self):
        #: The list a held SIGTERM goes to, None while none is held.
        self.held = None
        self.previous = None
        if threading.current_thread() is threading.main_thread() and \
                _startup.started_as_command() and \
                signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        if self.held is not None:
            self.held.append(signum)
        else:
            raise KeyboardInterrupt

    def restore(self):
        """Puts SIGTERM's default action back."""
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None


@contextlib.contextmanager
def _deferred_interrupt(termination=None):
    """Holds a Ctrl-C back while Dask starts (a client, a local cluster),
    then raises it: a KeyboardInterrupt in the middle of Dask's start
    leaves threads and processes behind that print as they die.  A
    SIGTERM taken as a Ctrl-C (``termination``) is held too."""
    with _startup.holding_interrupts() as interrupted:
        if termination is not None:
            termination.held = interrupted
        try:
            yield
        finally:
            if termination is not None:
                termination.held = None
            # A Ctrl-C held back wins over an error of the block: the user
            # asked to stop (exit status 130), whatever failed meanwhile.
            if interrupted:
                raise KeyboardInterrupt


def dask_setup(worker):
    """Dask's preload hook, run in each local worker process: a Ctrl-C at
    the terminal reaches the whole process group, and the client, not the
    workers, handles it (cancels, closes the cluster).  The workers' own
    logs stay silent, as the client's do (a heartbeat that meets the
    scheduler closing after that Ctrl-C logs an ERROR): a failure reaches
    the client as its task's error, and is told in one line there."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


class Cluster(object):
    """A Dask cluster to run a study's chunks on; a context manager.

    A local cluster starts worker processes: in a script, create it under
    ``if __name__ == '__main__':``, as for any multiprocessing code.  In
    the package's commands, a SIGTERM while it is open is taken as a
    Ctrl-C (:class:`_Termination`): it is closed before the command ends.

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
        self._termination = _Termination()
        # Dask's logs stay silent while the cluster is in use: its
        # failures are told in one line by this class.
        self._restore_logs = _silence()
        try:
            if scheduler is not None:
                self.address = address
                # Plain sockets: a Ctrl-C ends this wait at once.
                left = _greeting(host, port, address, timeout)
                with _deferred_interrupt(self._termination):
                    self._connect(distributed, left, timeout)
            else:
                with _deferred_interrupt(self._termination):
                    self._start_local(distributed, workers)
        except BaseException:
            self.close()
            raise

    def _connect(self, distributed, left, timeout):
        try:
            self.client = distributed.Client(
                self.address, timeout=left, set_as_default=False)
        except Exception as e:
            _close_unstarted(e, distributed.Client)
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
        """Closes the client and the local cluster, if any (quietly).

        A SIGTERM that comes meanwhile is held, and then raised as a
        Ctrl-C (see :class:`_Termination`)."""
        termination = getattr(self, '_termination', None)
        held = []
        if termination is not None:
            termination.held = held
        try:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close(timeout=CLOSE_TIMEOUT)
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
            self._termination = None
            if termination is not None:
                termination.restore()
                if held:
                    raise KeyboardInterrupt

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
        saved.  A scheduler that goes away or stops answering, and a
        cluster left without workers, stop the run in one line
        (:meth:`_arrivals`); what was saved stays saved.
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
            for n, future in enumerate(self._arrivals(done, folder), 1):
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

    def _arrivals(self, done, folder):
        """Yields the tasks of ``done`` (Dask's ``as_completed``) as they
        finish.  While none is ready, asks the scheduler every
        :data:`CHECK_INTERVAL` seconds whether it answers and has a worker
        (:meth:`_check_cluster`): Dask alone waits for ever on a scheduler
        that stopped, and on one whose workers all died."""
        next_check = time.monotonic() + CHECK_INTERVAL
        without_workers = None
        while not done.is_empty():
            if done.has_ready():
                yield next(done)
                continue
            if time.monotonic() >= next_check:
                without_workers = self._check_cluster(folder,
                                                      without_workers)
                next_check = time.monotonic() + CHECK_INTERVAL
            time.sleep(0.1)  # as as_completed itself waits

    def _check_cluster(self, folder, without_workers):
        """Asks the scheduler for its workers, within
        :data:`ANSWER_TIMEOUT` seconds; returns when it was first seen
        without any (``without_workers``, or now), None if it has some.

        Raises:
            ClusterError: In one line, if the scheduler went away, does
                not answer in time, or has had no worker for
                :data:`NO_WORKERS_TIMEOUT` seconds.

        """
        self._check_scheduler(folder)
        client = self.client
        try:
            info = client.sync(client.scheduler.identity,
                               callback_timeout=ANSWER_TIMEOUT)
        except Exception:
            self._check_scheduler(folder)  # it went away meanwhile
            raise ClusterError(
                'the Dask scheduler at {} stopped answering (no answer '
                'within {} s); {}: rerun the same command (with a scheduler '
                'that runs) to continue from them'.format(
                    self.address, ANSWER_TIMEOUT,
                    self._saved(folder))) from None
        if info.get('workers'):
            return None
        now = time.monotonic()
        if without_workers is None:
            return now
        if now - without_workers >= NO_WORKERS_TIMEOUT:
            raise ClusterError(
                'the Dask cluster at {} has had no worker for {} s; {}: '
                'start workers ("dask worker {}") and rerun the same command '
                'to continue from them'.format(
                    self.address, NO_WORKERS_TIMEOUT, self._saved(folder),
                    self.address))
        return without_workers

    @staticmethod
    def _saved(folder):
        """``'N of M chunks are saved in OUT'``, for an error's line."""
        return '{} of {} chunks are saved in {}'.format(
            len(folder.saved()), len(folder.config.chunks()), folder.out)

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
        raise ClusterError(
            'the Dask scheduler at {} went away; {}: rerun the same command '
            '(with a scheduler that runs) to continue from them'.format(
                self.address, self._saved(folder)))
