"""A study folder never reports numbers under settings that did not make
them: locks, chunk records, damaged files, refusals before anything runs."""
import json
import os
import subprocess
import sys
import zipfile

import numpy
import pytest

from minibatch_hybrid import kernels
from minibatch_hybrid.experiments import study
from minibatch_hybrid.experiments.study.config import StudyConfig
from minibatch_hybrid.experiments.study.folder import StudyFolder
from minibatch_hybrid.experiments.study.folder import StudyFolderError
from minibatch_hybrid.experiments.study.folder import chunk_path
from minibatch_hybrid.experiments.study.folder import save_npz


def config(**kwargs):
    settings = dict(schedules=['random', 'fixed:2+random:2'], seeds=3,
                    epochs=4, n_units=8, n_data=100, n_heldout=20, chunk=2)
    settings.update(kwargs)
    return StudyConfig(**settings)


def quiet(line):
    pass


@pytest.fixture
def done(tmp_path):
    out = str(tmp_path / 'study')
    return out, study.run_study(config(), out, log=quiet)


def run_cli(*args):
    return subprocess.Popen(
        [sys.executable, '-m', 'minibatch_hybrid.cli'] + list(args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_same_results_are_the_same_bytes(done, tmp_path):
    out, _ = done
    other = str(tmp_path / 'other')
    study.run_study(config(), other, log=quiet)
    for index in range(2):
        with open(chunk_path(out, index), 'rb') as a, \
                open(chunk_path(other, index), 'rb') as b:
            assert a.read() == b.read()


def test_a_ctrl_c_while_a_chunk_is_assembled_stays_a_ctrl_c(tmp_path,
                                                          monkeypatch):
    # A signal's KeyboardInterrupt can come inside zipfile's writestr after
    # it marked a member open (a SIGTERM did, in CI on 2026-12-07): the
    # command must still see the KeyboardInterrupt, and nothing is written.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(zipfile, '_get_compressor', interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_npz(str(tmp_path / 'chunk.npz'), {'loss': numpy.zeros(3)})
    assert os.listdir(str(tmp_path)) == []


def test_a_held_folder_is_refused_at_once(done):
    out, _ = done
    with StudyFolder(out, config(), 'native' if kernels.available()
                     else 'numpy'):
        with pytest.raises(StudyFolderError, match='another run is using '
                           '{}'.format(out)):
            study.run_study(config(), out, log=quiet)


@pytest.mark.skipif(not kernels.available(),
                    reason='needs two engines')
@pytest.mark.slow
def test_two_runs_at_once_with_different_engines(tmp_path):
    # Whichever takes the folder first runs; the other is refused, and the
    # folder then says the engine that produced its numbers.
    out = str(tmp_path / 'x')
    common = ['study', '-e', '40', '--seeds', '4', '-u', '32', '-o', out]
    procs = [run_cli(*(common + ['--engine', engine]))
             for engine in ('native', 'numpy')]
    outputs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outputs
    refused = outputs[codes.index(2)][1]
    assert 'another run is using' in refused or \
        'holds a study run by the' in refused
    winner = ('native', 'numpy')[codes.index(0)]
    with open(os.path.join(out, 'study.json')) as f:
        assert json.load(f)['engine'] == winner
    for name in os.listdir(os.path.join(out, 'chunks')):
        with numpy.load(os.path.join(out, 'chunks', name)) as data:
            assert json.loads(str(data['meta']))['engine'] == winner


def test_chunks_are_checked_without_study_json(done):
    out, _ = done
    os.remove(os.path.join(out, 'study.json'))
    with pytest.raises(StudyFolderError, match=r'chunk-00000.npz was '
                       r'produced with other settings \(batchsize differ\)'):
        study.run_study(config(batchsize=20), out, log=quiet)
    assert not os.path.exists(os.path.join(out, 'study.json'))


def test_a_failed_start_writes_nothing(tmp_path, monkeypatch):
    # An impossible seed is refused by the settings, before any folder.
    out = str(tmp_path / 'x')
    proc = run_cli('study', '--first-seed', str(2 ** 32 - 1), '--quick',
                   '-o', out)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and 'seeds must be below 2**32' in err
    assert not os.path.exists(out)
    monkeypatch.setattr(kernels, '_native', None)
    monkeypatch.setattr(kernels, '_IMPORT_ERROR', ImportError('gone'))
    with pytest.raises(kernels.NativeUnavailable):
        study.run_study(config(engine='native'), out, log=quiet)
    assert not os.path.exists(out)


def test_a_size_that_cannot_fit_is_refused_before_anything(tmp_path):
    proc = run_cli('study', '--seeds', '1000000000', '-o',
                   str(tmp_path / 'x'))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert 'needs about' in err and 'GB of memory' in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'x').exists()
    with pytest.raises(ValueError, match='this study \\(1000000 runs of 75 '
                       'epochs, 8 hidden units, chunks of 2 seeds\\) needs '
                       'about 1.23 GB'):
        config(schedules=['random'], seeds=10 ** 6,
               epochs=75).check_memory(available=10 ** 9)


def damage(path, how):
    if how == 'empty':
        open(path, 'w').close()
    elif how == 'truncated':
        with open(path, 'rb') as f:
            data = f.read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
    elif how == 'bad crc':
        with open(path, 'rb') as f:
            data = bytearray(f.read())
        at = data.find(b'\x93NUMPY', data.find(b'loss.npy')) + 140
        data[at] ^= 0xFF
        with open(path, 'wb') as f:
            f.write(bytes(data))
    elif how == 'missing key':
        with numpy.load(path) as d:
            arrays = {k: d[k] for k in d.files if k != 'heldout_mse'}
        numpy.savez(path, **arrays)


@pytest.mark.parametrize('how', ['empty', 'truncated', 'bad crc',
                                 'missing key'])
def test_a_damaged_chunk_is_one_line_naming_it(done, how, tmp_path):
    out, _ = done
    path = chunk_path(out, 1)
    damage(path, how)
    with pytest.raises(StudyFolderError) as e:
        study.run_study(config(), out, log=quiet)
    message = str(e.value)
    assert message.startswith(path + ' is damaged (')
    assert message.endswith('delete it and rerun the same command to train '
                            'that chunk again')
    assert '\n' not in message
    os.remove(path)  # as the message says: then it is trained again
    result = study.run_study(config(), out, log=quiet)
    _, expected = done
    numpy.testing.assert_array_equal(result.loss, expected.loss)


@pytest.mark.parametrize('text', ['', '{"config": ', '[]', '{"engine": 1}',
                                  '{"config": {}, "engine": 1}'])
def test_a_damaged_study_json_is_one_line_naming_it(done, text):
    out, _ = done
    path = os.path.join(out, 'study.json')
    with open(path, 'w') as f:
        f.write(text)
    with pytest.raises(StudyFolderError, match='{} is damaged'.format(
            path)) as e:
        study.run_study(config(), out, log=quiet)
    assert '\n' not in str(e.value)


def test_a_chunk_of_another_version_or_study_is_refused(done, monkeypatch):
    out, _ = done
    monkeypatch.setattr(study.folder, '__version__', '9.9.9')
    with pytest.raises(StudyFolderError, match="was produced with another "
                       "version of minibatch_hybrid \\('[0-9.]+', this run: "
                       "'9.9.9'\\)"):
        study.run_study(config(), out, log=quiet)
    monkeypatch.undo()
    os.rename(chunk_path(out, 1), chunk_path(out, 7))
    with pytest.raises(StudyFolderError, match='holds chunks this study does '
                       'not have \\(chunk-00007.npz\\)'):
        study.run_study(config(), out, log=quiet)


def test_chunk_files_are_plain_npz_with_their_record(done):
    out, result = done
    with zipfile.ZipFile(chunk_path(out, 0)) as zf:
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0)
                   for i in zf.infolist())
    with numpy.load(chunk_path(out, 0)) as data:
        record = json.loads(str(data['meta']))
        assert record['seeds'] == [0, 1] and record['chunk'] == 0
        assert record['config'] == config().identity()
        numpy.testing.assert_array_equal(data['loss'], result.loss[:, :2])


def test_a_folder_of_an_older_version_says_so(done):
    out, _ = done
    path = chunk_path(out, 0)
    with numpy.load(path) as d:
        arrays = {k: d[k] for k in d.files if k != 'meta'}
    numpy.savez(path, **arrays)
    with pytest.raises(StudyFolderError, match='was written by a version '
                       'before 0.2.0, which did not record how a chunk was '
                       'made; give another --out'):
        study.run_study(config(), out, log=quiet)
