"""Values that make no sense are refused by the command's own checks, in
one line, at once; and Ctrl-C is never lost between start-up and the
command (the issue's rows 15, 16, 22, 23; items 5 and 6)."""
import itertools
import os
import signal
import subprocess
import sys
import textwrap

import numpy
import pytest

from minibatch_hybrid.kernels import threads
from minibatch_hybrid import cli
from minibatch_hybrid.experiments import study
from minibatch_hybrid.schedules import parse_schedule
from minibatch_hybrid.schedules.text import canonical_schedule
from minibatch_hybrid.schedules.text import hybrid_halves
from minibatch_hybrid.experiments.study.config import check_fractions

from _signals import default_sigint


def refused(capsys, tmp_path, *args):
    """Runs cli.main in this process; returns its one line of error, after
    checking the exit status 2 and that no output folder was made."""
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as e:
        cli.main(list(args) + ['-o', str(out)])
    assert e.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith('minibatch-hybrid: error: ')
    assert captured.out == ''
    assert not out.exists()
    return lines[0]


# Row 15: sweep --epoch 0 was a ZeroDivisionError traceback.

@pytest.mark.parametrize('epochs', ['0', '-3'])
def test_sweep_with_no_epochs_is_refused(capsys, tmp_path, epochs):
    line = refused(capsys, tmp_path, 'sweep', '--epoch', epochs)
    assert 'epochs must be a positive integer, got {}'.format(epochs) in line


def test_sweep_schedules_refuse_no_epochs_as_a_library_call():
    with pytest.raises(ValueError, match='epochs must be a positive'):
        study.sweep_schedules(0, [0, 0.5, 1])


# Row 16: MINIBATCH_HYBRID_THREADS was ignored (0, -1, abc) or crashed
# (MemoryError after 56 s with bench).

@pytest.mark.parametrize('value', [
    '0', '-1', 'abc', '99999999999999999999', '2.5', '1_0'])
@pytest.mark.parametrize('command', [
    ['bench'], ['reproduce'], ['study', '--quick'], ['sweep', '--quick']])
def test_a_bad_thread_count_is_refused_by_every_command(
        capsys, tmp_path, monkeypatch, value, command):
    monkeypatch.setenv(threads.THREADS_VARIABLE, value)
    line = refused(capsys, tmp_path, *command)
    limit = threads.THREADS_PER_CORE * threads.cores()
    assert "MINIBATCH_HYBRID_THREADS={!r} is not a thread count: give an " \
        "integer from 1 to {}".format(value, limit) in line


def test_a_thread_count_far_above_the_cores_is_refused(capsys, tmp_path,
                                                       monkeypatch):
    limit = threads.THREADS_PER_CORE * threads.cores()
    monkeypatch.setenv(threads.THREADS_VARIABLE, str(limit + 1))
    line = refused(capsys, tmp_path, 'bench')
    assert 'of the {} this process may use'.format(threads.cores()) in line


def test_the_thread_check_runs_before_any_work(capsys, tmp_path,
                                               monkeypatch):
    from minibatch_hybrid.experiments import bench

    def started(*args, **kwargs):
        raise AssertionError('the benchmark started')

    monkeypatch.setattr(bench, 'run_benchmark', started)
    monkeypatch.setenv(threads.THREADS_VARIABLE, '0')
    refused(capsys, tmp_path, 'bench')


def test_good_thread_counts_are_taken():
    limit = threads.THREADS_PER_CORE * threads.cores()
    assert threads.check_threads('1') == 1
    assert threads.check_threads(' {} '.format(limit)) == limit
    assert threads.check_threads('') is None
    assert threads.check_threads('  ') is None


def test_library_callers_get_a_value_error(monkeypatch):
    monkeypatch.setenv(threads.THREADS_VARIABLE, 'abc')
    with pytest.raises(ValueError, match="MINIBATCH_HYBRID_THREADS='abc'"):
        threads.workers()
    monkeypatch.setenv(threads.THREADS_VARIABLE, '1')
    assert threads.workers() == 1
    monkeypatch.delenv(threads.THREADS_VARIABLE)
    assert threads.workers() == threads.cores()


# Row 22: schedules equal in effect were compared as a pair; a sweep's
# fractions that round to the same switch gave duplicate rows.

@pytest.mark.parametrize('schedules,first,second,form', [
    ('fixed:6+random:6,hybrid:6', 'fixed:6+random:6', 'hybrid:6',
     'fixed:6+random:6'),
    ('random,random:12', 'random', 'random:12', 'random'),
    ('fixed:6+random,fixed:6+random:3+random:3', 'fixed:6+random',
     'fixed:6+random:3+random:3', 'fixed:6+random:6'),
    # shuffle_once's permutation is random's first: compared as a pair
    # (a ratio of exactly 1) before it was known.
    ('random,shuffle_once:1+random', 'random', 'shuffle_once:1+random',
     'random'),
    ('random:1+fixed:11,shuffle_once:1+fixed', 'random:1+fixed:11',
     'shuffle_once:1+fixed', 'random:1+fixed:11'),
])
def test_schedules_equal_in_effect_are_refused(capsys, tmp_path, schedules,
                                               first, second, form):
    line = refused(capsys, tmp_path, 'study', '-e', '12', '-s', schedules)
    assert "schedules {!r} and {!r} give the same runs at 12 epochs (both " \
        "are {})".format(first, second, form) in line


def test_one_epoch_of_random_and_of_shuffle_once_are_refused(capsys,
                                                            tmp_path):
    line = refused(capsys, tmp_path, 'study', '-e', '1', '-s',
                   'random,shuffle_once')
    assert "schedules 'random' and 'shuffle_once' give the same runs at 1 " \
        "epochs" in line


def _texts(epochs):
    """Every schedule of 1 to ``epochs`` phases of the named schedules
    that cover ``epochs`` epochs (the last phase open or not)."""
    names = ('fixed', 'random', 'shuffle_once', 'with_replacement')
    out = list(names)
    for cuts in itertools.chain.from_iterable(
            itertools.combinations(range(1, epochs), k)
            for k in range(1, epochs)):
        lengths = numpy.diff((0,) + cuts + (epochs,)).tolist()
        for chosen in itertools.product(names, repeat=len(lengths)):
            phases = ['{}:{}'.format(n, k) for n, k in zip(chosen, lengths)]
            out.append('+'.join(phases))
            out.append('+'.join(phases[:-1] + [chosen[-1]]))
    return out


def test_the_same_canonical_form_if_and_only_if_the_same_orders():
    # Over every schedule of up to 4 phases at 4 epochs: the check refuses
    # exactly the pairs that visit the data in the same order every epoch.
    epochs, size = 4, 20
    by_form, by_orders = {}, {}
    for text in _texts(epochs):
        orders = tuple(
            tuple(parse_schedule(text, seed).order(epoch, size).tolist())
            for seed in (7, 8) for epoch in range(epochs))
        by_form.setdefault(canonical_schedule(text, epochs), set()).add(text)
        by_orders.setdefault(orders, set()).add(text)
    assert len(by_form) > 100
    assert sorted(map(sorted, by_form.values())) == \
        sorted(map(sorted, by_orders.values()))


def test_equal_canonical_forms_mean_equal_orders():
    # The claim the check rests on: the same canonical form, the same
    # order in every epoch of the run.
    for a, b in [('fixed:6+random:6', 'hybrid:6'), ('random', 'random:12'),
                 ('shuffle_once:5+shuffle_once', 'shuffle_once'),
                 ('with_replacement:3+with_replacement:9',
                  'with_replacement')]:
        assert canonical_schedule(a, 12) == canonical_schedule(b, 12)
        sa, sb = parse_schedule(a, 7), parse_schedule(b, 7)
        for epoch in range(12):
            numpy.testing.assert_array_equal(sa.order(epoch, 20),
                                             sb.order(epoch, 20))
    # and different ones where the runs differ
    assert canonical_schedule('hybrid:5', 12) != \
        canonical_schedule('hybrid:6', 12)
    assert canonical_schedule('random:6+fixed:6', 12) != \
        canonical_schedule('fixed:6+random:6', 12)


@pytest.mark.parametrize('fractions', ['0.5,0.5', '0,0.5,.5'])
def test_a_fraction_given_twice_is_refused(capsys, tmp_path, fractions):
    line = refused(capsys, tmp_path, 'sweep', '-e', '12', '--fractions',
                   fractions)
    assert '--fractions lists 0.5 twice: the same runs twice' in line


def test_fractions_that_round_to_the_same_switch_are_refused(capsys,
                                                             tmp_path):
    line = refused(capsys, tmp_path, 'sweep', '-e', '12', '--fractions',
                   '0.5,0.51')
    assert line.endswith(
        '--epoch 12 is too short to tell the fractions 0.5 and 0.51 apart: '
        'both give 6 fixed epochs (fixed:6+random:6), the same runs twice; '
        'raise --epoch to at least 100, or give only one of them')


@pytest.mark.parametrize('fractions,epochs', [
    ([0.5, 0.51], 12), ([i / 10 for i in range(11)], 9),
    ([0, 0.25, 0.26, 1], 3), ([0.1, 0.3], 1)])
def test_the_least_epochs_said_are_the_least_that_keep_them_apart(
        fractions, epochs):
    with pytest.raises(ValueError, match='at least') as e:
        check_fractions(fractions, epochs)
    least = int(str(e.value).split('at least ')[1].split(',')[0])

    def distinct(n):
        texts = [t for _, t in
                 study.sweep_schedules(n, fractions, reverse=False)
                 ['fixed first']]
        return len(set(texts)) == len(texts)

    # The sweep's own schedules: distinct from `least` epochs on (up to
    # well past any pair's 1 / gap), not at `least - 1`.
    with pytest.raises(ValueError):
        study.sweep_schedules(least - 1, fractions)
    for n in range(least, least + 300):
        assert distinct(n), n


def test_the_default_fractions_need_ten_epochs(capsys, tmp_path):
    line = refused(capsys, tmp_path, 'sweep', '-e', '9')
    assert 'fractions 0.4 and 0.5 apart' in line
    assert 'raise --epoch to at least 10' in line
    study.sweep_schedules(10, [i / 10 for i in range(11)])


# Row 23: study --epoch 1 spoke of a phase 'fixed:0' the user never wrote.

def test_study_too_short_for_the_default_hybrid(capsys, tmp_path):
    line = refused(capsys, tmp_path, 'study', '--epoch', '1')
    assert line.endswith(
        '--epoch 1 is too short for the hybrid schedule '
        'fixed:E/2+random:E/2 (one epoch or more in each phase): it needs '
        'at least 2 epochs; raise --epoch or give --schedules')
    assert 'fixed:0' not in line


def test_the_default_hybrid_for_the_trainer_example():
    assert hybrid_halves(2) == 'fixed:1+random:1'
    assert hybrid_halves(500) == 'fixed:250+random:250'
    with pytest.raises(ValueError, match="-e 1 is too short .* raise -e or "
                       "give --schedule$"):
        hybrid_halves(1, epoch_option='-e', schedule_option='--schedule')
    with pytest.raises(ValueError, match='epochs must be a positive integer'):
        hybrid_halves(0)


# Item 6: Ctrl-C at any moment, start-up included, ends in one line, 130.

def test_a_ctrl_c_kept_during_start_up_is_raised_in_main(capsys, tmp_path):
    # What a command's process does: the start-up keeps a Ctrl-C that
    # comes after the imports; main() raises it inside its own handler.
    assert cli.EARLY.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert cli.EARLY.pending  # kept, not raised
        status = cli.main(['reproduce', '-o', str(tmp_path / 'out')])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert not cli.EARLY.pending
    finally:
        cli.EARLY.uninstall()
        del cli.EARLY.pending[:]
    assert status == 130
    assert capsys.readouterr().err == \
        'interrupted while starting: nothing was run\n'
    assert not (tmp_path / 'out').exists()


def test_a_ctrl_c_while_the_options_are_read(capsys, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, 'build_parser', interrupted)
    assert cli.main(['reproduce']) == 130
    assert capsys.readouterr().err == \
        'interrupted while starting: nothing was run\n'


def run_as_command(tmp_path, code):
    """Runs ``code`` as scripts/reproduce.py would: a program that declares
    itself a command of the package (see minibatch_hybrid._interrupts)."""
    script = tmp_path / 'reproduce.py'
    script.write_text('__minibatch_hybrid_command__ = True\n' +
                      textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / 'out')],
        capture_output=True, text=True, timeout=120,
        preexec_fn=default_sigint)


def test_ctrl_c_between_start_up_and_main_is_one_line(tmp_path):
    # SIGINT at the exact moment after the start-up block, before main()
    # is in its handler: it used to be a KeyboardInterrupt traceback.
    proc = run_as_command(tmp_path, """
        import os, signal, sys, time
        from minibatch_hybrid import cli  # the start-up block ends here
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10000):  # the handler runs between these
            pass
        sys.exit(cli.main(['reproduce', '-o', sys.argv[1]]))
        """)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == 'interrupted while starting: nothing was run\n'
    assert not (tmp_path / 'out').exists()


def test_ctrl_c_after_main_returned_is_one_line(tmp_path):
    # SIGINT after the command's work, as Python exits: still 130, and
    # what the command printed is out.
    proc = run_as_command(tmp_path, """
        import os, signal, time
        from minibatch_hybrid import cli
        try:
            cli.main(['reproduce', '--help'])
        except SystemExit as e:
            assert e.code == 0
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
        """)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == 'interrupted after the command ended\n'
    assert 'usage: minibatch-hybrid reproduce' in proc.stdout


def test_a_worker_process_of_the_command_keeps_python_s_ctrl_c(tmp_path):
    # A spawned worker (Dask's, say) imports the command's script again: it
    # must not keep Ctrl-C as the command does before main().
    script = tmp_path / 'minibatch-hybrid'
    script.write_text(textwrap.dedent("""
        import multiprocessing, signal
        from minibatch_hybrid import cli

        def child():
            assert signal.getsignal(signal.SIGINT) is \\
                signal.default_int_handler

        if __name__ == '__main__':
            assert signal.getsignal(signal.SIGINT) == cli.EARLY._record
            p = multiprocessing.get_context('spawn').Process(target=child)
            p.start()
            p.join()
            assert p.exitcode == 0, p.exitcode
        """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True,
                          text=True, timeout=120, preexec_fn=default_sigint)
    assert proc.returncode == 0, proc.stderr
