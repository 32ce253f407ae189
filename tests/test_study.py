import csv
import json
import os
import subprocess
import sys

import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.core.data import make_heldout_dataset
from minibatch_hybrid import kernels
from minibatch_hybrid.experiments import study
from minibatch_hybrid.experiments.study import StudyConfig

SCHEDULES = ['random', 'fixed:3+random:3']

#: The studies here run on the default engine: the native one where the
#: kernels are built (its bits are the same on every machine), else the
#: numpy engine (the same bits on one NumPy + BLAS stack).
STUDY_CONTRACT = pytest.mark.exact if kernels.available() else \
    pytest.mark.per_stack


def config(**kwargs):
    settings = dict(schedules=SCHEDULES, seeds=3, epochs=6, n_units=16,
                    n_data=200, n_heldout=50, chunk=2)
    settings.update(kwargs)
    return StudyConfig(**settings)


def quiet(line):
    pass


def stop_after_first_chunk(monkeypatch):
    """Makes run_study raise KeyboardInterrupt as the second chunk starts;
    returns a function that undoes it."""
    real = study.run.train_chunk
    calls = []

    def first_only(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(study.run, 'train_chunk', first_only)
    return lambda: monkeypatch.setattr(study.run, 'train_chunk', real)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('study'))
    return out, study.run_study(config(), out, log=quiet)


def alone(engine, seed, n_units):
    """One replica of the engine, with its optimizer (None: native)."""
    if engine == 'native':
        return mh.NativeEnsemble.from_seeds([seed], n_units), None
    ensemble = mh.Ensemble.from_seeds([seed], n_units)
    return ensemble, mh.make_optimizer(ensemble)


@STUDY_CONTRACT
def test_study_matches_single_runs(uninterrupted):
    # Each (schedule, seed) of the study is that replica trained alone by
    # the same engine, bit for bit: the study routes seeds, schedules,
    # data and held-out points to the right replica, and a replica's
    # numbers do not depend on its neighbours.
    _, result = uninterrupted
    assert result.loss.shape == (2, 3, 6)
    for i, text in enumerate(SCHEDULES):
        for k, seed in enumerate([0, 1, 2]):
            model, optimizer = alone(result.engine, seed, 16)
            single = mh.train(model, optimizer, mh.make_sin_dataset(200),
                              [mh.parse_schedule(text, seed)], 6,
                              heldout=make_heldout_dataset(50, seed))
            numpy.testing.assert_array_equal(result.loss[i, k],
                                             single.loss[:, 0])
            assert result.final_train_loss[i, k] == single.train_loss[-1, 0]
            assert result.heldout_mse[i, k] == single.heldout_mse[0]


@STUDY_CONTRACT
def test_chunk_size_does_not_change_results(uninterrupted, tmp_path):
    _, result = uninterrupted
    other = study.run_study(config(chunk=3), str(tmp_path), log=quiet)
    numpy.testing.assert_array_equal(other.loss, result.loss)
    numpy.testing.assert_array_equal(other.final_train_loss,
                                     result.final_train_loss)


@STUDY_CONTRACT
def test_interrupted_study_continues_to_the_same_results(
        uninterrupted, tmp_path, monkeypatch):
    _, result = uninterrupted
    out = str(tmp_path)
    undo = stop_after_first_chunk(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        study.run_study(config(), out, log=quiet)
    assert os.listdir(os.path.join(out, 'chunks')) == ['chunk-00000.npz']
    undo()
    lines = []
    resumed = study.run_study(config(), out, log=lines.append)
    assert lines == ['continuing: 1 of 2 chunks already saved in ' + out]
    numpy.testing.assert_array_equal(resumed.loss, result.loss)
    numpy.testing.assert_array_equal(resumed.heldout_mse, result.heldout_mse)


def test_other_settings_in_the_same_folder_are_refused(uninterrupted):
    out, _ = uninterrupted
    with pytest.raises(ValueError, match='holds a study with other settings '
                       r'\(epochs, schedules differ\)'):
        study.run_study(config(epochs=4, schedules=['random']), out,
                        log=quiet)


def test_summary_and_outputs(uninterrupted):
    out, result = uninterrupted
    summary = study.summarize(result)
    assert list(summary['schedules']) == SCHEDULES
    (pair,) = summary['pairs']
    assert (pair['a'], pair['b']) == tuple(SCHEDULES)
    ratio = result.final_train_loss[0] / result.final_train_loss[1]
    assert pair['median_ratio'] == pytest.approx(numpy.median(ratio))
    assert pair['b_wins'] == pytest.approx(
        numpy.mean(result.final_train_loss[1] < result.final_train_loss[0]))
    assert study.summarize(result) == summary  # seeded bootstrap
    study.write_study_outputs(result, summary, out)
    for name in study.STUDY_FILES:
        assert os.path.getsize(os.path.join(out, name)) > 0
    with numpy.load(os.path.join(out, 'curves.npz')) as data:
        assert data['loss'].shape == (2, 3, 6)
        assert data['schedules'].tolist() == SCHEDULES
    with open(os.path.join(out, 'final.csv')) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    assert float(rows[4]['final_train_loss']) == pytest.approx(
        float(result.final_train_loss[1, 1]))
    with open(os.path.join(out, 'summary.json')) as f:
        saved = json.load(f)
    assert saved['summary']['pairs'][0]['b_wins'] == pair['b_wins']
    lines = study.summary_table(summary)
    assert lines[0] == ('3 seeds, 6 epochs, {} engine; final training loss '
                        '(full data):'.format(result.engine))
    assert saved['summary']['engine'] == result.engine


@pytest.mark.skipif(not kernels.available(),
                    reason='the native engine is not built here')
def test_engine_is_recorded_and_not_mixed(uninterrupted, tmp_path):
    out, result = uninterrupted
    assert result.engine == 'native'
    with pytest.raises(ValueError, match='holds a study run by the native '
                       'engine, and this run would use numpy'):
        study.run_study(config(engine='numpy'), out, log=quiet)
    # In a folder of its own the numpy engine runs, and says so.  (How the
    # engines' steps relate: tests/test_bounds.py.)
    other = study.run_study(config(engine='numpy'), str(tmp_path), log=quiet)
    assert other.engine == 'numpy'
    assert other.loss.shape == result.loss.shape


@pytest.mark.exact
@pytest.mark.skipif(len(kernels.supported_kernels()) < 2,
                    reason='this CPU runs one kernel set only')
def test_a_study_continues_on_another_kernel_set_to_the_same_bytes(
        uninterrupted, tmp_path, monkeypatch):
    # As a study started on one CPU and continued on another: the first
    # chunk with the portable set, the rest with the fastest.
    _, result = uninterrupted
    out = str(tmp_path)
    undo = stop_after_first_chunk(monkeypatch)
    with kernels.using_kernels('c'), pytest.raises(KeyboardInterrupt):
        study.run_study(config(), out, log=quiet)
    undo()
    fastest = kernels.supported_kernels()[-1]
    with kernels.using_kernels(fastest):
        resumed = study.run_study(config(), out, log=quiet)
    for name in ('loss', 'final_loss', 'heldout_mse', 'coverage'):
        numpy.testing.assert_array_equal(getattr(resumed, name),
                                         getattr(result, name))


def test_a_folder_of_the_old_cpu_dependent_kernels_is_refused(tmp_path):
    out = str(tmp_path)
    with open(os.path.join(out, 'study.json'), 'w') as f:
        json.dump({'config': config().identity(), 'engine': 'native-avx512'},
                  f)
    with pytest.raises(ValueError, match='run by the native-avx512 kernels '
                       'of an earlier version, whose arithmetic depended on '
                       'the CPU'):
        study.run_study(config(engine='auto'), out, log=quiet)


@pytest.mark.parametrize('kwargs,message', [
    (dict(seeds=0), 'number of seeds must be a positive integer'),
    (dict(schedules=['fixed:3+random:2']), 'defines 5 epochs, but the run '
     'has 6'),
    (dict(schedules=['random', 'random']), 'listed twice'),
    (dict(schedules=[]), 'at least one schedule'),
    (dict(first_seed=-1), 'first seed must be a non-negative'),
    (dict(chunk=0), 'chunk must be a positive integer'),
    (dict(batchsize=500), 'batch size must be an integer from 1'),
    (dict(engine='fast'), "unknown engine 'fast': choose one of auto, "
     'native, numpy'),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        config(**kwargs)


def test_sweep_schedules():
    sweep = study.sweep_schedules(10, [0, 0.25, 1])
    assert sweep == {
        'fixed first': [(0.0, 'random'), (0.2, 'fixed:2+random:8'),
                        (1.0, 'fixed')],
        'random first': [(0.0, 'random'), (0.2, 'random:8+fixed:2'),
                         (1.0, 'fixed')]}
    assert list(study.sweep_schedules(10, [0.5], reverse=False)) == [
        'fixed first']
    with pytest.raises(ValueError, match=r'must lie in \[0, 1\]'):
        study.sweep_schedules(10, [1.5])


def run_cli(*args):
    return subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli'] + list(args),
        capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_study_and_sweep_commands(tmp_path):
    proc = run_cli('study', '--quick', '-e', '6', '--seeds', '2', '-u', '8',
                   '-o', str(tmp_path / 'study'))
    assert proc.returncode == 0, proc.stderr
    assert 'random                       fixed:3+random:3' in proc.stdout
    for name in study.STUDY_FILES:
        assert (tmp_path / 'study' / name).exists()
    with open(tmp_path / 'study' / 'paired.png', 'rb') as f:
        assert f.read(4) == b'\x89PNG'
    proc = run_cli('sweep', '-e', '4', '--seeds', '2', '-u', '8',
                   '--fractions', '0,0.5,1', '-o', str(tmp_path / 'sweep'))
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / 'sweep' / 'sweep.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['schedule'] for r in rows] == [
        'random', 'fixed:2+random:2', 'fixed', 'random', 'random:2+fixed:2',
        'fixed']
    assert (tmp_path / 'sweep' / 'sweep.png').exists()


@pytest.mark.parametrize('args,message', [
    (['study', '--seeds', '0'], 'number of seeds must be a positive'),
    (['study', '-e', '10', '-s', 'random,fixed:4'], 'defines 4 epochs'),
    (['sweep', '--fractions', '0,a'], '--fractions must be comma-separated'),
    (['bench', '-k', '0'], '--replicas must be comma-separated positive'),
    (['study', '--workers', '2', '--scheduler', 'tcp://h:1'],
     'give --scheduler (or $MINIBATCH_HYBRID_SCHEDULER) or --workers, not '
     'both'),
    (['sweep', '--workers', '0'], '--workers must be a positive integer'),
])
def test_bad_options(tmp_path, args, message):
    proc = run_cli(*(args + ['-o', str(tmp_path / 'x')]))
    assert proc.returncode == 2
    assert message in proc.stderr


def test_interrupted_study_command_says_how_to_continue(tmp_path, monkeypatch,
                                                        capsys):
    from minibatch_hybrid import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study, 'run_study', interrupted)
    out = str(tmp_path / 'x')
    assert cli.main(['study', '--quick', '-o', out]) == 130
    err = capsys.readouterr().err
    assert 'the chunks finished so far are saved in {}; rerun the same ' \
        'command to continue'.format(out) in err


@pytest.mark.skipif(not kernels.available(),
                    reason='the native engine is not built here')
def test_reproduce_native_equals_the_studys_runs_of_its_seed(uninterrupted):
    import io
    from minibatch_hybrid.experiments.reproduce import ReproductionConfig
    from minibatch_hybrid.experiments.reproduce import run_reproduction
    outcome = run_reproduction(
        ReproductionConfig(seed=1, epochs=6, n_units=16, n_data=200,
                           n_heldout=50, engine='native'),
        log=quiet, progress_stream=io.StringIO())
    _, result = uninterrupted
    for i, run in enumerate(('normal', 'hybrid')):
        numpy.testing.assert_array_equal(outcome[run].loss, result.loss[i, 1])
        assert outcome[run].heldout_mse == result.heldout_mse[i, 1]
        assert outcome[run].train_loss[-1] == result.final_train_loss[i, 1]
