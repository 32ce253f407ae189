"""Chunks and result sets are never lost, never read unchecked: fallbacks
on a full disk, chunks validated before they are read, staging folders of
killed runs, the folder held until the outputs exist."""
import errno
import fcntl
import io
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy
import pytest

from minibatch_hybrid import kernels
from minibatch_hybrid.io import results
from minibatch_hybrid.experiments import study
from minibatch_hybrid.experiments.study import folder as folder_mod
from minibatch_hybrid.experiments.study.folder import StudyFolderError
from minibatch_hybrid.experiments.study.folder import chunk_path

# The small study and the in-process command of the neighbouring tests.
from test_faults import run_main
from test_study_folder import config
from test_study_folder import quiet

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def places(tmp_path, monkeypatch):
    """The fallback places, all under tmp_path: ``disk`` holds ``out``
    (its sibling place), ``home``'s cache and ``tmp``."""
    for name in ('disk', 'home', 'tmp'):
        (tmp_path / name).mkdir()
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.delenv('XDG_CACHE_HOME', raising=False)
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))
    return {name: str(tmp_path / name) for name in ('disk', 'home', 'tmp')}


def failing_under(monkeypatch, roots, when=lambda path: True):
    """Makes every atomic write under one of ``roots`` raise ENOSPC (if
    ``when(path)``)."""
    real = results.atomic_write

    def write(path, *args, **kwargs):
        if any(os.path.abspath(path).startswith(os.path.abspath(r) + os.sep)
               for r in roots) and when(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(results, 'atomic_write', write)


def everything(root):
    """Every file and folder under root, relative."""
    found = []
    for where, dirs, files in os.walk(root):
        for name in dirs + files:
            found.append(os.path.relpath(os.path.join(where, name), root))
    return sorted(found)


@pytest.fixture(scope='module')
def expected(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('expected') / 'study')
    return study.run_study(config(), out, log=quiet)


# Item 2, rows 2 and 3: a chunk once trained is never lost.

def chunk_1(path):
    return path.endswith('chunk-00001.npz')


@pytest.mark.parametrize('failing, where', [
    (('out',), 'disk'), (('disk',), 'home'), (('disk', 'home'), 'tmp')])
def test_a_chunk_that_cannot_be_saved_goes_elsewhere(places, monkeypatch,
                                                    expected, failing,
                                                    where):
    out = os.path.join(places['disk'], 'study')
    roots = [out if f == 'out' else places[f] for f in failing]
    failing_under(monkeypatch, roots, chunk_1)
    with pytest.raises(StudyFolderError) as e:
        study.run_study(config(), out, log=quiet)
    message = str(e.value)
    assert '\n' not in message
    chunks = os.path.join(out, 'chunks')
    match = re.fullmatch(
        r'1 of 2 chunks are saved in (\S+); chunk 1 could not be saved there '
        r'\((\S+): No space left on device\) and was saved to (\S+): copy '
        r'it into (\S+) and rerun the same command to continue', message)
    assert match, message
    assert match.group(1) == chunks and match.group(4) == chunks
    assert match.group(2) == chunk_path(out, 1)
    assert os.listdir(chunks) == ['chunk-00000.npz']  # the count is true
    saved = match.group(3)
    base = {'disk': places['disk'], 'tmp': places['tmp'],
            'home': os.path.join(places['home'], '.cache',
                                 'minibatch-hybrid')}[where]
    assert os.path.dirname(os.path.dirname(saved)) == base
    # No empty folder is left where it failed.
    assert everything(places['home']) == (
        [] if where != 'home' else
        ['.cache', '.cache/minibatch-hybrid',
         os.path.relpath(os.path.dirname(saved), places['home']),
         os.path.relpath(saved, places['home'])])
    if where != 'disk':
        assert os.listdir(places['disk']) == ['study']
    # As the message says: copied in, the study continues to the same
    # numbers as one never interrupted.
    monkeypatch.undo()
    shutil.copy(saved, chunks)
    lines = []
    result = study.run_study(config(), out, log=lines.append)
    assert lines == ['continuing: 2 of 2 chunks already saved in ' + out]
    numpy.testing.assert_array_equal(result.loss, expected.loss)
    numpy.testing.assert_array_equal(result.heldout_mse,
                                     expected.heldout_mse)


def test_a_chunk_no_place_can_take_is_said_to_be_lost(places, monkeypatch):
    out = os.path.join(places['disk'], 'study')
    failing_under(monkeypatch, list(places.values()), chunk_1)
    with pytest.raises(StudyFolderError) as e:
        study.run_study(config(), out, log=quiet)
    message = str(e.value)
    assert message.startswith('1 of 2 chunks are saved in {}; chunk 1 could '
                              'not be saved there'.format(
                                  os.path.join(out, 'chunks')))
    assert 'nor anywhere else' in message and 'it is lost' in message
    for place in ('disk', 'tmp'):
        assert places[place] + ' (No space left on device)' in message
    assert '\n' not in message
    assert everything(places['home']) == [] and \
        everything(places['tmp']) == []
    assert os.listdir(places['disk']) == ['study']


def error_lines(err):
    return [line for line in err.strip().splitlines()
            if not re.match(r'\s*\d+% \d+/\d+ ', line)]


SMALL = ['--seeds', '2', '-e', '4', '-u', '8', '--chunk', '1']


def small(command):
    return SMALL + (['--fractions', '0,1', '--no-reverse']
                    if command == 'sweep' else [])


def test_a_lock_that_is_a_folder_trains_nothing_and_says_so(tmp_path,
                                                            capsys):
    out = str(tmp_path / 'x')
    os.makedirs(os.path.join(out, '.lock'))
    status, _, err = run_main(capsys, 'study', *SMALL, '-o', out)
    assert status == 2
    line, = error_lines(err)
    assert os.path.join(out, '.lock') + ' is a folder' in line
    assert 'nothing was trained' in line
    assert 'chunks are saved' not in line
    assert os.listdir(os.path.join(out, 'chunks')) == []


@pytest.mark.parametrize('command', ['study', 'sweep'])
def test_results_no_place_can_take_are_printed(command, places, monkeypatch,
                                               capsys):
    out = os.path.join(places['disk'], 'x')
    # Every result file fails, in out and in every fallback place.
    failing_under(monkeypatch, list(places.values()),
                  lambda path: '.staging-' in path)
    status, stdout, err = run_main(capsys, command, *small(command), '-o',
                                   out)
    assert status == 2
    line, = error_lines(err)
    assert line.endswith('free some space (or give another --out) and '
                         'rerun')
    assert 'nor anywhere else' in line
    for place in ('disk', 'tmp'):
        assert places[place] + ' (' in line
    # The numbers are not lost: the table is on standard output.
    if command == 'study':
        assert '2 seeds, 4 epochs' in stdout and 'median' in stdout
    else:
        assert re.search(r'fixed first\s+0.00 random\s+\d', stdout)
    assert everything(places['home']) == [] and \
        everything(places['tmp']) == []
    assert os.listdir(places['disk']) == ['x']
    assert sorted(os.listdir(out)) == ['.lock', 'chunks', 'study.json']


def test_results_go_to_the_first_place_that_takes_them(places, monkeypatch):
    out = os.path.join(places['disk'], 'x')
    failing_under(monkeypatch, [places['disk'], places['tmp']])
    writers = {'a.json': lambda p: results.write_json(p, [1])}
    with pytest.raises(results.OutputError) as e:
        results.save_results(out, writers)
    fallback = str(e.value).split('were written to ')[1].split(' instead')[0]
    assert os.path.dirname(fallback) == os.path.join(
        places['home'], '.cache', 'minibatch-hybrid')
    assert os.listdir(fallback) == ['a.json']
    assert os.listdir(out) == [] and os.listdir(places['tmp']) == []


# Item 3, rows 4 to 7: a chunk is checked before anything of it is used.

@pytest.fixture
def done(tmp_path):
    out = str(tmp_path / 'study')
    study.run_study(config(), out, log=quiet)
    return out


def rewrite(path, change):
    """Rewrites a chunk (valid record and CRCs) with ``change(arrays)``."""
    with numpy.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as zf:
        for name, array in arrays.items():
            if isinstance(array, bytes):
                zf.writestr(name + '.npy', array)
                continue
            member = io.BytesIO()
            numpy.lib.format.write_array(member, numpy.asanyarray(array))
            zf.writestr(name + '.npy', member.getvalue())
    with open(path, 'wb') as f:
        f.write(buffer.getvalue())


def set_item(key, value, at=(0, 0)):
    def change(arrays):
        arrays[key] = arrays[key].copy()
        arrays[key][at] = value
    return change


def huge_header(arrays):
    # A header that declares 10**10 floats, followed by a few.
    header = {'descr': '<f4', 'fortran_order': False,
              'shape': (100000, 100000)}
    member = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(member, header)
    arrays['loss'] = member.getvalue() + b'\0' * 64


def declared_size(name, size):
    """Makes the zip directory declare ``size`` bytes for member ``name``
    (as a member of that size would), without writing them."""
    def change(path):
        with open(path, 'rb') as f:
            data = bytearray(f.read())
        at = data.find(b'PK\x01\x02')
        while at >= 0:
            length, = struct.unpack('<H', data[at + 28:at + 30])
            if data[at + 46:at + 46 + length] == name.encode():
                data[at + 24:at + 28] = struct.pack('<I', size)
                break
            at = data.find(b'PK\x01\x02', at + 4)
        else:
            raise AssertionError('no member ' + name)
        with open(path, 'wb') as f:
            f.write(bytes(data))
    return change


def extra(arrays):
    arrays['extra'] = numpy.zeros(4)


DAMAGES = {
    'wrong shape': (lambda a: a.update(loss=a['loss'][:, :, :2]),
                    "loss.npy has shape (2, 1, 2), where this study's chunk "
                    "has (2, 1, 4)"),
    'strings': (lambda a: a.update(final_loss=a['final_loss'].astype(str)),
                'final_loss.npy holds <U'),
    'NaN': (set_item('final_loss', numpy.nan), 'final_loss holds NaN'),
    'negative loss': (set_item('loss', -1.151, (0, 0, 3)),
                      'loss holds negative values'),
    'infinite MSE': (set_item('heldout_mse', numpy.inf),
                     'heldout_mse holds infinite values'),
    'negative coverage': (set_item('coverage', -1.0),
                          'coverage holds negative values'),
    'infinite coverage': (set_item('coverage', numpy.inf),
                          'coverage holds infinite values'),
    'huge header': (huge_header, 'loss.npy has shape (100000, 100000)'),
    'extra member': (extra, 'members that no chunk has: extra.npy'),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize('how', sorted(DAMAGES))
def test_a_forged_chunk_is_refused_in_one_line(done, how):
    change, what = DAMAGES[how]
    path = chunk_path(done, 1)
    rewrite(path, change)
    with pytest.raises(StudyFolderError) as e:
        study.run_study(config(), done, log=quiet)
    message = str(e.value)
    assert message.startswith(path + ' is damaged (')
    assert what in message
    assert message.endswith('delete it and rerun the same command to train '
                            'that chunk again')
    assert '\n' not in message


@pytest.mark.timeout(60)
@pytest.mark.parametrize('member, size', [('extra.npy', 2 ** 31),
                                          ('loss.npy', 2 ** 32 - 1)])
def test_a_huge_member_is_refused_from_the_zip_directory(done, member, size):
    path = chunk_path(done, 1)
    if member == 'extra.npy':
        rewrite(path, extra)
    declared_size(member, size)(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(member).file_size == size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(StudyFolderError) as e:
        folder_mod.load_chunk(done, 1, folder_mod.chunk_record(
            config(), 'native' if kernels.available() else 'numpy', 1,
            [2]))
    message = str(e.value)
    assert message.startswith(path + ' is damaged (') and '\n' not in message
    assert member in message
    if member == 'loss.npy':
        assert 'declares {} bytes, more than'.format(size) in message
    # Nothing of that size was allocated (kilobytes on Linux).
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown < 100 * 1024


@pytest.mark.timeout(60)
@pytest.mark.parametrize('kind', ['fifo', 'link to /dev/zero', 'folder',
                                  'link to a good chunk'])
def test_only_regular_files_are_read(done, tmp_path, kind):
    path = chunk_path(done, 1)
    good = str(tmp_path / 'good.npz')
    shutil.move(path, good)
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'folder':
        os.mkdir(path)
    else:
        os.symlink('/dev/zero' if kind == 'link to /dev/zero' else good,
                   path)
    with pytest.raises(StudyFolderError) as e:
        study.run_study(config(), done, log=quiet)
    message = str(e.value)
    assert message == (
        '{} is damaged ({}, not a regular file; nothing was read from it); '
        'delete it and rerun the same command to train that chunk '
        'again'.format(path, {'fifo': 'a FIFO', 'folder': 'a folder'}.get(
            kind, 'a link')))


@pytest.mark.timeout(60)
def test_a_study_json_that_is_a_fifo_is_refused(done):
    path = os.path.join(done, 'study.json')
    os.remove(path)
    os.mkfifo(path)
    with pytest.raises(StudyFolderError, match=re.escape(
            path + ' is damaged (a FIFO, not a regular file')):
        study.run_study(config(), done, log=quiet)


def test_a_bad_crc_is_refused_in_one_line(done, monkeypatch):
    # Reading each member to its end checks its CRC: no second pass.
    monkeypatch.setattr(zipfile.ZipFile, 'testzip', None)
    path = chunk_path(done, 1)
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo('loss.npy')
    assert info.compress_type == zipfile.ZIP_STORED
    name_length, extra_length = struct.unpack(
        '<HH', data[info.header_offset + 26:info.header_offset + 30])
    end = info.header_offset + 30 + name_length + extra_length + \
        info.compress_size
    data[end - 1] ^= 0x40  # the data, not the header: the shape is right
    with open(path, 'wb') as f:
        f.write(bytes(data))
    with pytest.raises(StudyFolderError) as e:
        study.run_study(config(), done, log=quiet)
    message = str(e.value)
    assert message.startswith(
        path + " is damaged (Bad CRC-32 for file 'loss.npy')")
    assert '\n' not in message


@pytest.mark.parametrize('value', [numpy.nan, numpy.inf, -1.0])
def test_a_diverged_chunk_is_not_saved(tmp_path, monkeypatch, value):
    out = str(tmp_path / 'x')
    real = study.run.train_chunk

    def diverging(config, engine, seeds, *args, **kwargs):
        data = real(config, engine, seeds, *args, **kwargs)
        if seeds == config.chunks()[1]:
            data['loss'] = data['loss'].copy()
            data['loss'][0, 0, -1] = value
        return data
    monkeypatch.setattr(study.run, 'train_chunk', diverging)
    with pytest.raises(StudyFolderError) as e:
        study.run_study(config(), out, log=quiet)
    message = str(e.value)
    assert message.startswith('training diverged in chunk 1 (seeds 2): '
                              'loss holds ')
    assert 'try fewer epochs or other schedules' in message
    assert '\n' not in message
    assert sorted(os.listdir(os.path.join(out, 'chunks'))) == [
        'chunk-00000.npz']


def test_a_full_disk_at_study_json_trains_nothing_and_says_so(
        tmp_path, monkeypatch, capsys):
    out = str(tmp_path / 'x')
    failing_under(monkeypatch, [out],
                  lambda path: path.endswith('study.json'))
    status, _, err = run_main(capsys, 'study', *SMALL, '-o', out)
    assert status == 2
    line, = error_lines(err)
    assert line.endswith('cannot write {0} ({0}: {1}); nothing was trained: '
                         'free some space (or give another --out) and '
                         'rerun'.format(os.path.join(out, 'study.json'),
                                        os.strerror(errno.ENOSPC)))
    assert 'chunks are saved' not in line
    assert os.listdir(os.path.join(out, 'chunks')) == []


# Rows 19, 20, 21: staging folders, things in the way, the lock.

def killed_while_writing(out):
    """Runs a process that is killed (SIGKILL) while it writes a result
    set into ``out``; returns the staging folder it left."""
    child = subprocess.run([sys.executable, '-c', (
        'import os, signal\n'
        'from minibatch_hybrid.io import results\n'
        'def killed(path):\n'
        '    open(path, "w").write("partial")\n'
        '    os.kill(os.getpid(), signal.SIGKILL)\n'
        'results.write_result_set({!r}, {{"a.csv": killed}})\n').format(
            out)], capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    left, = [n for n in os.listdir(out) if n.startswith('.staging-')]
    assert sorted(os.listdir(os.path.join(out, left))) == [
        results.STAGING_MARKER, 'a.csv']
    return os.path.join(out, left)


def test_staging_folders_of_killed_runs_are_removed(tmp_path):
    out = str(tmp_path / 'x')
    os.makedirs(out)
    stale = killed_while_writing(out)
    assert results.check_output_dir(out) == []
    assert not os.path.exists(stale)


def test_staging_folders_not_ours_are_left(tmp_path):
    # Named like ours, but without our marker: a user's, left as they are.
    out = str(tmp_path / 'x')
    for name in ('.staging-notes', '.staging-legacy', '.staging-1-abc'):
        os.makedirs(os.path.join(out, name))
        with open(os.path.join(out, name, 'x'), 'w') as f:
            f.write('mine')
    assert results.check_output_dir(out) == [
        '.staging-1-abc', '.staging-legacy', '.staging-notes']
    results.write_result_set(out, {
        'a.json': lambda p: results.write_json(p, [1])})
    for name in ('.staging-notes', '.staging-legacy', '.staging-1-abc'):
        with open(os.path.join(out, name, 'x')) as f:
            assert f.read() == 'mine'


def test_a_staging_folder_in_use_is_kept_whatever_its_pid(tmp_path):
    # A run elsewhere (another container or host: any pid, even a dead
    # one, or ours) that still writes: its marker is locked.
    out = str(tmp_path / 'x')
    os.makedirs(out)
    stale = killed_while_writing(out)
    renamed = os.path.join(out, '.staging-{}-abc'.format(os.getpid()))
    os.rename(stale, renamed)
    marker = os.path.join(renamed, results.STAGING_MARKER)
    holder = subprocess.Popen([sys.executable, '-c', (
        'import fcntl, sys\n'
        'f = open({!r})\n'
        'fcntl.flock(f, fcntl.LOCK_EX)\n'
        'print("held", flush=True)\n'
        'sys.stdin.read()\n').format(marker)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        assert results.check_output_dir(out) == [
            os.path.basename(renamed)]
        assert results.remove_stale_staging(out) == []
    finally:
        holder.communicate('', timeout=60)
    # Once the writer is gone, the folder is stale.
    assert results.remove_stale_staging(out) == [renamed]


def test_the_next_study_removes_them(tmp_path):
    out = str(tmp_path / 'x')
    os.makedirs(out)
    stale = killed_while_writing(out)
    study.run_study(config(), out, log=quiet)
    assert not os.path.exists(stale)


def test_a_study_cleans_up_only_once_it_holds_the_lock(tmp_path,
                                                       monkeypatch):
    out = str(tmp_path / 'x')
    os.makedirs(out)
    stale = killed_while_writing(out)
    held = []
    real = folder_mod.StudyFolder._check

    def check(self):
        held.append(lock_is_held(os.path.join(out, '.lock')))
        assert not os.path.exists(stale)
        return real(self)
    monkeypatch.setattr(folder_mod.StudyFolder, '_check', check)
    real_remove = results.remove_stale_staging

    def remove(where):
        held.append(lock_is_held(os.path.join(out, '.lock')))
        return real_remove(where)
    monkeypatch.setattr(results, 'remove_stale_staging', remove)
    folder = folder_mod.StudyFolder(out, config(), 'numpy')
    with folder:
        pass
    # Removed while the lock was held, not before.
    assert held and all(held)


def test_chunk_temp_files_of_a_killed_save_are_removed(tmp_path):
    out = str(tmp_path / 'x')
    chunks = os.path.join(out, 'chunks')
    os.makedirs(chunks)
    # A run killed (SIGKILL) while it saves a chunk.
    child = subprocess.run([sys.executable, '-c', (
        'import os, signal\n'
        'from minibatch_hybrid.io import results\n'
        'def killed(f):\n'
        '    f.write(b"partial")\n'
        '    f.flush()\n'
        '    os.kill(os.getpid(), signal.SIGKILL)\n'
        'results.atomic_write({!r}, killed, binary=True)\n').format(
            chunk_path(out, 0))], capture_output=True, text=True,
        timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    left, = os.listdir(chunks)
    assert re.match(r'\.chunk-00000\.npz\..*\.tmp$', left)
    others = ['.chunk-notes.tmp', 'chunk-00000.npz.abcdefgh.tmp', 'x.tmp']
    for name in others:
        open(os.path.join(chunks, name), 'w').close()
    study.run_study(config(), out, log=quiet)
    assert sorted(os.listdir(chunks)) == sorted(
        others + ['chunk-00000.npz', 'chunk-00001.npz'])


@pytest.mark.parametrize('command', ['study', 'sweep'])
def test_a_folder_where_a_result_file_goes(command, tmp_path, capsys):
    out = str(tmp_path / 'x')
    os.makedirs(os.path.join(out, 'final.csv'))
    status, stdout, err = run_main(capsys, command, *small(command), '-o', out)
    assert status == 2
    line, = error_lines(err)
    assert line.endswith('{} is a folder, where a result file goes; move it '
                         'away (or give another --out) and rerun'.format(
                             os.path.join(out, 'final.csv')))
    assert not os.path.exists(os.path.join(out, 'chunks'))  # before work


def test_a_file_where_the_chunks_folder_goes(tmp_path, capsys):
    out = str(tmp_path / 'x')
    os.makedirs(out)
    open(os.path.join(out, 'chunks'), 'w').close()
    status, _, err = run_main(capsys, 'study', *SMALL, '-o', out)
    assert status == 2
    line, = error_lines(err)
    assert line.endswith('{} is a file, where the study keeps its chunks '
                         'folder; move it away (or give another --out) and '
                         'rerun'.format(os.path.join(out, 'chunks')))


def test_a_folder_in_the_way_after_the_run_is_named(tmp_path):
    # Where it appears only after the run started (reproduce, bench): the
    # real path, not the staging folder, and the results elsewhere.
    out = str(tmp_path / 'x')
    os.makedirs(os.path.join(out, 'a.json'))
    with pytest.raises(results.OutputError) as e:
        results.save_results(out, {
            'a.json': lambda p: results.write_json(p, [1])})
    message = str(e.value)
    assert message.startswith(
        'could not write the results into {} ({} is a folder, where a '
        'result file goes'.format(out, os.path.join(out, 'a.json')))
    assert '.staging-' not in message
    fallback = message.split('were written to ')[1].split(' instead')[0]
    with open(os.path.join(fallback, 'a.json')) as f:
        assert json.load(f) == [1]
    shutil.rmtree(fallback)


def lock_is_held(path):
    """Whether another process would find the lock file taken."""
    with open(path, 'a') as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False


@pytest.mark.parametrize('command', ['study', 'sweep'])
def test_the_lock_is_held_until_the_outputs_exist(command, tmp_path,
                                                  monkeypatch, capsys):
    out = str(tmp_path / 'x')
    lock = os.path.join(out, '.lock')
    real = results.write_result_set
    seen = []

    def write(folder, writers):
        paths = real(folder, writers)
        seen.append((lock_is_held(lock),
                     all(os.path.exists(p) for p in paths)))
        return paths

    monkeypatch.setattr(results, 'write_result_set', write)
    assert run_main(capsys, command, *small(command), '-o', out)[0] == 0
    assert seen == [(True, True)]
    assert not lock_is_held(lock)


def test_a_sweep_chunk_that_cannot_be_saved_goes_elsewhere(places,
                                                           monkeypatch,
                                                           capsys):
    out = os.path.join(places['disk'], 'x')
    failing_under(monkeypatch, [out], chunk_1)
    status, stdout, err = run_main(capsys, 'sweep', *small('sweep'), '-o',
                                   out)
    assert status == 2 and 'wrote' not in stdout
    line, = error_lines(err)
    assert '1 of 2 chunks are saved in {}; chunk 1 could not be saved ' \
        'there'.format(os.path.join(out, 'chunks')) in line
    saved = line.split(' and was saved to ')[1].split(': copy it')[0]
    assert os.path.dirname(os.path.dirname(saved)) == places['disk']
    monkeypatch.undo()
    shutil.copy(saved, os.path.join(out, 'chunks'))
    status, stdout, err = run_main(capsys, 'sweep', *small('sweep'), '-o',
                                   out)
    assert status == 0, err
    assert 'continuing: 2 of 2 chunks already saved' in stdout
