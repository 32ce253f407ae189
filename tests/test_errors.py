"""Errors with a boundary: what a user can fix is one line, a bug is not.

Every exception class of the package derives from
:class:`minibatch_hybrid.errors.Error` (and keeps its built-in base); the
command line turns an ``Error``, and an OSError that names its file, into
one line with exit status 2, and lets anything else (a bug) end with its
traceback.
"""
import builtins
import errno
import importlib
import inspect
import io
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
import zipfile

import numpy
import pytest

import minibatch_hybrid
from minibatch_hybrid import errors
from minibatch_hybrid.io import snapshots

from test_faults import run_main


def _package_modules():
    """Every module of the package, imported."""
    names = [minibatch_hybrid.__name__] + [
        info.name for info in pkgutil.walk_packages(
            minibatch_hybrid.__path__, minibatch_hybrid.__name__ + '.')]
    return [importlib.import_module(name) for name in names]


def _exception_classes():
    """``{qualified name: class}`` of the exceptions the package defines."""
    found = {}
    for module in _package_modules():
        for name, value in vars(module).items():
            if inspect.isclass(value) and \
                    issubclass(value, BaseException) and \
                    value.__module__ == module.__name__:
                found['{}.{}'.format(module.__name__, name)] = value
    return found


def test_every_exception_class_of_the_package_is_an_error():
    classes = _exception_classes()
    # The walk finds them (those of the errors module, at least).
    assert 'minibatch_hybrid.errors.SettingsError' in classes
    assert 'minibatch_hybrid.io.results.OutputError' in classes
    assert 'minibatch_hybrid.io.snapshots.UnsafeSnapshotError' in classes
    wrong = sorted(name for name, cls in classes.items()
                   if not issubclass(cls, errors.Error))
    assert not wrong, wrong


def test_every_error_keeps_a_built_in_base():
    # Code that catches ValueError or RuntimeError keeps catching them.
    builtin = tuple(
        cls for cls in vars(builtins).values()
        if inspect.isclass(cls) and issubclass(cls, BaseException) and
        cls not in (Exception, BaseException))
    wrong = sorted(name for name, cls in _exception_classes().items()
                   if cls is not errors.Error and
                   not issubclass(cls, builtin))
    assert not wrong, wrong


def test_a_user_error_is_one_line_with_status_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, '-m', 'minibatch_hybrid.cli', 'sweep',
         '--fractions', 'half', '-o', str(tmp_path / 'out')],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "minibatch-hybrid: error: --fractions must be comma-separated "
        "numbers in [0, 1], got 'half'"]
    assert not (tmp_path / 'out').exists()


def test_a_bad_environment_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv('MINIBATCH_HYBRID_THREADS', 'many')
    status, _, err = run_main(capsys, 'reproduce', '-o',
                              str(tmp_path / 'out'))
    assert status == 2
    line, = err.splitlines()
    assert line.startswith("minibatch-hybrid: error: "
                           "MINIBATCH_HYBRID_THREADS='many' is not a thread "
                           "count")


# A bug: an internal function that the command calls raises what no user
# can fix.  The command ends with Python's traceback (exit status 1).
BUGS = {
    'reproduce': ('minibatch_hybrid.experiments.reproduce',
                  'run_reproduction', "ValueError('a bug')"),
    'study': ('minibatch_hybrid.experiments.study', 'run_study',
              "KeyError('a bug')"),
    'OSError without a file': ('minibatch_hybrid.experiments.reproduce',
                               'run_reproduction',
                               'OSError(5, "Input/output error")'),
}


@pytest.mark.parametrize('bug', sorted(BUGS))
def test_a_bug_keeps_its_traceback(tmp_path, bug):
    module, function, error = BUGS[bug]
    command = 'study' if bug == 'study' else 'reproduce'
    code = textwrap.dedent('''
        import importlib, sys
        from minibatch_hybrid import cli

        def broken(*args, **kwargs):
            raise {error}

        setattr(importlib.import_module({module!r}), {function!r}, broken)
        sys.exit(cli.main([{command!r}, '-e', '2', '-u', '4', '-o',
                           sys.argv[1]]))
        ''').format(error=error, module=module, function=function,
                    command=command)
    env = dict(os.environ)
    env.pop('MINIBATCH_HYBRID_SCHEDULER', None)
    proc = subprocess.run(
        [sys.executable, '-c', code, str(tmp_path / 'out')],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr
    assert 'Traceback (most recent call last):' in proc.stderr
    assert 'in broken' in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == \
        '{}: {}'.format(error.split('(')[0], {
            'ValueError': 'a bug', 'KeyError': "'a bug'",
            'OSError': '[Errno 5] Input/output error'}[error.split('(')[0]])
    assert 'minibatch-hybrid: error:' not in proc.stderr


def test_an_os_error_with_a_file_is_one_line_naming_it(capsys, monkeypatch,
                                                       tmp_path):
    from minibatch_hybrid.experiments import reproduce
    path = str(tmp_path / 'elsewhere' / 'losses.json')

    def unwritable(*args, **kwargs):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(reproduce, 'run_reproduction', unwritable)
    status, _, err = run_main(capsys, 'reproduce', '-e', '2', '-u', '4',
                              '-o', str(tmp_path / 'out'))
    assert status == 2
    line, = err.splitlines()
    assert line == 'minibatch-hybrid: error: {}: {}'.format(
        path, os.strerror(errno.EACCES))


# Files checked up front: what is wrong with one is a FileError naming it,
# never an error of the zip or .npy readers halfway through.

@pytest.fixture(scope='module')
def snapshot(tmp_path_factory):
    """A small Chainer-style snapshot: a model's arrays, stored (not
    compressed), so that its bytes can be damaged where wanted."""
    model = minibatch_hybrid.make_model(4, seed=0)
    path = str(tmp_path_factory.mktemp('snap') / 'snapshot')
    import chainer
    chainer.serializers.save_npz(path, model, compression=False)
    return path


def _rewritten(snapshot, tmp_path, change):
    with open(snapshot, 'rb') as f:
        data = bytearray(f.read())
    change(data)
    path = str(tmp_path / 'damaged')
    with open(path, 'wb') as f:
        f.write(bytes(data))
    return path


def _flip_data(data):
    # The last byte of a member's data: its CRC no longer holds.
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo('l2/W.npy')
    assert info.compress_type == zipfile.ZIP_STORED
    at = info.header_offset + 30
    name, extra = numpy.frombuffer(bytes(data[at - 4:at]), '<u2')
    data[at + name + extra + info.compress_size - 1] ^= 0x40


def _bad_header(data):
    # A header whose dictionary has an unhashable key; the archive is
    # written again, so that its CRCs hold.
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    member = members['l2/W.npy']
    old = b"'descr': '<f4',"
    assert old in member
    members['l2/W.npy'] = member.replace(old, b'[]: 0,'.ljust(len(old)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as zf:
        for name, value in members.items():
            zf.writestr(name, value)
    data[:] = buffer.getvalue()


def _encrypted(data):
    at = data.find(b'PK\x01\x02')
    data[at + 8] |= 0x1  # the central directory's encryption flag


@pytest.mark.parametrize('change, why', [
    (lambda data: data.__delitem__(slice(300, None)), 'damaged'),
    (_flip_data, 'Bad CRC-32'),
    (_bad_header, 'malformed .npy header'),
    (_encrypted, 'is encrypted'),
    (lambda data: data.__delitem__(slice(None)), 'is empty'),
])
def test_a_damaged_snapshot_is_a_snapshot_error(snapshot, tmp_path, change,
                                                why):
    path = _rewritten(snapshot, tmp_path, change)
    model = minibatch_hybrid.make_model(4, seed=1)
    before = model.l1.W.array.copy()
    with pytest.raises(snapshots.SnapshotError) as e:
        minibatch_hybrid.load_npz(path, model)
    message = str(e.value)
    assert path in message and why in message and '\n' not in message
    assert isinstance(e.value, errors.FileError)
    numpy.testing.assert_array_equal(model.l1.W.array, before)


def test_a_whole_snapshot_loads(snapshot):
    model = minibatch_hybrid.make_model(4, seed=1)
    minibatch_hybrid.load_npz(snapshot, model)
    numpy.testing.assert_array_equal(
        model.l1.W.array, minibatch_hybrid.make_model(4, seed=0).l1.W.array)


def test_a_study_json_nested_too_deeply_is_one_line(tmp_path):
    from minibatch_hybrid.experiments import study
    from minibatch_hybrid.experiments.study.config import StudyConfig
    out = tmp_path / 'study'
    out.mkdir()
    (out / 'study.json').write_text('[' * 100000 + ']' * 100000)
    config = StudyConfig(schedules=['random'], seeds=1, epochs=2, n_units=4,
                         n_data=20, n_heldout=10, chunk=1)
    with pytest.raises(study.StudyFolderError, match='study.json is damaged '
                       r'\(its JSON is nested too deeply\)'):
        study.run_study(config, str(out), log=lambda line: None)


def test_a_chunk_of_a_zip_version_zipfile_cannot_read(tmp_path):
    from minibatch_hybrid.experiments.study import folder
    out = str(tmp_path)
    os.makedirs(os.path.join(out, 'chunks'))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as zf:
        zf.writestr('meta.npy', b'')
    data = bytearray(buffer.getvalue())
    at = data.find(b'PK\x01\x02')
    data[at + 6] = 99  # "needs zip version 9.9 to extract"
    with open(folder.chunk_path(out, 0), 'wb') as f:
        f.write(bytes(data))
    record = {'config': {'schedules': ['random'], 'epochs': 2},
              'seeds': [0], 'engine': 'numpy', 'version': 'x', 'chunk': 0}
    with pytest.raises(folder.StudyFolderError, match='is damaged '
                       r'\(BadZipFile: zip file version 9.9\)'):
        folder.load_chunk(out, 0, record)


# The package knows its own command, not the programs built on it: a
# program declares itself one (a Ctrl-C while it starts is then one line).

@pytest.mark.parametrize('declared', [True, False])
def test_a_program_declares_itself_a_command(tmp_path, declared):
    script = tmp_path / 'reproduce.py'  # a name the package used to list
    script.write_text(
        ('__minibatch_hybrid_command__ = True\n' if declared else '') +
        'from minibatch_hybrid import _interrupts\n'
        'print(_interrupts.started_as_command())\n')
    proc = subprocess.run([sys.executable, str(script)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{}\n'.format(declared)


def test_the_package_lists_no_script():
    from minibatch_hybrid import _interrupts
    with open(_interrupts.__file__, encoding='utf-8') as f:
        source = f.read()
    scripts = os.path.join(os.path.dirname(__file__), '..', 'scripts')
    named = [name for name in os.listdir(scripts) if name in source]
    assert named == []
    assert json.dumps(_interrupts.PROGRAM) == '"minibatch-hybrid"'


# One boundary, used by the command and the Trainer example alike.

def test_the_boundary_turns_what_a_user_can_fix_into_one_line(capsys):
    import argparse
    parser = argparse.ArgumentParser(prog='prog')
    with pytest.raises(SystemExit) as e:
        with errors.boundary(parser, '; a hint'):
            raise errors.SettingsError('give --x 1')
    assert e.value.code == 2
    assert capsys.readouterr().err == 'prog: error: give --x 1\n'
    with pytest.raises(SystemExit) as e:
        with errors.boundary(parser, '; a hint'):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), 'f.json')
    assert e.value.code == 2
    assert capsys.readouterr().err == 'prog: error: f.json: {}; a ' \
        'hint\n'.format(os.strerror(errno.ENOSPC))
    # A bug keeps its traceback: an OSError without a file, anything else.
    for bug in (OSError(errno.EIO, 'Input/output error'), KeyError('k'),
                ValueError('v')):
        with pytest.raises(type(bug)) as e:
            with errors.boundary(parser):
                raise bug
        assert e.value is bug
    assert capsys.readouterr().err == ''


@pytest.mark.parametrize('data', [
    b'', b'\x93NUMPY', b'not an npy array at all',
    b'\x93NUMPY\x01\x00\x10\x00{"descr": 1}    \n'])
def test_a_bad_npy_header_is_a_file_error(data):
    with pytest.raises(errors.FileError):
        snapshots.read_npy_header(io.BytesIO(data))


@pytest.mark.parametrize('spec', ['foo', '@cupy:0', '@numpy:1', 42, 1.5,
                                  '@cupy:x'])
def test_a_bad_device_is_a_settings_error(spec):
    from minibatch_hybrid.core.device import get_device
    if spec in ('@cupy:0', 42):
        import chainer
        if chainer.backends.cuda.available:
            pytest.skip('CuPy is there')
    with pytest.raises(errors.SettingsError,
                       match='cannot use device {!r}'.format(spec)):
        get_device(spec)
    assert get_device(-2).xp is numpy


def test_a_bug_in_the_device_lookup_keeps_its_traceback(monkeypatch):
    import chainer
    from minibatch_hybrid.core.device import get_device

    def broken(spec):
        raise KeyError('a bug')

    monkeypatch.setattr(chainer, 'get_device', broken)
    with pytest.raises(KeyError):
        get_device('@numpy')


def test_a_chunk_whose_record_is_not_json(tmp_path):
    from minibatch_hybrid.experiments.study import folder
    out = str(tmp_path)
    os.makedirs(os.path.join(out, 'chunks'))
    record = {'config': {'schedules': ['random'], 'epochs': 2},
              'seeds': [0], 'engine': 'numpy', 'version': 'x', 'chunk': 0}
    arrays = {'meta': numpy.array('{"config": '),
              'seeds': numpy.array([0]),
              'loss': numpy.zeros((1, 1, 2)),
              'final_loss': numpy.zeros((1, 1)),
              'heldout_mse': numpy.zeros((1, 1)),
              'coverage': numpy.zeros((1, 1))}
    folder.save_npz(folder.chunk_path(out, 0), arrays)
    with pytest.raises(folder.StudyFolderError, match=r'is damaged \(its '
                       'record: Expecting value'):
        folder.load_chunk(out, 0, record)


def test_a_chunk_member_that_is_not_npy_is_named(tmp_path):
    from minibatch_hybrid.experiments.study import folder
    out = str(tmp_path)
    os.makedirs(os.path.join(out, 'chunks'))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as zf:
        for name in ('meta', 'seeds', 'loss', 'final_loss', 'heldout_mse',
                     'coverage'):
            zf.writestr(name + '.npy', b'not an array')
    with open(folder.chunk_path(out, 0), 'wb') as f:
        f.write(buffer.getvalue())
    record = {'config': {'schedules': ['random'], 'epochs': 2},
              'seeds': [0], 'engine': 'numpy', 'version': 'x', 'chunk': 0}
    with pytest.raises(folder.StudyFolderError, match=r'is damaged '
                       r'\(meta.npy: '):
        folder.load_chunk(out, 0, record)
