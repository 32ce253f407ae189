"""Faults around a Dask cluster: addresses, listeners that are not Dask
schedulers, a scheduler that dies or stops answering, workers that all
die, Ctrl-C and SIGTERM, too many local workers.

Every fault ends the command in one line (progress lines aside) with a
non-zero status; waits have the documented bounds
(:data:`~minibatch_hybrid.experiments.study.distributed.CONNECT_TIMEOUT`
to connect, :data:`~minibatch_hybrid.experiments.study.distributed.
ANSWER_TIMEOUT` and
:data:`~minibatch_hybrid.experiments.study.distributed.NO_WORKERS_TIMEOUT`
mid-study, each checked every
:data:`~minibatch_hybrid.experiments.study.distributed.CHECK_INTERVAL`
seconds).
"""
import contextlib
import http.server
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import types

import pytest

from minibatch_hybrid import _interrupts
from minibatch_hybrid.kernels import threads
from minibatch_hybrid import cli
from minibatch_hybrid.experiments.study import distributed as dist

from _marks import needs_native
from _signals import default_sigint

distributed = pytest.importorskip('distributed')

#: The documented wait for a scheduler, and a margin for starting Python
#: and importing Dask (pytest-timeout's bound, not an assertion).
BOUND = dist.CONNECT_TIMEOUT + 50

PROGRESS = re.compile(r'^\s*\d+% \d+/\d+ ')


def lines_of(stderr):
    """The lines of stderr that are not progress lines."""
    return [line for line in stderr.strip().splitlines()
            if not PROGRESS.match(line)]


def command(*args):
    return [sys.executable, '-m', 'minibatch_hybrid.cli'] + list(args)


def run_main(capsys, argv):
    """Runs the command in this process; returns (status, stderr lines)."""
    with pytest.raises(SystemExit) as e:
        status = cli.main(argv)
        raise SystemExit(status)
    return e.value.code, lines_of(capsys.readouterr().err)


def free_port(host='127.0.0.1', family=socket.AF_INET):
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# Addresses: as Dask reads them, tcp:// only, refused at once.

@pytest.mark.parametrize('address, says', [
    ('inproc://127.0.0.1:8786', 'uses inproc://, and only tcp:// is '
     'supported'),
    ('ucx://127.0.0.1:8786', 'uses ucx://, and only tcp:// is supported'),
    ('tls://127.0.0.1:8786', 'uses tls://, and only tcp:// is supported'),
    ('tcp://127.0.0.1:99999', 'has port 99999: a port is from 1 to 65535'),
    ('tcp://127.0.0.1:0', 'has port 0: a port is from 1 to 65535'),
    ('tcp://::1:8786', 'is not one Dask takes'),
])
def test_an_address_dask_would_not_take_is_one_line_at_once(
        address, says, capsys, tmp_path):
    status, lines = run_main(capsys, ['study', '--quick', '--scheduler',
                                      address, '-o', str(tmp_path / 'x')])
    assert status == 2
    assert len(lines) == 1 and says in lines[0], lines
    assert not (tmp_path / 'x').exists()


def test_parse_address_reads_as_dask_does():
    assert dist.parse_address('tcp://[::1]:8798') == (
        'tcp://[::1]:8798', '::1', 8798)
    assert dist.parse_address(' 127.0.0.1:8786 ') == (
        'tcp://127.0.0.1:8786', '127.0.0.1', 8786)
    assert dist.parse_address('TCP://host.example:1')[1:] == (
        'host.example', 1)


def test_an_address_from_the_variable_says_so(capsys, tmp_path,
                                              monkeypatch):
    monkeypatch.setenv(cli.SCHEDULER_VARIABLE, 'junk')
    status, lines = run_main(capsys, ['study', '--quick', '-o',
                                      str(tmp_path / 'x')])
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith(
        'minibatch-hybrid: error: MINIBATCH_HYBRID_SCHEDULER=junk: the '
        'scheduler address \'junk\' is not one Dask takes'), lines


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(('::1', 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason='no IPv6 loopback here')
def test_a_bracketed_ipv6_address_is_taken_and_tried():
    # Taken: it reaches the connection, which a closed port refuses.
    port = free_port('::1', socket.AF_INET6)
    with pytest.raises(dist.ClusterError) as e:
        dist.Cluster(scheduler='tcp://[::1]:{}'.format(port), timeout=2)
    assert str(e.value).startswith(
        'cannot reach the Dask scheduler at tcp://[::1]:{} within 2 s '
        '('.format(port)), str(e.value)


# Listeners that are not Dask schedulers: one line within the documented
# time.

@pytest.fixture
def silent_listener():
    """A listener that accepts (the kernel does) and never answers."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen(8)
        yield 'tcp://127.0.0.1:{}'.format(s.getsockname()[1])


@pytest.fixture
def http_server():
    """A small HTTP server (as Dask's dashboard is one)."""
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'tcp://127.0.0.1:{}'.format(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def garbage_server():
    """A listener that sends bytes at once (a banner, as SSH or SMTP do),
    announcing in Dask's framing a message of exabytes."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    stop = []

    def serve():
        while not stop:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b'HTTP/1.1 400 Bad Request\r\n\r\n')
                time.sleep(0.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield 'tcp://127.0.0.1:{}'.format(listener.getsockname()[1])
    finally:
        stop.append(True)
        listener.close()


@pytest.fixture(params=['stays silent', 'hangs up'])
def false_greeting(request):
    """A listener whose first bytes pass for Dask's greeting (framed, and
    naming the pickle protocol), but are not one Dask can read; then it
    stays silent, or hangs up."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    held = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.sendall(struct.pack('<Q', 35) + b'x' * 10 +
                         b'pickle-protocol' + b'x' * 10)
            if request.param == 'hangs up':
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield 'tcp://127.0.0.1:{}'.format(listener.getsockname()[1])
    finally:
        listener.close()
        for conn in held:
            conn.close()


@pytest.mark.timeout(BOUND)
def test_a_listener_whose_greeting_dask_cannot_read_is_one_line(
        false_greeting, tmp_path):
    # It passes the greeting's check, and Dask's client fails to start on
    # it at once: the half-started client is closed then, not at exit
    # (where Dask's __del__ waited twice the timeout, then printed a
    # traceback: 21 s in all).
    start = time.monotonic()
    proc = subprocess.run(
        command('study', '--quick', '--scheduler', false_greeting, '-o',
                str(tmp_path / 'x')), capture_output=True, text=True,
        timeout=BOUND)
    took = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert 'Exception ignored' not in proc.stderr, proc.stderr
    lines = lines_of(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        'minibatch-hybrid: error: cannot connect to the Dask scheduler at '
        '{} within {} s ('.format(false_greeting, dist.CONNECT_TIMEOUT)), \
        lines[0]
    # Within the documented wait (and the command's start).
    assert took < dist.CONNECT_TIMEOUT + 5, took
    assert not (tmp_path / 'x').exists()


@pytest.mark.slow
@pytest.mark.waits
@pytest.mark.timeout(BOUND)
@pytest.mark.parametrize('listener', ['silent_listener', 'http_server'])
def test_a_listener_that_never_greets_is_one_line_after_the_wait(
        listener, request, tmp_path):
    address = request.getfixturevalue(listener)
    proc = subprocess.run(
        command('study', '--quick', '--scheduler', address, '-o',
                str(tmp_path / 'x')), capture_output=True, text=True,
        timeout=BOUND)
    assert proc.returncode == 2
    lines = lines_of(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert 'the listener at {} did not greet as a Dask scheduler within ' \
        '{} s: it is not one'.format(address, dist.CONNECT_TIMEOUT) \
        in lines[0]
    assert 'tcp://HOST:8786' in lines[0]
    assert not (tmp_path / 'x').exists()


@pytest.mark.timeout(BOUND)
def test_a_listener_that_answers_garbage_is_one_line_at_once(
        garbage_server, capsys, tmp_path):
    status, lines = run_main(capsys, ['study', '--quick', '--scheduler',
                                      garbage_server, '-o',
                                      str(tmp_path / 'x')])
    assert status == 2
    assert lines == ['minibatch-hybrid: error: the listener at {} is not a '
                     'Dask scheduler (it answered something else); give '
                     'the address "dask scheduler" prints (tcp://HOST:8786 '
                     'by default)'.format(garbage_server)]


def test_a_listener_that_hangs_up_is_not_a_scheduler():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen(8)
        address = 'tcp://127.0.0.1:{}'.format(s.getsockname()[1])

        def hang_up():
            conn, _ = s.accept()
            conn.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        with pytest.raises(dist.ClusterError, match='is not a Dask scheduler '
                           '\\(it closed the connection without Dask'):
            dist.Cluster(scheduler=address, timeout=5)
        thread.join(timeout=5)


def test_dask_logging_is_restored_after_a_refusal(silent_listener):
    loggers = [__import__('logging').getLogger(name) for name in (
        'distributed', 'distributed.client', 'distributed.gc', 'tornado',
        'asyncio')]
    levels = [logger.level for logger in loggers]
    with pytest.raises(dist.ClusterError):
        dist.Cluster(scheduler=silent_listener, timeout=0.5)
    assert [logger.level for logger in loggers] == levels


# Local workers: not far above the cores; no dashboard.

def test_local_workers_far_above_the_cores_are_refused(capsys, tmp_path):
    cores = threads.cores()
    limit = dist.WORKERS_PER_CORE * cores
    status, lines = run_main(capsys, [
        'study', '--quick', '--workers', str(limit + 1), '-o',
        str(tmp_path / 'x')])
    assert status == 2
    assert lines == ['minibatch-hybrid: error: --workers {} is far more '
                     'than the {} cores this process may use can run: give '
                     'at most {} ({} per core; each worker trains a chunk '
                     'at a time), or use --scheduler for a cluster of '
                     'several machines'.format(limit + 1, cores, limit,
                                               dist.WORKERS_PER_CORE)]
    assert not (tmp_path / 'x').exists()
    dist.check_local_workers(limit)
    with pytest.raises(dist.ClusterError, match='--workers 64 is far more '
                       'than the 2 cores .* give at most 4 '):
        dist.check_local_workers(64, cores=2)


def hold(host):
    """A socket that holds ``host``:8787, or None where it is taken."""
    s = socket.socket()
    try:
        s.bind((host, 8787))
        s.listen(1)
    except OSError:
        s.close()
        return None
    return s


@pytest.mark.slow
@needs_native
@pytest.mark.timeout(300)
@pytest.mark.parametrize('host', ['127.0.0.1', '0.0.0.0'])
def test_local_workers_with_port_8787_taken_are_silent(host, tmp_path):
    held = hold(host)
    try:
        # Taken either way: by this test, or by someone else.
        with socket.socket() as probe:
            with pytest.raises(OSError):
                probe.bind((host, 8787))
        proc = subprocess.run(
            command('study', '-e', '4', '--seeds', '1', '--chunk', '1', '-u',
                    '8', '--workers', '1', '-o', str(tmp_path / 'x')),
            capture_output=True, text=True, timeout=300)
    finally:
        if held is not None:
            held.close()
    assert proc.returncode == 0, proc.stderr
    assert lines_of(proc.stderr) == []
    assert 'wrote ' in proc.stdout


# A scheduler that dies mid-study.

#: Preload of the test's worker: the first chunk trains, the next ones
#: wait (for ever) at a gate, so that the scheduler dies mid-study.
GATE = '''
import os
import time
import types

from minibatch_hybrid.experiments.study import run

# Dask imports a preload file more than once, into one module: patch once.
if not hasattr(run.train_chunk, 'calls'):
    real = run.train_chunk

    def held(*args, **kwargs):
        held.calls.append(1)
        if len(held.calls) > 1:
            open(os.environ['GATE_FILE'], 'w').close()
            while True:
                time.sleep(1)
        return real(*args, **kwargs)

    held.calls = []
    run.train_chunk = held
'''


def start_scheduler(port, log):
    return subprocess.Popen(
        [sys.executable, '-m', 'distributed.cli.dask_scheduler', '--host',
         '127.0.0.1', '--port', str(port), '--no-dashboard',
         '--dashboard-address', '127.0.0.1:0'],
        stdout=log, stderr=subprocess.STDOUT)


def wait_for_scheduler(port, proc):
    while True:
        assert proc.poll() is None, 'the scheduler did not start'
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0:
                return
        time.sleep(0.05)


@contextlib.contextmanager
def gated_cluster(tmp_path):
    """A scheduler and one worker (no nanny: killed, it leaves nothing
    behind) on loopback; the worker trains the first chunk and holds the
    next ones at the gate.  Yields ``(address, scheduler, worker, gate)``:
    the processes, and the file made when a chunk waits at the gate."""
    port = free_port()
    address = 'tcp://127.0.0.1:{}'.format(port)
    preload = tmp_path / 'gate_preload.py'
    preload.write_text(GATE)
    gate = tmp_path / 'second-chunk-started'
    with open(tmp_path / 'cluster.log', 'w') as log:
        scheduler = start_scheduler(port, log)
        worker = None
        try:
            wait_for_scheduler(port, scheduler)
            worker = subprocess.Popen(
                [sys.executable, '-m', 'distributed.cli.dask_worker',
                 address, '--no-nanny', '--nthreads', '1', '--no-dashboard',
                 '--host', '127.0.0.1', '--death-timeout', '60',
                 '--preload', str(preload)],
                stdout=log, stderr=subprocess.STDOUT,
                env=dict(os.environ, GATE_FILE=str(gate)))
            with distributed.Client(address, timeout=60,
                                    set_as_default=False) as waiter:
                waiter.wait_for_workers(1, timeout=120)
            yield address, scheduler, worker, gate
        finally:
            for proc in (worker, scheduler):
                if proc is not None and proc.poll() is None:
                    proc.kill()  # a stopped process too
                    proc.wait()


def study_on_the_gate(address, out, gate, fault, wait=120):
    """Runs a study of 3 chunks on the gated cluster at ``address``; once
    the first chunk is saved and the second waits at the gate, calls
    ``fault()``.  Returns the command's process, ended, its stderr and
    the seconds from the fault to the command's end."""
    client = subprocess.Popen(
        command('study', '-e', '4', '--seeds', '3', '--chunk', '1', '-u',
                '8', '--scheduler', address, '-o', str(out)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not gate.exists():
            assert client.poll() is None, client.communicate()
            time.sleep(0.05)
        while not (out / 'chunks' / 'chunk-00000.npz').exists():
            assert client.poll() is None, client.communicate()
            time.sleep(0.05)
        fault()
        start = time.monotonic()
        _, stderr = client.communicate(timeout=wait)
        return client, stderr, time.monotonic() - start
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()


def assert_one_line_with_chunk_0_saved(client, stderr, out, says):
    assert client.returncode == 2, stderr
    assert sorted(os.listdir(out / 'chunks')) == ['chunk-00000.npz']
    lines = lines_of(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith('minibatch-hybrid: error: ' + says), lines[0]
    return lines[0]


@pytest.mark.slow
@needs_native
@pytest.mark.timeout(240)
@pytest.mark.parametrize('how', [signal.SIGKILL, signal.SIGTERM])
def test_a_scheduler_that_dies_mid_study_is_one_line(how, tmp_path):
    out = tmp_path / 'x'
    with gated_cluster(tmp_path) as (address, scheduler, worker, gate):
        def fault():
            scheduler.send_signal(how)
            scheduler.wait(timeout=60)

        client, stderr, _ = study_on_the_gate(address, out, gate, fault)
    line = assert_one_line_with_chunk_0_saved(
        client, stderr, out, 'the Dask scheduler at {} went away'.format(
            address))
    assert '1 of 3 chunks are saved in {}: rerun the same command'.format(
        out) in line


@pytest.mark.slow
@pytest.mark.waits
@needs_native
@pytest.mark.timeout(120)
def test_a_scheduler_that_stops_answering_mid_study_is_one_line(tmp_path):
    # SIGSTOP: its connections stay open, and nothing more comes from it
    # (Dask's client alone waits for ever).  The next question goes
    # unanswered for ANSWER_TIMEOUT seconds.
    out = tmp_path / 'x'
    with gated_cluster(tmp_path) as (address, scheduler, worker, gate):
        client, stderr, took = study_on_the_gate(
            address, out, gate,
            lambda: scheduler.send_signal(signal.SIGSTOP), wait=60)
    line = assert_one_line_with_chunk_0_saved(
        client, stderr, out, 'the Dask scheduler at {} stopped answering '
        '(no answer within {} s); 1 of 3 chunks are saved in {}: rerun the '
        'same command (with a scheduler that runs) to continue from '
        'them'.format(address, dist.ANSWER_TIMEOUT, out))
    assert line.endswith('to continue from them'), line
    # The documented bound, and the client's close (CLOSE_TIMEOUT at most).
    assert took < dist.CHECK_INTERVAL + dist.ANSWER_TIMEOUT + \
        dist.CLOSE_TIMEOUT, took


@pytest.mark.slow
@pytest.mark.waits
@needs_native
@pytest.mark.timeout(120)
def test_a_cluster_whose_workers_all_died_is_one_line(tmp_path):
    # The scheduler runs on, with chunks to give and no worker to take
    # them (Dask waits for one for ever): one line after NO_WORKERS_TIMEOUT
    # seconds without any.
    out = tmp_path / 'x'
    with gated_cluster(tmp_path) as (address, scheduler, worker, gate):
        client, stderr, took = study_on_the_gate(
            address, out, gate, worker.kill, wait=90)
    assert_one_line_with_chunk_0_saved(
        client, stderr, out, 'the Dask cluster at {} has had no worker for '
        '{} s; 1 of 3 chunks are saved in {}: start workers ("dask worker '
        '{}") and rerun the same command to continue from them'.format(
            address, dist.NO_WORKERS_TIMEOUT, out, address))
    assert dist.NO_WORKERS_TIMEOUT - 0.5 <= took < \
        dist.NO_WORKERS_TIMEOUT + 2 * dist.CHECK_INTERVAL + \
        dist.CLOSE_TIMEOUT, took


# Ctrl-C with local workers.

def start_study(out, *extra):
    return subprocess.Popen(
        command('study', '-e', '300', '--seeds', '8', '--chunk', '1', '-u',
                '32', '--workers', '2', '-o', str(out), *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint, start_new_session=True)


def end_group(proc):
    """Kills the process group ``proc`` leads, whatever its exit: after
    a normal exit 130 its workers (which ignore SIGINT) could outlive it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.poll() is None:
        proc.wait()


def workers_spawned(pid):
    """Whether process ``pid`` has started a worker process (a
    multiprocessing child, run by ``spawn_main``)."""
    children = []
    try:
        # A child is listed under the thread that started it.
        for task in os.listdir('/proc/{}/task'.format(pid)):
            with open('/proc/{}/task/{}/children'.format(pid, task)) as f:
                children += f.read().split()
    except OSError:
        return False
    for child in children:
        try:
            with open('/proc/{}/cmdline'.format(child), 'rb') as f:
                if b'spawn_main' in f.read():
                    return True
        except OSError:
            pass
    return False


def interrupt_study(out, ready, send):
    """Starts a study on local workers, waits until ``ready(proc)``, sends
    Ctrl-C with ``send(proc)``; asserts the one line and exit status 130,
    and returns the command's stderr."""
    proc = start_study(out)
    try:
        while not ready(proc):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.01)
        send(proc)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        end_group(proc)
    assert proc.returncode == 130, stderr
    assert lines_of(stderr) == [
        'interrupted: the chunks finished so far are saved in {}; rerun the '
        'same command to continue'.format(out)], stderr
    return stderr


@pytest.mark.slow
@needs_native
@pytest.mark.timeout(240)
def test_ctrl_c_at_the_terminal_with_local_workers(tmp_path):
    # Once a chunk is saved, the workers are at work on others; the
    # terminal's Ctrl-C reaches the whole process group.
    out = tmp_path / 'x'
    stderr = interrupt_study(
        out, lambda proc: (out / 'chunks').is_dir() and
        bool(os.listdir(out / 'chunks')),
        lambda proc: os.killpg(proc.pid, signal.SIGINT))
    assert 'Traceback' not in stderr


@pytest.mark.slow
@needs_native
@pytest.mark.timeout(240)
def test_ctrl_c_while_the_local_cluster_starts(tmp_path):
    # The client has started its first worker process: the cluster is
    # starting; the Ctrl-C reaches the client alone.
    interrupt_study(tmp_path / 'x', lambda proc: workers_spawned(proc.pid),
                    lambda proc: os.kill(proc.pid, signal.SIGINT))


@pytest.mark.slow
@needs_native
@pytest.mark.timeout(240)
@pytest.mark.parametrize('group', [False, True])
def test_sigterm_with_local_workers_is_a_ctrl_c(group, tmp_path):
    # To the client alone (kill PID), or to its whole process group (a
    # batch system's stop): the cluster is closed as after a Ctrl-C, so
    # that Python's resource tracker finds no semaphore of the local
    # workers' nannies left, and says nothing after the command ended.
    out = tmp_path / 'x'
    stderr = interrupt_study(
        out, lambda proc: (out / 'chunks').is_dir() and
        bool(os.listdir(out / 'chunks')),
        lambda proc: (os.killpg if group else os.kill)(
            proc.pid, signal.SIGTERM))
    assert 'resource_tracker' not in stderr and 'leaked' not in stderr


def test_sigterm_is_left_alone_outside_the_commands():
    # A library's caller (here pytest) keeps its own SIGTERM.
    before = signal.getsignal(signal.SIGTERM)
    termination = _interrupts.Termination()
    assert signal.getsignal(signal.SIGTERM) is before
    termination.restore()
    assert signal.getsignal(signal.SIGTERM) is before


# What a run on a cluster keeps when it stops (fakes of Dask's client: no
# cluster, no timing).

class FakeFuture(object):
    def __init__(self, index, status):
        self.index = index
        self.status = status

    def result(self):
        assert self.status == 'finished', 'waited for an unfinished chunk'
        return {'record': record(self.index)}


def record(index):
    return {'config': 'c', 'engine': 'native', 'version': dist.__version__,
            'seeds': [index]}


class FakeClient(object):
    """Dask's client, on fakes; its scheduler answers ``answers`` in turn
    (an exception is raised), the last one for ever."""
    status = 'running'
    loop = None

    def __init__(self, statuses, answers=({'workers': {'w': {}}},)):
        self.statuses = statuses
        self.cancelled = None
        self.answers = list(answers)
        self.asked = 0
        self.scheduler = types.SimpleNamespace(identity='identity')

    def sync(self, function, callback_timeout):
        assert function == 'identity'
        assert callback_timeout == dist.ANSWER_TIMEOUT
        self.asked += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 \
            else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def submit(self, function, config, engine, seeds, version, key, pure):
        return FakeFuture(seeds[0], self.statuses[seeds[0]])

    def cancel(self, futures):
        self.cancelled = sorted(f.index for f in futures)


class FakeConfig(object):
    def chunks(self):
        return [[0], [1], [2], [3], [4]]


class FakeFolder(object):
    """A study folder whose disk is full for the chunks ``full``."""
    out = '/study'
    config = FakeConfig()

    def __init__(self, full=(), stop=()):
        self.full, self.stop = full, stop
        self.held = []

    def record(self, index, seeds):
        return dict(record(index), extra='not compared')

    def saved(self):
        return self.held

    def save(self, index, data):
        assert data['record'] == record(index)
        if index in self.stop:
            raise KeyboardInterrupt
        if index in self.full:
            raise dist.StudyFolderError(
                '{} of 5 chunks are saved in /study/chunks; chunk {} could '
                'not be saved there (disk full) and was saved to /tmp/x/'
                'chunk-{}.npz: copy it into /study/chunks'.format(
                    len(self.held), index, index))
        self.held.append(index)


class Progress(object):
    def update(self, n, text):
        pass


class FakeAsCompleted(object):
    """Dask's ``as_completed``, on fakes: the futures ``arrive`` are ready
    in turn; then none is, while the futures ``pending`` are left (they
    never finish)."""

    def __init__(self, arrive, pending):
        self.ready = list(arrive)
        self.pending = list(pending)

    def is_empty(self):
        return not self.ready and not self.pending

    def has_ready(self):
        return bool(self.ready)

    def __iter__(self):
        return self

    def __next__(self):
        if self.is_empty():
            raise StopIteration
        return self.ready.pop(0)


def run_on_fakes(monkeypatch, client, arrive, folder, pending=()):
    """Runs chunks 0..4 on a fake cluster whose ``as_completed`` yields
    the chunks ``arrive``, and never the chunks ``pending``."""
    def as_completed(futures, loop):
        by_index = {f.index: f for f in futures}
        return FakeAsCompleted([by_index[i] for i in arrive],
                               [by_index[i] for i in pending])

    monkeypatch.setattr(dist, '_distributed', lambda: types.SimpleNamespace(
        as_completed=as_completed))
    cluster = dist.Cluster.__new__(dist.Cluster)
    cluster.client = client
    cluster.address = 'tcp://127.0.0.1:8786'
    cluster.run(FakeConfig(), 'native', folder, [0, 1, 2, 3, 4], Progress())


def test_chunks_finished_when_a_save_fails_are_saved_too(monkeypatch):
    # Chunk 1 meets a full disk; 2 and 3 had finished on the workers and
    # are taken (3 goes elsewhere too), 4 is still running: cancelled,
    # without a wait.
    folder = FakeFolder(full=(1, 3))
    client = FakeClient(['finished'] * 4 + ['pending'])
    with pytest.raises(dist.StudyFolderError) as e:
        run_on_fakes(monkeypatch, client, [0, 1, 2, 3, 4], folder)
    assert folder.held == [0, 2]
    assert 4 in client.cancelled
    message = str(e.value)
    assert '\n' not in message
    assert message.startswith('1 of 5 chunks are saved in /study/chunks; '
                              'chunk 1 could not be saved there'), message
    assert '; the chunk 2 that had finished on the cluster was saved in ' \
        '/study/chunks as well; ' in message
    assert 'chunk 3 could not be saved there (disk full) and was saved ' \
        'to /tmp/x/chunk-3.npz' in message
    assert message.endswith('; in all, 2 of 5 chunks are saved in '
                            '/study/chunks'), message


def test_chunks_finished_when_a_chunk_fails_are_saved(monkeypatch):
    folder = FakeFolder()
    client = FakeClient(['finished', 'error', 'finished', 'pending',
                         'finished'])

    def failing(self):
        if self.status == 'error':
            raise RuntimeError('a worker failed\nwith more')
        return {'record': record(self.index)}

    monkeypatch.setattr(FakeFuture, 'result', failing)
    with pytest.raises(dist.ClusterError) as e:
        run_on_fakes(monkeypatch, client, [0, 1, 2, 3, 4], folder)
    assert folder.held == [0, 2, 4]
    assert 3 in client.cancelled
    assert str(e.value) == (
        'chunk 1 failed on the cluster: RuntimeError: a worker failed; the '
        'chunks 2, 4 that had finished on the cluster were saved in '
        '/study/chunks as well; in all, 3 of 5 chunks are saved in '
        '/study/chunks')


def test_ctrl_c_while_saving_cancels_and_keeps_what_is_saved(monkeypatch):
    folder = FakeFolder(stop=(1,))
    client = FakeClient(['finished'] * 5)
    with pytest.raises(KeyboardInterrupt):
        run_on_fakes(monkeypatch, client, [0, 1, 2, 3, 4], folder)
    # As before: what was saved stays, the rest is cancelled.
    assert folder.held == [0]
    assert client.cancelled == [0, 1, 2, 3, 4]


def test_as_completed_that_ends_early_is_one_line(monkeypatch):
    folder = FakeFolder()
    with pytest.raises(dist.ClusterError) as e:
        run_on_fakes(monkeypatch, FakeClient(['finished'] * 5), [0, 1],
                     folder)
    assert folder.held == [0, 1]
    assert str(e.value) == (
        'the Dask cluster at tcp://127.0.0.1:8786 stopped answering after 2 '
        'of the 5 chunks this run gave it; 2 of 5 chunks are saved in '
        '/study: rerun the same command to continue from them')


def test_a_scheduler_that_does_not_answer_is_one_line(monkeypatch):
    # Chunk 0 arrives; then the scheduler does not answer a question in
    # time (it is stopped): one line, the unfinished chunks cancelled.
    monkeypatch.setattr(dist, 'CHECK_INTERVAL', 0)
    folder = FakeFolder()
    client = FakeClient(['finished'] + ['pending'] * 4,
                        answers=[TimeoutError('timed out after 10 s.')])
    with pytest.raises(dist.ClusterError) as e:
        run_on_fakes(monkeypatch, client, [0], folder, pending=[1, 2, 3, 4])
    assert folder.held == [0]
    assert client.cancelled == [0, 1, 2, 3, 4]
    assert str(e.value) == (
        'the Dask scheduler at tcp://127.0.0.1:8786 stopped answering (no '
        'answer within {} s); 1 of 5 chunks are saved in /study: rerun the '
        'same command (with a scheduler that runs) to continue from '
        'them'.format(dist.ANSWER_TIMEOUT))


def test_a_cluster_without_workers_is_one_line_after_the_wait(monkeypatch):
    # Its workers come back once (the wait starts again), then are gone
    # for good: one line after NO_WORKERS_TIMEOUT without any.
    monkeypatch.setattr(dist, 'CHECK_INTERVAL', 0)
    monkeypatch.setattr(dist, 'NO_WORKERS_TIMEOUT', 0.5)
    folder = FakeFolder()
    none = {'workers': {}}
    client = FakeClient(['finished'] * 2 + ['pending'] * 3, answers=[
        none, none, {'workers': {'w': {}}}, none])
    start = time.monotonic()
    with pytest.raises(dist.ClusterError) as e:
        run_on_fakes(monkeypatch, client, [0, 1], folder, pending=[2, 3, 4])
    assert time.monotonic() - start >= 0.5
    assert client.asked > 4
    assert folder.held == [0, 1]
    assert client.cancelled == [0, 1, 2, 3, 4]
    assert str(e.value) == (
        'the Dask cluster at tcp://127.0.0.1:8786 has had no worker for 0.5 '
        's; 2 of 5 chunks are saved in /study: start workers ("dask worker '
        'tcp://127.0.0.1:8786") and rerun the same command to continue from '
        'them')


def test_a_cluster_that_answers_is_asked_only_while_waiting(monkeypatch):
    # Chunks that arrive need no question; a scheduler that answers, with
    # workers, lets the run wait (here until a chunk that never finishes
    # is given up by the fake's last answer).
    monkeypatch.setattr(dist, 'CHECK_INTERVAL', 0)
    folder = FakeFolder()
    workers = {'workers': {'w': {}}}
    client = FakeClient(['finished'] * 4 + ['pending'], answers=[
        workers, workers, workers, TimeoutError()])
    with pytest.raises(dist.ClusterError, match='stopped answering'):
        run_on_fakes(monkeypatch, client, [0, 1, 2, 3], folder, pending=[4])
    assert folder.held == [0, 1, 2, 3]
    assert client.asked == 4


# Ctrl-C held while Dask starts; Dask's logs, and only those, silenced.

def test_a_held_ctrl_c_wins_over_an_error_of_the_start():
    # The handler before the block is put back, whatever it was (ignored,
    # where pytest was started from a background shell).
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with _interrupts.deferred():
            signal.raise_signal(signal.SIGINT)
            raise dist.ClusterError('the cluster could not start')
    assert signal.getsignal(signal.SIGINT) is before


def test_only_dask_logs_are_silenced_while_a_cluster_is_open():
    import logging

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__()
            self.names = []

        def emit(self, record):
            self.names.append(record.name)

    root = logging.getLogger()
    keep = Keep()
    root.addHandler(keep)
    names = ['myapp', 'distributed', 'distributed.worker', 'distributed.gc',
             'tornado.access', 'asyncio', 'distributedish', 'my.distributed']
    try:
        restore = dist._silence()
        try:
            for name in names:
                logging.getLogger(name).error('a record')
        finally:
            restore()
        assert keep.names == ['myapp', 'distributedish', 'my.distributed']
        del keep.names[:]
        for name in names:
            logging.getLogger(name).error('a record')
        # (Dask's own settings keep some of Tornado's loggers quiet.)
        assert {'myapp', 'distributed', 'distributed.worker', 'asyncio',
                'distributedish'} <= set(keep.names)
    finally:
        root.removeHandler(keep)


def test_a_library_cluster_far_above_the_cores_is_refused(monkeypatch):
    monkeypatch.setattr(threads, 'cores', lambda: 2)
    monkeypatch.setattr(dist, '_distributed', lambda: pytest.fail(
        'Dask was started'))
    with pytest.raises(dist.ClusterError, match='--workers 64 is far more '
                       'than the 2 cores .* give at most 4 '):
        dist.Cluster(workers=64)
    with pytest.raises(dist.ClusterError, match='--workers must be a '
                       'positive integer, got 0'):
        dist.Cluster(workers=0)
