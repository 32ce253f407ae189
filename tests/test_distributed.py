"""Studies on a real Dask cluster (worker processes on loopback)."""
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import minibatch_hybrid as mh
from minibatch_hybrid import kernels
from minibatch_hybrid.experiments import study
from minibatch_hybrid.experiments.study import distributed as dist
from minibatch_hybrid.experiments.study.config import StudyConfig

from _marks import needs_native

distributed = pytest.importorskip('distributed')

# Every test here starts a Dask cluster or a command: `make check` leaves
# them to `make test`.
pytestmark = pytest.mark.slow


def config(**kwargs):
    settings = dict(schedules=['random', 'fixed:4+random:4'], seeds=6,
                    epochs=8, n_units=16, n_data=200, n_heldout=50, chunk=1)
    settings.update(kwargs)
    return StudyConfig(**settings)


def quiet(line):
    pass


def files(out):
    """Every file of a study folder but the lock, as bytes."""
    found = {}
    for root, _, names in os.walk(out):
        for name in names:
            if name == '.lock':
                continue
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, out)] = f.read()
    return found


def finish(result, out):
    study.write_study_outputs(result, study.summarize(result), out,
                              paired_figure=False)
    # summary.json records the machine and the command line; the rest are
    # results.
    return {k: v for k, v in files(out).items() if k != 'summary.json'}


@pytest.fixture(scope='module')
def here(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('here'))
    return finish(study.run_study(config(), out, log=quiet), out)


@pytest.fixture(scope='module')
def cluster():
    with dist.Cluster(workers=2) as c:
        yield c


@needs_native
def test_a_distributed_study_is_the_same_bytes(here, cluster, tmp_path):
    out = str(tmp_path)
    result = study.run_study(config(), out, log=quiet, cluster=cluster)
    got = finish(result, out)
    assert sorted(got) == sorted(here)
    for name in here:
        assert got[name] == here[name], name


@needs_native
def test_a_distributed_study_with_revived_arms_is_the_same_bytes(
        cluster, tmp_path):
    revived = config(revive=4)
    local = finish(study.run_study(revived, str(tmp_path / 'here'),
                                   log=quiet), str(tmp_path / 'here'))
    result = study.run_study(revived, str(tmp_path / 'dask'), log=quiet,
                             cluster=cluster)
    assert result.labels[2:] == ['random revive@4',
                                 'fixed:4+random:4 revive@4']
    got = finish(result, str(tmp_path / 'dask'))
    assert sorted(got) == sorted(local)
    for name in local:
        assert got[name] == local[name], name


def slow_config():
    # Chunks of about half a second, so that a worker dies in the middle of
    # one.
    return config(schedules=['random', 'fixed:10+random:10'], epochs=20,
                  n_units=100, n_data=1000, n_heldout=100)


def test_local_workers_log_nothing(cluster):
    # Their ERROR records reached the terminal: a heartbeat that met the
    # scheduler closing after a Ctrl-C, say (seen once in CI).
    enabled = cluster.client.run(lambda: [
        logging.getLogger(name).isEnabledFor(logging.CRITICAL)
        for name in ('distributed', 'distributed.worker', 'tornado',
                     'tornado.application', 'asyncio')])
    assert len(enabled) == 2
    assert not any(any(levels) for levels in enabled.values()), enabled


@needs_native
def test_a_killed_worker_costs_its_chunk_only(cluster, tmp_path):
    expected = str(tmp_path / 'here')
    here = finish(study.run_study(slow_config(), expected, log=quiet),
                  expected)
    out = str(tmp_path / 'cluster')
    gate = str(tmp_path / 'gate')
    os.mkdir(gate)

    # The workers' chunks wait at a gate, so that the worker killed below
    # is in the middle of one whatever the timing: a chunk that starts
    # leaves started-PID in ``gate`` and waits there for ``gate``/go.
    # (Defined in the test, so that Dask sends them by value.)
    def hold(gate):
        import os
        import time
        from minibatch_hybrid.experiments.study import run

        real = run.train

        def held(*args, **kwargs):
            open(os.path.join(gate, 'started-{}'.format(os.getpid())),
                 'w').close()
            while not os.path.exists(os.path.join(gate, 'go')):
                time.sleep(0.01)
            return real(*args, **kwargs)

        held.real = real
        run.train = held
        return os.getpid()

    def let_go():
        from minibatch_hybrid.experiments.study import run
        run.train = getattr(run.train, 'real', run.train)

    pids = cluster.client.run(hold, gate)
    outcome = {}

    def run():
        try:
            outcome['result'] = study.run_study(slow_config(), out,
                                                log=quiet, cluster=cluster)
        except BaseException as e:  # shown by the assertion below
            outcome['error'] = e

    thread = threading.Thread(target=run)
    thread.start()
    try:
        # Waits on what can be seen (pytest-timeout ends one that hangs): a
        # chunk has started (it then waits at the gate, so the study cannot
        # end first) ...
        started = []
        while not started:
            assert thread.is_alive(), outcome
            time.sleep(0.01)
            started = [n for n in os.listdir(gate) if n.startswith('started')]
        victim = int(started[0].split('-')[1])
        address, = [a for a, pid in pids.items() if pid == victim]
        os.kill(victim, signal.SIGKILL)
        # ... and the scheduler has let the dead worker go, so its chunk is
        # lost for certain, before the chunks may go on.
        while address in cluster.client.scheduler_info()['workers']:
            time.sleep(0.05)
    finally:
        open(os.path.join(gate, 'go'), 'w').close()
        thread.join(timeout=300)
        cluster.client.run(let_go)
        # The nanny starts a new worker in place of the dead one: the tests
        # after this one get a cluster of two again.
        cluster.client.wait_for_workers(2, timeout=120)
    assert not thread.is_alive()
    assert 'error' not in outcome, outcome.get('error')
    got = finish(outcome['result'], out)
    for name in here:
        assert got[name] == here[name], name


@needs_native
def test_an_interrupted_distributed_study_continues_here(here, cluster,
                                                         tmp_path,
                                                         monkeypatch):
    out = str(tmp_path)
    real = study.folder.StudyFolder.save
    saves = []

    def save_then_stop(self, index, data):
        real(self, index, data)
        saves.append(index)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(study.folder.StudyFolder, 'save', save_then_stop)
    with pytest.raises(KeyboardInterrupt) as interrupted:
        study.run_study(config(), out, log=quiet, cluster=cluster)
    # The traceback still holds the futures: without a cancel their tasks
    # would stay on the scheduler.
    assert interrupted.traceback
    # (Dask lets cancelled tasks go in its own time; pytest-timeout ends a
    # wait for tasks that stay.)
    while cluster.client.run_on_scheduler(
            lambda dask_scheduler: len(dask_scheduler.tasks)):
        time.sleep(0.05)
    monkeypatch.setattr(study.folder.StudyFolder, 'save', real)
    assert len(os.listdir(os.path.join(out, 'chunks'))) == 2
    lines = []
    result = study.run_study(config(), out, log=lines.append)
    assert lines == ['continuing: 2 of 6 chunks already saved in ' + out]
    got = finish(result, out)
    for name in here:
        assert got[name] == here[name], name


def test_an_unreachable_scheduler_fails_fast_in_one_line(monkeypatch):
    # Fast: the connection is tried, with the timeout, before Dask's client
    # is made (what a clock would measure depends on the machine, this does
    # not).
    real = distributed.Client
    made = []

    def client(*args, **kwargs):
        made.append(kwargs.get('timeout'))
        return real(*args, **kwargs)

    monkeypatch.setattr(distributed, 'Client', client)
    with pytest.raises(dist.ClusterError, match='cannot reach the Dask '
                       'scheduler at tcp://127.0.0.1:9 within 2 s') as e:
        dist.Cluster(scheduler='tcp://127.0.0.1:9', timeout=2)
    assert made == []
    assert '\n' not in str(e.value)


@needs_native
def test_the_command_on_an_unreachable_scheduler(tmp_path):
    env = dict(os.environ, MINIBATCH_HYBRID_SCHEDULER='tcp://127.0.0.1:9')
    proc = subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'study', '--quick',
         '-o', str(tmp_path / 'x')], env=env, capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    # Given up after the default wait, before anything was written.
    assert len(lines) == 1 and 'cannot reach the Dask scheduler at ' \
        'tcp://127.0.0.1:9 within {} s'.format(dist.CONNECT_TIMEOUT) \
        in lines[0]
    assert not (tmp_path / 'x').exists()


class FakeClient(object):
    """Runs a function as on Dask's workers, here: each worker is
    ``(version, native)``, or None where the package cannot be imported."""

    def __init__(self, workers):
        self.workers = workers

    def run(self, function, *args):
        answers = {}
        for address, worker in self.workers.items():
            with pytest.MonkeyPatch.context() as m:
                if worker is None:
                    m.setitem(sys.modules, 'minibatch_hybrid', None)
                else:
                    m.setattr(mh, '__version__', worker[0])
                    m.setattr(kernels, 'available',
                              lambda native=worker[1]: native)
                answers[address] = function(*args)
        return answers


def fake_cluster(workers):
    cluster = dist.Cluster.__new__(dist.Cluster)
    cluster.client = FakeClient(workers)
    cluster.address = 'tcp://scheduler:8786'
    return cluster


def test_workers_that_would_compute_other_bits_are_refused():
    good = (mh.__version__, True)
    fake_cluster({'a': good}).check_workers('native')
    with pytest.raises(dist.ClusterError, match='not mixed in: b runs '
                       'minibatch_hybrid 0.1.0; install minibatch_hybrid'):
        fake_cluster({'a': good, 'b': ('0.1.0', True)}) \
            .check_workers('native')
    with pytest.raises(dist.ClusterError, match='b cannot import '
                       'minibatch_hybrid \\(import of minibatch_hybrid '
                       'halted'):
        fake_cluster({'b': None}).check_workers('native')
    with pytest.raises(dist.ClusterError, match='b cannot run the native '
                       'engine'):
        fake_cluster({'a': good, 'b': (mh.__version__, False)}) \
            .check_workers('native')
    with pytest.raises(dist.ClusterError, match='with the native engine '
                       'only: .* the numpy engine\'s follow each machine'):
        fake_cluster({'a': good}).check_workers('numpy')
    with pytest.raises(dist.ClusterError, match='has no workers; start some '
                       'with "dask worker tcp://scheduler:8786"'):
        fake_cluster({}).check_workers('native')


def start_worker(address, log, importable):
    """A ``dask worker`` process (no nanny) for the scheduler at
    ``address``; where not ``importable``, its Python cannot import
    minibatch_hybrid, as on a machine where it is not installed (None in
    sys.modules: the import raises ModuleNotFoundError, whichever way the
    package was installed)."""
    code = 'import sys\n'
    if not importable:
        code += 'sys.modules["minibatch_hybrid"] = None\n'
    code += 'from distributed.cli.dask_worker import main\nmain()\n'
    return subprocess.Popen(
        [sys.executable, '-c', code, address, '--no-nanny', '--nthreads',
         '1', '--no-dashboard', '--host', '127.0.0.1', '--death-timeout',
         '120'], stdout=log, stderr=subprocess.STDOUT)


@needs_native  # the worker that has the package passes with its kernels
def test_the_worker_probe_answers_without_the_package(tmp_path):
    # One scheduler, two workers: one that cannot import the package and
    # one that can.  The probe travels by value, so the first answers too,
    # and the refusal names it, and it only.
    # The scheduler's HTTP server (on without a dashboard too) on a free
    # port: its default, 8787, is the module's cluster's.
    with distributed.LocalCluster(
            n_workers=0, processes=False, protocol='tcp', host='127.0.0.1',
            dashboard_address=None,
            scheduler_kwargs={'dashboard_address': '127.0.0.1:0'},
            silence_logs=logging.ERROR) as local:
        workers = {}
        try:
            for importable in (False, True):
                with open(tmp_path / 'worker-{}.log'.format(importable),
                          'w') as log:
                    workers[importable] = start_worker(
                        local.scheduler_address, log, importable)
            with dist.Cluster(scheduler=local.scheduler_address) as cluster:
                cluster.client.wait_for_workers(2, timeout=120)
                by_pid = {pid: address for address, pid in
                          cluster.client.run(os.getpid).items()}
                without = by_pid[workers[False].pid]
                with_it = by_pid[workers[True].pid]
                with pytest.raises(dist.ClusterError) as e:
                    cluster.check_workers('native')
        finally:
            for proc in workers.values():
                proc.terminate()
                proc.wait(timeout=60)
    message = str(e.value)
    assert message.startswith(
        'workers that would compute other numbers are not mixed in: {} '
        'cannot import minibatch_hybrid (import of minibatch_hybrid '
        'halted'.format(without)), message
    assert with_it not in message


def test_a_process_of_another_version_does_not_train():
    with pytest.raises(RuntimeError, match='this process runs '
                       'minibatch_hybrid {}, the study 0.0.1'.format(
                           mh.__version__)):
        study.train_chunk(config(), 'numpy', [0], version='0.0.1')


@needs_native
def test_the_command_on_local_workers(tmp_path):
    proc = subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'study', '-e', '6',
         '--seeds', '2', '--chunk', '1', '-u', '8', '--workers', '2', '-o',
         str(tmp_path / 'x')], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'random                       fixed:3+random:3' in proc.stdout
    assert sorted(os.listdir(tmp_path / 'x' / 'chunks')) == [
        'chunk-00000.npz', 'chunk-00001.npz']


@pytest.mark.parametrize('address', ['garbage', 'foo://x:1', ' '])
def test_a_malformed_scheduler_address_is_one_line_at_once(address,
                                                           tmp_path):
    proc = subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'study', '--quick',
         '--scheduler', address, '-o', str(tmp_path / 'x')],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    # At once: the command's own check of the address said so (not Dask,
    # after trying to connect), before anything was written.
    assert len(lines) == 1 and ('--scheduler needs an address' in lines[0] or
                                'is not one Dask takes' in lines[0] or
                                'only tcp:// is supported' in lines[0])
    assert not (tmp_path / 'x').exists()
