"""The Trainer example's faults: a full disk while training, Ctrl-C."""
import errno
import gc
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import time
import types

from chainer.training.extensions import log_report
import numpy
import pytest

from minibatch_hybrid.chainer_ext import trainer as trainer_module

from _signals import default_sigint

TRAINER = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                       'scripts', 'train_chainer.py')
RUN = ['-e', '6', '-u', '8', '--snapshot-every', '2', '--no-report']
FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def script():
    """scripts/train_chainer.py as a module of this process."""
    spec = importlib.util.spec_from_file_location('train_chainer', TRAINER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(script, capsys, *args):
    handler = signal.getsignal(signal.SIGINT)
    try:
        status = script.main(list(args))
    except SystemExit as e:
        status = e.code
    # The run gave SIGINT back as it found it.
    assert signal.getsignal(signal.SIGINT) is handler
    out, err = capsys.readouterr()
    return status, out, err


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def disk_full_at(monkeypatch, name):
    """Writing snapshot ``name`` (or any, with None) fails: disk full."""
    def failing(real):
        def savez(file, *args, **kwargs):
            if name is None or name in str(getattr(file, 'name', file)):
                raise FULL
            return real(file, *args, **kwargs)
        return savez

    # Chainer's save_npz compresses by default.
    for which in ('savez', 'savez_compressed'):
        monkeypatch.setattr(numpy, which, failing(getattr(numpy, which)))


def test_a_full_disk_at_a_snapshot_names_it_and_the_last_one(
        script, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / 'x')
    disk_full_at(monkeypatch, 'snapshot_epoch_4')
    status, _, err = run_main(script, capsys, *RUN, '-o', out)
    assert status == 2
    last = os.path.join(out, 'snapshot_epoch_2')
    line = one_line(err)
    assert 'error: could not write the snapshot snapshot_epoch_4 into ' + \
        out + ': No space left on device; training stopped at epoch 4; ' \
        'the last complete snapshot is ' + last + ': free some space and ' \
        'rerun with --resume ' + last in line, line
    # Chainer's temporary folder is gone; the named snapshot resumes.
    assert sorted(os.listdir(out)) == ['log', 'snapshot_epoch_2']
    monkeypatch.undo()
    status, _, err = run_main(script, capsys, *RUN, '-o', str(tmp_path / 'y'),
                              '-r', last)
    assert status == 0, err
    with open(tmp_path / 'y' / 'log') as f:
        assert [e['epoch'] for e in json.load(f)] == list(range(1, 7))


def test_a_full_disk_at_the_log_names_it(script, tmp_path, monkeypatch,
                                         capsys):
    out = str(tmp_path / 'x')

    def dump(log, f, **kwargs):
        if len(log) == 3:
            raise FULL
        json.dump(log, f, **kwargs)

    monkeypatch.setattr(log_report, 'json', types.SimpleNamespace(
        dump=dump, dumps=json.dumps, loads=json.loads))
    status, _, err = run_main(script, capsys, *RUN, '-o', out)
    assert status == 2
    line = one_line(err)
    assert 'could not write the log into ' + out in line, line
    assert 'training stopped at epoch 3; the last complete snapshot is ' + \
        os.path.join(out, 'snapshot_epoch_2') in line, line


def test_an_earlier_runs_snapshots_are_not_named(script, tmp_path,
                                                 monkeypatch, capsys):
    out = str(tmp_path / 'x')
    assert run_main(script, capsys, *RUN, '-o', out)[0] == 0
    disk_full_at(monkeypatch, None)  # this run writes no snapshot
    status, _, err = run_main(script, capsys, *RUN, '-o', out)
    assert status == 2
    line = one_line(err)
    assert 'could not write the snapshot snapshot_epoch_2 into ' + out in \
        line, line
    assert line.endswith('training stopped at epoch 2; no snapshot of this '
                         'run is complete: free some space and rerun'), line


class SignalInFinalizer(object):
    """Sends this process SIGINT from its ``__del__``, then goes on.

    Python raises the KeyboardInterrupt there, in the finalizer, where it
    is printed as "Exception ignored" and lost.
    """

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs here, inside __del__
            pass


def test_sigint_in_a_finalizer_is_lost_without_a_handler():
    # The danger: under Python's own handler, the program goes on, exit 0.
    code = ('import os, signal\n'
            'class C:\n'
            '    def __del__(self):\n'
            '        os.kill(os.getpid(), signal.SIGINT)\n'
            '        for _ in range(1000):\n'
            '            pass\n'
            'signal.signal(signal.SIGINT, signal.default_int_handler)\n'
            'C()\n'
            'print("went on")\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == 'went on\n', proc.stderr
    assert 'Exception ignored' in proc.stderr
    assert 'KeyboardInterrupt' in proc.stderr


def test_sigint_in_a_finalizer_stops_the_run(script, tmp_path, monkeypatch,
                                             capsys):
    # SIGINT while a finalizer runs, at iteration 50 (of 600): the run
    # stops there, with 130, instead of training to the end.
    real = trainer_module.build_trainer

    def build_trainer(*args, **kwargs):
        trainer = real(*args, **kwargs)

        def finalize_something(trainer):
            if trainer.updater.iteration == 50:
                SignalInFinalizer()  # collected at once

        trainer.extend(finalize_something, trigger=(1, 'iteration'))
        return trainer

    monkeypatch.setattr(trainer_module, 'build_trainer', build_trainer)
    out = tmp_path / 'x'
    # As a terminal's command gets it (this suite may have SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        status, _, err = run_main(script, capsys, *RUN, '-o', str(out))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert status == 130
    assert one_line(err).startswith('interrupted: ')
    assert not os.path.exists(out / 'log')  # stopped in epoch 1


def mapped(pid, name):
    try:
        with open('/proc/{}/maps'.format(pid)) as f:
            return name in f.read()
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.exists('/proc/self/maps'),
                    reason='needs /proc to see what the command has loaded')
@pytest.mark.parametrize('moment,iterator', [
    ('starting', 'serial'), ('training', 'serial'),
    ('training', 'multithread')])
def test_ctrl_c_at_any_moment_ends_the_run_with_130(tmp_path, moment,
                                                    iterator):
    # As the package starts (NumPy's core just loaded), or once training
    # runs (the first epoch logged): exit 130, one line, and no epoch
    # after the signal.  A lost one would train all 60 epochs.
    out = tmp_path / 'x'
    proc = subprocess.Popen(
        [sys.executable, TRAINER, '-e', '60', '-o', str(out), '--iterator',
         iterator], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, preexec_fn=default_sigint)
    while not (mapped(proc.pid, '_multiarray_umath') if moment == 'starting'
               else os.path.exists(out / 'log')):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.002)  # pytest-timeout ends a hang
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=100)[1]
    assert proc.returncode == 130, err
    assert one_line(err).startswith('interrupted'), err
    assert 'Exception ignored' not in err and 'Traceback' not in err
    if os.path.exists(out / 'log'):
        with open(out / 'log') as f:
            assert len(json.load(f)) < 60


# Sends SIGINT to this process as the script's run() returns: after its
# last check of Ctrl-C, while the run ends (a profile hook, so that the
# moment does not depend on the clock).
AFTER_RUN = '''
import os, runpy, signal, sys
def hook(frame, event, arg):
    if event == 'return' and frame.f_code.co_name == 'run' and \\
            frame.f_code.co_filename.endswith('train_chainer.py'):
        sys.setprofile(None)
        os.kill(os.getpid(), signal.SIGINT)
sys.argv = [sys.argv[1]] + sys.argv[2:]
sys.setprofile(hook)
runpy.run_path(sys.argv[0], run_name='__main__')
'''


@pytest.mark.timeout(120)
def test_ctrl_c_after_the_last_check_ends_the_run_with_130(tmp_path):
    out = tmp_path / 'x'
    proc = subprocess.run(
        [sys.executable, '-c', AFTER_RUN, TRAINER] + RUN + ['-o', str(out)],
        capture_output=True, text=True, timeout=100,
        preexec_fn=default_sigint)
    assert proc.returncode == 130, proc.stderr
    assert one_line(proc.stderr) == ('interrupted after the run ended: its '
                                     'log and snapshots are written')
    with open(out / 'log') as f:
        assert len(json.load(f)) == 6


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs setrlimit in a '
                    'child (POSIX)')
def test_a_real_full_disk_is_one_line_and_nothing_ignored(tmp_path):
    # A file size limit, as a full disk, fails the first snapshot halfway:
    # NumPy's zip archive is left open on a file Chainer has closed, whose
    # __del__ printed "Exception ignored ... seek of closed file".
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (24 * 1024, 24 * 1024))

    proc = subprocess.run(
        [sys.executable, TRAINER, '-e', '6', '--snapshot-every', '1',
         '--no-report', '-o', str(tmp_path / 'x')], preexec_fn=limit,
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert 'could not write the snapshot snapshot_epoch_1' in line
    assert 'no snapshot of this run is complete' in line


@pytest.mark.skipif(not os.path.exists('/dev/full'),
                    reason='no /dev/full here')
@pytest.mark.parametrize('where', ['closed', 'full, and standard error'])
def test_a_closed_or_full_standard_output_is_exit_status_2(tmp_path, where):
    # >&- gave a traceback at the progress bar (the run stopped at epoch
    # 1); both streams full ended with exit status 1.
    with open('/dev/full', 'w') as full:
        if where == 'closed':
            proc = subprocess.run(
                [sys.executable, TRAINER, '-e', '4', '-u', '8',
                 '--snapshot-every', '2', '-o', str(tmp_path / 'x')],
                stderr=subprocess.PIPE, text=True, timeout=300,
                preexec_fn=lambda: os.close(1))
        else:
            proc = subprocess.run(
                [sys.executable, TRAINER, '-e', '4', '-u', '8',
                 '--snapshot-every', '2', '-o', str(tmp_path / 'x')],
                stdout=full, stderr=full, timeout=300)
    assert proc.returncode == 2, proc.stderr
    if where == 'closed':
        assert 'could not write to standard output (it is closed)' in \
            one_line(proc.stderr)
    assert {'snapshot_epoch_2', 'snapshot_epoch_4'} <= set(
        os.listdir(tmp_path / 'x'))


def test_a_closed_standard_output_does_not_stop_the_run(tmp_path):
    # Chainer's report and progress bar wrote to a pipe whose reader had
    # gone: the run stopped at its first line, as if the disk were full.
    proc = subprocess.Popen(
        [sys.executable, TRAINER, '-e', '6', '-u', '8', '--snapshot-every',
         '3', '-o', str(tmp_path / 'x')], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=300) == 2, err
    line = one_line(err)
    assert 'could not write to standard output (Broken pipe)' in line
    assert sorted(os.listdir(tmp_path / 'x')) == [
        'log', 'loss.png', 'snapshot_epoch_3', 'snapshot_epoch_6']


class _FullDisk(io.FileIO):
    """A file on a disk that fills after ``room`` bytes (ENOSPC)."""

    room = 3000

    def write(self, data):
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_a_disk_full_also_at_the_snapshots_close_prints_nothing_more(
        script, tmp_path, monkeypatch, capsys):
    # As on a real full disk (a small tmpfs): the buffered snapshot file
    # fails again when Chainer's "with open()" closes it, while the first
    # failure is handled; NumPy's zip archive, left open in that first
    # failure's frames, printed "Exception ignored ... seek of closed
    # file" when it was collected.
    from chainer.serializers import npz
    monkeypatch.setattr(npz, 'open', lambda path, mode: io.BufferedWriter(
        _FullDisk(path, mode), buffer_size=512), raising=False)
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    status, _, err = run_main(script, capsys, *RUN, '-o',
                              str(tmp_path / 'x'))
    gc.collect()
    assert status == 2
    assert 'could not write the snapshot snapshot_epoch_2' in one_line(err)
    assert not unraisable, [u.exc_value for u in unraisable]
