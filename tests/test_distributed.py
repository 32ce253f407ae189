"""Studies on a real Dask cluster (worker processes on loopback)."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import minibatch_hybrid as mh
from minibatch_hybrid import study
from minibatch_hybrid.study import distributed as dist
from minibatch_hybrid.study.config import StudyConfig

pytest.importorskip('distributed')


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


def test_a_distributed_study_is_the_same_bytes(here, cluster, tmp_path):
    out = str(tmp_path)
    result = study.run_study(config(), out, log=quiet, cluster=cluster)
    got = finish(result, out)
    assert sorted(got) == sorted(here)
    for name in here:
        assert got[name] == here[name], name


def slow_config():
    # Chunks of about half a second, so that a worker dies in the middle of
    # one.
    return config(schedules=['random', 'fixed:10+random:10'], epochs=20,
                  n_units=100, n_data=1000, n_heldout=100)


def test_a_killed_worker_costs_its_chunk_only(cluster, tmp_path):
    expected = str(tmp_path / 'here')
    here = finish(study.run_study(slow_config(), expected, log=quiet),
                  expected)
    out = str(tmp_path / 'cluster')
    pids = cluster.client.run(os.getpid)
    outcome = {}

    def run():
        try:
            outcome['result'] = study.run_study(slow_config(), out,
                                                log=quiet, cluster=cluster)
        except BaseException as e:  # shown by the assertion below
            outcome['error'] = e

    thread = threading.Thread(target=run)
    thread.start()
    busy = []
    deadline = time.monotonic() + 120
    while not busy and thread.is_alive():
        assert time.monotonic() < deadline
        busy = [w for w, keys in cluster.client.processing().items() if keys]
        time.sleep(0.01)
    assert busy, 'the study ended before a worker could be killed'
    os.kill(pids[busy[0]], signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert 'error' not in outcome, outcome.get('error')
    got = finish(outcome['result'], out)
    for name in here:
        assert got[name] == here[name], name


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
    deadline = time.monotonic() + 10
    while cluster.client.run_on_scheduler(
            lambda dask_scheduler: len(dask_scheduler.tasks)):
        assert time.monotonic() < deadline, 'tasks left on the scheduler'
        time.sleep(0.05)
    monkeypatch.setattr(study.folder.StudyFolder, 'save', real)
    assert len(os.listdir(os.path.join(out, 'chunks'))) == 2
    lines = []
    result = study.run_study(config(), out, log=lines.append)
    assert lines == ['continuing: 2 of 6 chunks already saved in ' + out]
    got = finish(result, out)
    for name in here:
        assert got[name] == here[name], name


def test_an_unreachable_scheduler_fails_fast_in_one_line():
    start = time.monotonic()
    with pytest.raises(dist.ClusterError, match='cannot reach the Dask '
                       'scheduler at tcp://127.0.0.1:9 within 2 s') as e:
        dist.Cluster(scheduler='tcp://127.0.0.1:9', timeout=2)
    assert time.monotonic() - start < 10
    assert '\n' not in str(e.value)


def test_the_command_on_an_unreachable_scheduler(tmp_path):
    env = dict(os.environ, MINIBATCH_HYBRID_SCHEDULER='tcp://127.0.0.1:9')
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'study', '--quick',
         '-o', str(tmp_path / 'x')], env=env, capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 2
    assert time.monotonic() - start < 60
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'cannot reach the Dask scheduler at ' \
        'tcp://127.0.0.1:9' in lines[0]
    assert not (tmp_path / 'x').exists()


class FakeClient(object):
    def __init__(self, infos):
        self.infos = infos

    def run(self, function):
        return self.infos


def fake_cluster(infos):
    cluster = dist.Cluster.__new__(dist.Cluster)
    cluster.client = FakeClient(infos)
    cluster.address = 'tcp://scheduler:8786'
    return cluster


def test_workers_that_would_compute_other_bits_are_refused():
    good = dict(version=mh.__version__, native=True)
    assert fake_cluster({'a': good}).check_workers('native')
    with pytest.raises(dist.ClusterError, match='not mixed in: b runs '
                       'minibatch_hybrid 0.1.0; install minibatch_hybrid'):
        fake_cluster({'a': good, 'b': dict(good, version='0.1.0')}) \
            .check_workers('native')
    with pytest.raises(dist.ClusterError, match='b cannot import '
                       'minibatch_hybrid \\(No module named'):
        fake_cluster({'b': dict(version=None, native=False,
                                error="No module named 'minibatch_hybrid'")}) \
            .check_workers('native')
    with pytest.raises(dist.ClusterError, match='b cannot run the native '
                       'engine'):
        fake_cluster({'a': good, 'b': dict(good, native=False)}) \
            .check_workers('native')
    with pytest.raises(dist.ClusterError, match='with the native engine '
                       'only: .* the numpy engine\'s follow each machine'):
        fake_cluster({'a': good}).check_workers('numpy')
    with pytest.raises(dist.ClusterError, match='has no workers; start some '
                       'with "dask worker tcp://scheduler:8786"'):
        fake_cluster({}).check_workers('native')


def test_the_worker_probe_answers_without_the_package(cluster):
    # The probe travels by value: a worker that cannot import the package
    # still answers (here: every worker can).
    infos = cluster.check_workers('native')
    assert {i['version'] for i in infos.values()} == {mh.__version__}


def test_a_process_of_another_version_does_not_train():
    with pytest.raises(RuntimeError, match='this process runs '
                       'minibatch_hybrid {}, the study 0.0.1'.format(
                           mh.__version__)):
        study.train_chunk(config(), 'numpy', [0], version='0.0.1')


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
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'study', '--quick',
         '--scheduler', address, '-o', str(tmp_path / 'x')],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert time.monotonic() - start < 15
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and ('--scheduler needs an address' in lines[0] or
                                'is not one Dask takes' in lines[0])
