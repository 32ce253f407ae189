"""Faults a user meets: bad output places, full disks, sizes that cannot
fit, interruptions.  Each is one line, early, with nothing lost."""
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from minibatch_hybrid import checks
from minibatch_hybrid import cli
from minibatch_hybrid.experiments import reproduce
from minibatch_hybrid.io import results
from minibatch_hybrid.experiments.reproduce import OUTPUT_FILES

from _marks import needs_native
from _signals import default_sigint

SHORT = ['-e', '4', '-u', '8']


def run_main(capsys, *args):
    """cli.main in this process: (status, stdout, stderr)."""
    try:
        status = cli.main(list(args))
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def read_all(folder, names):
    out = {}
    for name in names:
        with open(os.path.join(folder, name), 'rb') as f:
            out[name] = f.read()
    return out


def one_line_error(err, *parts):
    # Progress lines (a tenth of the work each) are not errors.
    lines = [line for line in err.strip().splitlines()
             if not re.match(r'\s*\d+% \d+/\d+ ', line)]
    assert len(lines) == 1, err
    for part in parts:
        assert part in lines[0], err
    return lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / 'file'
    path.write_text('not a folder')
    return str(path)


@pytest.mark.parametrize('command', [['reproduce'] + SHORT, ['bench'],
                                     ['study', '--quick'],
                                     ['sweep', '--quick']])
def test_an_output_that_names_a_file(command, a_file, capsys):
    status, out, err = run_main(capsys, *(command + ['-o', a_file]))
    assert status == 2
    one_line_error(err, a_file, 'is a file')
    # Refused at once: before any training, and nothing was written (the
    # file is as it was, and nothing appeared beside it).
    assert 'start...' not in out
    assert os.listdir(os.path.dirname(a_file)) == ['file']
    with open(a_file) as f:
        assert f.read() == 'not a folder'


@pytest.mark.parametrize('where', ['under a file', 'in /proc'])
def test_an_output_nobody_can_create(where, a_file, capsys):
    out_dir = os.path.join(a_file, 'sub') if where == 'under a file' \
        else '/proc/minibatch-hybrid-test/out'
    status, out, err = run_main(capsys, 'reproduce', *SHORT, '-o', out_dir)
    assert status == 2
    one_line_error(err, 'cannot write into the output folder', out_dir)
    assert 'start...' not in out


def test_a_read_only_file_system_is_found_before_training(tmp_path,
                                                          monkeypatch,
                                                          capsys):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(results.tempfile, 'mkstemp', read_only)
    status, out, err = run_main(capsys, 'reproduce', *SHORT, '-o',
                                str(tmp_path / 'x'))
    assert status == 2
    one_line_error(err, 'Read-only file system')
    assert 'start...' not in out


def test_a_full_disk_at_the_end_loses_nothing(tmp_path, monkeypatch,
                                              capsys):
    out_dir = str(tmp_path / 'x')
    real = results.write_csv

    def full(path, header, rows):
        if path.startswith(out_dir):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        real(path, header, rows)

    monkeypatch.setattr(results, 'write_csv', full)
    status, out, err = run_main(capsys, 'reproduce', *SHORT, '-o', out_dir)
    assert status == 2
    line = one_line_error(err, 'could not write the results into',
                          'No space left on device', 'were written to')
    fallback = line.split('were written to ')[1].split(' instead')[0]
    assert sorted(os.listdir(fallback)) == sorted(OUTPUT_FILES)
    shutil.rmtree(fallback)
    assert [n for n in os.listdir(out_dir) if not n.startswith('.')] == []


def test_an_interruption_while_writing_leaves_the_earlier_results(
        tmp_path, monkeypatch, capsys):
    out_dir = str(tmp_path / 'x')
    assert run_main(capsys, 'reproduce', *SHORT, '--seed', '1', '-o',
                    out_dir)[0] == 0
    before = read_all(out_dir, OUTPUT_FILES)
    real = results.write_json
    calls = []

    def interrupted(path, obj):
        calls.append(path)
        if len(calls) == 2:  # after loss.png, losses.csv, losses.json
            raise KeyboardInterrupt
        real(path, obj)

    monkeypatch.setattr(results, 'write_json', interrupted)
    status, out, err = run_main(capsys, 'reproduce', *SHORT, '-o', out_dir)
    assert status == 130
    assert 'holds the results of an earlier run' in out
    one_line_error(err, 'no result files were written or changed')
    after = read_all(out_dir, OUTPUT_FILES)
    assert after == before
    assert sorted(os.listdir(out_dir)) == sorted(OUTPUT_FILES)


def test_rerunning_into_a_folder_says_it_replaces_the_results(tmp_path,
                                                              capsys):
    out_dir = str(tmp_path / 'x')
    assert run_main(capsys, 'reproduce', *SHORT, '-o', out_dir)[0] == 0
    status, out, _ = run_main(capsys, 'reproduce', *SHORT, '--seed', '2',
                              '-o', out_dir)
    assert status == 0
    assert out.startswith('{} holds the results of an earlier run '
                          '(config.json, loss.png, losses.csv, losses.json); '
                          'this run replaces them'.format(out_dir))


GB = 10 ** 9

#: Sizes of a reproduction that need about 400 GB of memory: the records of
#: 10**9 epochs, or the weights of 10**5 hidden units.
TOO_BIG = [
    (['--epoch', '1000000000'], 'this run (1000000000 epochs, 100 hidden '
     'units) needs about'),
    (['--units', '100000'], 'this run (500 epochs, 100000 hidden units) '
     'needs about'),
]


@pytest.mark.parametrize('args,what', TOO_BIG)
def test_sizes_that_cannot_fit_are_refused_at_once(args, what, tmp_path,
                                                   monkeypatch, capsys):
    # Whether a size fits depends on the memory free, which the test passes
    # in (8 GB) instead of measuring it: on a machine with 400 GB free the
    # run would be accepted, and would train for ever.
    monkeypatch.setattr(checks, 'available_memory', lambda: 8 * GB)
    status, out, err = run_main(capsys, 'reproduce', *args, '-o',
                                str(tmp_path / 'x'))
    assert status == 2
    # "has 8 GB free": the command asked the patched function.
    one_line_error(err, what, 'GB of memory', 'and this machine has 8 GB '
                   'free', 'use fewer --epoch or --units')
    assert 'start...' not in out  # refused before any training
    assert not (tmp_path / 'x').exists()


class Started(Exception):
    """Raised in place of the training, to stop a command that got there."""


@pytest.mark.parametrize('args,what', TOO_BIG)
def test_the_same_sizes_pass_where_the_memory_is_free(args, what, tmp_path,
                                                      monkeypatch, capsys):
    # The refusal above is the memory's, not the sizes': with 1 PB free the
    # command passes its memory check and gets to the training, which is
    # replaced by a stop (10**9 epochs would run for ever).
    monkeypatch.setattr(checks, 'available_memory', lambda: 10 ** 15)

    def started(config):
        raise Started(config)

    monkeypatch.setattr(reproduce, 'run_reproduction', started)
    with pytest.raises(Started) as e:
        cli.main(['reproduce'] + args + ['-o', str(tmp_path / 'x')])
    assert capsys.readouterr().out.endswith('start...\n')
    config = e.value.args[0]
    # The config the command would have trained needs more than 8 GB: the
    # figure passed in, not the sizes, decided both verdicts.
    assert 8 * GB < config.memory_needed() < 10 ** 15
    config.check_memory()  # the patched figure: 1 PB
    with pytest.raises(ValueError, match=re.escape(what) + '.* has 8 GB '
                       'free'):
        config.check_memory(available=8 * GB)


def loaded(pid, name):
    """Whether process ``pid`` has mapped a library whose path has name."""
    try:
        with open('/proc/{}/maps'.format(pid)) as f:
            return name in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists('/proc/self/maps'),
                    reason='needs /proc to see what the command has loaded')
@pytest.mark.parametrize('after', [
    'numpy', pytest.param('kernels', marks=needs_native)])
def test_ctrl_c_while_starting_is_one_line(tmp_path, after):
    # SIGINT once the command runs the package's code: as NumPy's core is
    # loaded (the package's first import), or as the package's own kernels
    # are (after chainer).  (The first few milliseconds, before Python runs
    # any of the package's code, are Python's own; an interruption of the
    # run itself is tested in test_cli.)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'reproduce', '-o',
         str(tmp_path / 'x')], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    marker = {'numpy': '_multiarray_umath',
              'kernels': 'minibatch_hybrid/kernels/_native'}[after]
    while not loaded(proc.pid, marker):  # pytest-timeout ends a hang
        assert proc.poll() is None, 'never loaded ' + marker
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = one_line_error(err, 'interrupted')
    assert 'Traceback' not in err
    assert line in ('interrupted while starting: nothing was run',
                    'interrupted: no result files were written or changed')


TRAINER = os.path.join(os.path.dirname(__file__), '..', 'scripts',
                       'train_chainer.py')


def run_trainer(*args):
    return subprocess.run([sys.executable, TRAINER] + list(args),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize('args,message', [
    (['-b', '-1'], 'batch size must be an integer from 1 to the data set '
     'size 1000, got -1'),
    (['-b', '0'], 'batch size must be an integer from 1'),
    (['-b', '1001'], 'batch size must be an integer from 1 to the data set '
     'size 1000, got 1001'),
    (['--snapshot-every', '0'], 'snapshot_every must be a positive integer'),
    (['-e', '0'], 'epochs must be a positive integer'),
    (['--seed', '-2'], 'seed must be a non-negative integer'),
    (['-u', '0'], 'n_units must be a positive integer'),
    # Not taken as "no --resume": that trained from scratch over the folder.
    (['-r', ''], '--resume needs a snapshot file'),
    (['-r', ' '], '--resume needs a snapshot file'),
])
def test_the_trainer_example_checks_its_options(args, message, tmp_path):
    # Short runs, in case a check let one through; ``args`` come last.
    proc = run_trainer(*(['-e', '4', '-u', '8', '--no-report'] + args +
                         ['-o', str(tmp_path / 'x')]))
    assert proc.returncode == 2
    one_line_error(proc.stderr, message)
    assert not os.path.exists(tmp_path / 'x' / 'log')  # nothing trained


@pytest.fixture(scope='module')
def snapshot(tmp_path_factory):
    out = tmp_path_factory.mktemp('trained')
    proc = run_trainer('-e', '4', '-u', '8', '--seed', '3', '-o', str(out),
                       '--snapshot-every', '2', '--no-report')
    assert proc.returncode == 0, proc.stderr
    return str(out / 'snapshot_epoch_2')


@pytest.mark.parametrize('args,message', [
    (['-s', 'random'], 'it was made by a run with schedule=fixed:2+random:2, '
     'and this run has schedule=random'),
    (['--seed', '4'], 'seed=3, and this run has seed=4'),
    (['-u', '16'], 'n_units=8, and this run has n_units=16'),
    (['-b', '20'], 'batchsize=10, and this run has batchsize=20'),
])
def test_a_resume_with_other_settings_is_refused(snapshot, args, message,
                                                 tmp_path):
    # The snapshot's options, with the one of ``args`` changed or added:
    # each flag once.
    settings = {'-e': '4', '-u': '8', '--seed': '3'}
    settings.update(zip(args[::2], args[1::2]))
    options = [x for pair in settings.items() for x in pair]
    proc = run_trainer(*(options + ['-o', str(tmp_path / 'x'), '-r',
                                    snapshot, '--no-report']))
    assert proc.returncode == 2
    line = one_line_error(proc.stderr, 'cannot resume from ' + snapshot,
                          message)
    assert 'resume with the same options' in line


@pytest.mark.parametrize('damage', ['empty', 'truncated', 'not a snapshot',
                                    'a folder'])
def test_a_damaged_snapshot_is_one_line(snapshot, damage, tmp_path):
    path = str(tmp_path / 'snap')
    if damage == 'empty':
        open(path, 'w').close()
    elif damage == 'truncated':
        with open(snapshot, 'rb') as f, open(path, 'wb') as g:
            g.write(f.read()[:500])
    elif damage == 'not a snapshot':
        import numpy
        numpy.savez(path, x=numpy.zeros(3))
        path += '.npz'
    else:
        os.mkdir(path)
    proc = run_trainer('-e', '4', '-u', '8', '--seed', '3', '-o',
                       str(tmp_path / 'x'), '-r', path, '--no-report')
    assert proc.returncode == 2
    line = one_line_error(proc.stderr, path)
    assert 'Traceback' not in proc.stderr
    if damage == 'not a snapshot':  # not "written by an older version"
        assert 'it is not a snapshot of this experiment' in line


def test_a_resume_with_the_reports_on_is_refused_with_the_reason(
        snapshot, tmp_path):
    # The snapshot was made with --no-report.
    proc = run_trainer('-e', '4', '-u', '8', '--seed', '3', '-o',
                       str(tmp_path / 'x'), '-r', snapshot)
    assert proc.returncode == 2
    one_line_error(proc.stderr, 'it was made with --no-report', 'resume '
                   'with --no-report')


def test_a_resume_with_another_iterator_is_refused(snapshot, tmp_path):
    proc = run_trainer('-e', '4', '-u', '8', '--seed', '3', '-o',
                       str(tmp_path / 'x'), '-r', snapshot, '--iterator',
                       'multithread', '--no-report')
    assert proc.returncode == 2
    one_line_error(proc.stderr, 'iterator=serial, and this run has '
                   'iterator=multithread')


@pytest.mark.parametrize('args,message', [
    (['-o', 'FILE'], 'is a file'),
    (['-u', '100000000'], 'this run (500 epochs, 100000000 hidden units) '
     'needs about'),
    (['-e', '999999999999'], 'needs about'),
    (['--seed', '99999999999'], 'seed must be below 2**32'),
])
def test_the_trainer_example_checks_output_and_sizes(args, message, a_file,
                                                     tmp_path):
    args = [a_file if a == 'FILE' else a for a in args]
    if '-o' not in args:
        args += ['-o', str(tmp_path / 'x')]
    proc = run_trainer(*args)
    assert proc.returncode == 2
    one_line_error(proc.stderr, message)


@pytest.mark.parametrize('command,name', [
    (['reproduce'] + SHORT, 'losses.json'),
    (['bench', '--replicas', '2', '--warmup', '2', '--repeat', '1'],
     'bench.json'),
    (['remedies', '--quick', '--seeds', '1', '-e', '4', '-u', '8'],
     'remedies.csv'),
])
def test_a_folder_where_a_result_file_goes_is_refused_first(
        command, name, tmp_path, capsys):
    # Found only after training, the results went to the fallback folder.
    out = tmp_path / 'out'
    (out / name).mkdir(parents=True)
    status, stdout, err = run_main(capsys, *(command + ['-o', str(out)]))
    assert status == 2
    one_line_error(err, os.path.join(str(out), name), 'is a folder, where '
                   'a result file goes')
    assert 'start...' not in stdout and 'epoch' not in err
    assert sorted(os.listdir(tmp_path)) == ['out']  # no fallback folder


def test_an_output_on_a_loop_of_links_says_so(tmp_path, capsys):
    loop = tmp_path / 'loop'
    os.symlink('loop', str(loop))
    status, out, err = run_main(capsys, 'reproduce', *SHORT, '-o',
                                str(loop))
    assert status == 2
    one_line_error(err, str(loop), 'a link that leads nowhere (a loop of '
                   'links)')
    assert 'File exists' not in err


def test_literal_gives_the_least_epochs_that_run(tmp_path, capsys):
    # The post's code gives each phase (E + 1) // 2 - 1 epochs: 3 is the
    # least that runs, and the message said 4.
    status, out, err = run_main(capsys, 'reproduce', '--literal', '-e', '2',
                                '-u', '8', '-o', str(tmp_path / 'a'))
    assert status == 2
    one_line_error(err, 'run at least 3 epochs with --literal')
    status, out, err = run_main(capsys, 'reproduce', '--literal', '-e', '3',
                                '-u', '8', '-o', str(tmp_path / 'b'))
    assert status == 0, err
    assert 'hybrid' in out


def run_cli_to(stdout, *args):
    """The command in a child process with standard output ``stdout``:
    ``'closed pipe'`` (its reader gone at once), ``'closed'`` (no
    descriptor 1: ``>&-``) or a path to open."""
    command = [sys.executable, '-m', 'minibatch_hybrid.cli'] + list(args)
    if stdout == 'closed':
        proc = subprocess.run(command, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: os.close(1), timeout=300)
        return proc.returncode, proc.stderr
    if stdout == 'closed pipe':
        proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        proc.stdout.close()
        err = proc.stderr.read()
        proc.stderr.close()
        return proc.wait(timeout=300), err
    with open(stdout, 'w') as f:
        proc = subprocess.run(command, stdout=f, stderr=subprocess.PIPE,
                              text=True, timeout=300)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize('stdout', [
    'closed pipe', 'closed',
    pytest.param('/dev/full', marks=pytest.mark.skipif(
        not os.path.exists('/dev/full'), reason='no /dev/full here'))])
@pytest.mark.parametrize('command,files', [
    (['study', '--seeds', '2'], ('final.csv', 'summary.json',
                                 'curves.npz')),
    (['sweep', '--seeds', '1', '--fractions', '0.5,1', '--no-reverse'],
     ('sweep.csv', 'summary.json', 'curves.npz')),
    (['reproduce'], OUTPUT_FILES),
])
def test_results_are_written_whatever_becomes_of_stdout(stdout, command,
                                                        files, tmp_path):
    # A table printed to a closed pipe or a full disk was a traceback,
    # and the study's result files were never written.
    out = str(tmp_path / 'out')
    status, err = run_cli_to(stdout, *(command + SHORT + ['-o', out]))
    assert status == 2, err
    line = one_line_error(err, 'could not write to standard output',
                          'its files are written')
    assert {'closed pipe': 'Broken pipe', 'closed': 'it is closed'}.get(
        stdout, 'No space left on device') in line
    assert 'Traceback' not in err and 'Exception ignored' not in err
    for name in files:
        assert os.path.getsize(os.path.join(out, name)) > 0, name


@pytest.mark.parametrize('command,files', [
    (['study', '--seeds', '2'], ('final.csv', 'summary.json')),
    (['reproduce'], OUTPUT_FILES)])
def test_a_closed_standard_error_stops_nothing(command, files, tmp_path):
    # 2>&-: the progress line wrote to None, and the command ended with a
    # traceback nobody saw, its files not written.
    out = str(tmp_path / 'out')
    proc = subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli'] + command + SHORT +
        ['-o', out], stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: os.close(2), timeout=300)
    assert proc.returncode == 0
    assert 'wrote' in proc.stdout
    for name in files:
        assert os.path.getsize(os.path.join(out, name)) > 0, name


@pytest.mark.parametrize('kind', ['FIFO', 'empty text'])
def test_an_output_that_is_no_folder_is_named_as_what_it_is(kind, tmp_path,
                                                            capsys):
    # A FIFO was called "a file", and '' gave "output folder : No such
    # file or directory".
    out = ''
    if kind == 'FIFO':
        out = str(tmp_path / 'fifo')
        os.mkfifo(out)
    status, _, err = run_main(capsys, 'reproduce', *SHORT, '-o', out)
    assert status == 2
    one_line_error(err, 'the output folder {}is {}; give a folder'.format(
        out + ' ' if out else '', 'a FIFO' if out else 'empty text'))
