"""The command line, end to end, in short runs."""
import csv
import json
import os
import signal
import subprocess
import sys

import numpy
import pytest

from minibatch_hybrid import cli
from minibatch_hybrid import kernels
from minibatch_hybrid.experiments.reproduce import OUTPUT_FILES

from _signals import default_sigint

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def run_cli(*args):
    return subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli'] + list(args),
        capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_reproduce_short_run_writes_figure_data_and_config(tmp_path):
    out = tmp_path / 'out'
    proc = run_cli('reproduce', '--quick', '-e', '20', '--units', '16',
                   '--seed', '3', '-o', str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == 'start...'
    assert lines[1].startswith('(normal) epoch: 10/20 normal loss: ')
    assert '(hybrid) epoch: 10/20 fixed loss: ' in proc.stdout
    assert '(hybrid) epoch: 20/20 random loss: ' in proc.stdout
    for label in ('normal', 'hybrid fixed', 'hybrid random'):
        assert 'execution time ({}): '.format(label) in proc.stdout
    assert sorted(os.listdir(out)) == sorted(OUTPUT_FILES)

    with open(out / 'loss.png', 'rb') as f:
        assert f.read(8) == PNG_MAGIC

    data = json.loads((out / 'losses.json').read_text())
    assert data['normal']['schedule'] == 'random'
    assert data['hybrid']['schedule'] == 'fixed:10+random:10'
    assert len(data['normal']['loss']) == len(data['hybrid']['loss']) == 20
    assert data['hybrid']['heldout_mse'] > 0

    with open(out / 'losses.csv') as f:
        rows = list(csv.DictReader(f))
    assert [int(r['epoch']) for r in rows] == list(range(1, 21))
    assert [float(r['hybrid_loss']) for r in rows] == data['hybrid']['loss']
    # The progress line of epoch 10 prints the recorded loss.
    assert 'normal loss: {}'.format(data['normal']['loss'][9]) in lines[1]

    config = json.loads((out / 'config.json').read_text())
    assert config['config']['seed'] == 3
    assert config['config']['switch_epoch'] == 10
    assert config['config']['schedules'] == {
        'normal': 'random', 'hybrid': 'fixed:10+random:10'}
    assert config['environment']['chainer'] == '7.8.1'
    assert config['environment']['device'] == '@numpy'
    assert config['environment']['numpy'] == numpy.__version__


@pytest.mark.slow
@pytest.mark.per_stack
def test_reproduce_is_deterministic_and_literal_mode(tmp_path):
    runs = []
    for name in ('a', 'b'):
        proc = run_cli('reproduce', '-e', '9', '--literal', '--units', '8',
                       '-o', str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads((tmp_path / name / 'losses.json').read_text()))
    assert runs[0] == {
        k: dict(v, seconds=runs[0][k]['seconds']) for k, v in runs[1].items()}
    assert len(runs[0]['normal']['loss']) == 9
    assert runs[0]['hybrid']['schedule'] == 'fixed:4+random:4'


@pytest.mark.parametrize('args,message', [
    (['-e', '0'], 'epochs must be a positive integer, got 0'),
    (['-e', '1'], 'at least one epoch in each phase'),
    (['-b', '0'], 'batch size must be an integer from 1'),
    (['-b', '1001'], 'batch size must be an integer from 1'),
    (['--seed', '-1'], 'seed must be a non-negative integer'),
    (['--units', '0'], 'n_units must be a positive integer'),
    (['-d', '@cupy:0'], "cannot use device '@cupy:0'.*CuPy could not be used"),
    (['-d', 'gpu'], "cannot use device 'gpu'"),
    (['--engine', 'fast'], "argument --engine: invalid choice: 'fast'"),
])
def test_reproduce_bad_options_exit_2_with_a_message(tmp_path, args,
                                                     message, capsys):
    if args[:2] == ['-d', '@cupy:0']:
        import chainer
        if chainer.backends.cuda.available:
            pytest.skip('a GPU is usable here')
    with pytest.raises(SystemExit) as e:
        cli.main(['reproduce', '-o', str(tmp_path / 'out')] + args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert __import__('re').search(message, err), err
    assert not (tmp_path / 'out').exists()


def test_interrupted_run_writes_nothing(tmp_path):
    out = tmp_path / 'out'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'reproduce', '-e',
         '400', '-o', str(out)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        assert proc.stdout.readline() == 'start...\n'
        assert proc.stdout.readline().startswith('(normal) epoch: 10/400')
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert 'interrupted: no result files were written' in stderr
    assert 'Traceback' not in stderr
    assert not out.exists() or os.listdir(out) == []


def test_scripts_reproduce_is_the_cli(tmp_path):
    script = os.path.join(os.path.dirname(__file__), '..', 'scripts',
                          'reproduce.py')
    proc = subprocess.run([sys.executable, script, '--help'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert '--literal' in proc.stdout and '--quick' in proc.stdout


def test_console_entry_point_is_installed():
    from importlib.metadata import entry_points
    (entry,) = [e for e in entry_points(group='console_scripts')
                if e.name == 'minibatch-hybrid']
    assert entry.value == 'minibatch_hybrid.cli:main'


@pytest.mark.skipif(not kernels.available(),
                    reason='the native engine is not built here')
def test_reproduce_with_the_native_engine(tmp_path):
    out = tmp_path / 'out'
    proc = run_cli('reproduce', '-e', '6', '--units', '8', '--engine',
                   'native', '-o', str(out))
    assert proc.returncode == 0, proc.stderr
    with open(out / 'config.json') as f:
        saved = json.load(f)
    assert saved['config']['engine'] == 'native'
    assert saved['environment']['native_kernels'] in ('c', 'avx2', 'avx512')
    with open(out / 'losses.json') as f:
        losses = json.load(f)
    assert len(losses['normal']['loss']) == 6
    assert all(numpy.isfinite(losses['hybrid']['train_loss']))


def test_reproduce_prints_its_numbers_when_no_file_can_be_written(
        tmp_path, capsys, monkeypatch):
    from minibatch_hybrid.experiments import reproduce

    def unwritable(outcome, config, out):
        raise OSError(28, os.strerror(28), os.path.join(out, 'losses.json'))

    monkeypatch.setattr(reproduce, 'write_outputs', unwritable)
    with pytest.raises(SystemExit) as e:
        cli.main(['reproduce', '-e', '4', '--units', '4', '-o',
                  str(tmp_path / 'out')])
    assert e.value.code == 2
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    # The table, as a run that can write prints it, then the one-line error.
    assert lines[-1].startswith('normal / hybrid final loss: '), lines
    assert lines[-4].split() == ['run', 'schedule', 'final', 'loss', 'train',
                                 'loss', 'held-out', 'MSE']
    assert [line.split()[:2] for line in lines[-3:-1]] == [
        ['normal', 'random'], ['hybrid', 'fixed:2+random:2']]
    assert captured.err.strip().splitlines()[-1:] == [
        'minibatch-hybrid: error: {}: {}'.format(
            tmp_path / 'out' / 'losses.json', os.strerror(28))]
