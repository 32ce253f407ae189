"""No snapshot runs code: mh.load_npz, the Trainer example, the docs."""
import io
import json
import os
import re
import subprocess
import sys
import tracemalloc
import zipfile

import chainer
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.io import snapshots
from minibatch_hybrid.chainer_ext import trainer as trainer_module

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
TRAINER = os.path.join(ROOT, 'scripts', 'train_chainer.py')
SETTINGS = dict(schedule='fixed:2+random:2', epochs=4, seed=3, n_units=8,
                snapshot_every=2, report=False)
WEIGHT = 'updater/model:main/l2/W'
ORDER = 'updater/iterator:main/order'


class Payload(object):
    """Unpickling it makes the folder ``marker``: code from the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def build(out):
    return trainer_module.build_trainer(out=str(out), **SETTINGS)


@pytest.fixture(scope='module')
def snapshot(tmp_path_factory):
    out = tmp_path_factory.mktemp('trained')
    build(out).run()
    return str(out / 'snapshot_epoch_2')


def poisoned(snapshot, folder, key):
    """A copy of ``snapshot`` whose array ``key`` is a pickled Payload.

    Returns:
        (path, marker): the copy, and the path its payload would create.

    """
    marker = str(folder / ('ran-' + key.replace('/', '-')))
    with numpy.load(snapshot, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    payload = numpy.empty((), dtype=object)
    payload[()] = Payload(marker)
    arrays[key] = payload
    path = str(folder / 'snapshot_epoch_2')
    with open(path, 'wb') as f:  # savez pickles object arrays
        numpy.savez(f, **arrays)
    return path, marker


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize('key', [WEIGHT, ORDER])
def test_chainer_load_npz_runs_the_payload(snapshot, tmp_path, key):
    # The danger, shown in a temporary folder: Chainer 7.8.1's own loader
    # unpickles the array, and the payload runs before anything else.
    path, marker = poisoned(snapshot, tmp_path, key)
    try:
        chainer.serializers.load_npz(path, build(tmp_path / 'out'))
    except Exception:
        pass  # whether Chainer complains afterwards does not matter
    assert os.path.exists(marker)


@pytest.mark.parametrize('key', [WEIGHT, ORDER])
def test_load_npz_refuses_the_payload_in_one_line(snapshot, tmp_path, key):
    path, marker = poisoned(snapshot, tmp_path, key)
    trainer = build(tmp_path / 'out')
    before = trainer.updater.get_optimizer('main').target.l2.W.array.copy()
    with pytest.raises(snapshots.UnsafeSnapshotError) as e:
        mh.load_npz(path, trainer)
    assert not os.path.exists(marker)
    line = one_line(str(e.value))
    assert path in line and repr(key) in line and 'pickle' in line
    assert (e.value.file, e.value.key) == (path, key)
    # Nothing was loaded: refused before the deserializer ran.
    assert trainer.updater.iteration == 0
    numpy.testing.assert_array_equal(
        trainer.updater.get_optimizer('main').target.l2.W.array, before)


def test_a_model_alone_is_refused_too(snapshot, tmp_path):
    # The payload in a key the model does not read: the file is refused.
    path, marker = poisoned(snapshot, tmp_path, ORDER)
    model = mh.make_model(8, seed=0)
    with pytest.raises(snapshots.UnsafeSnapshotError, match=re.escape(ORDER)):
        mh.load_npz(path, model, path='updater/model:main/')
    assert not os.path.exists(marker)


@pytest.mark.parametrize('key', [WEIGHT, ORDER])
def test_the_trainer_example_refuses_the_payload(snapshot, tmp_path, key):
    path, marker = poisoned(snapshot, tmp_path, key)
    proc = subprocess.run(
        [sys.executable, TRAINER, '-e', '4', '-u', '8', '--seed', '3',
         '--snapshot-every', '2', '--no-report', '-o', str(tmp_path / 'x'),
         '-r', path], capture_output=True, text=True, timeout=300)
    assert not os.path.exists(marker)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert 'cannot resume from ' + path in line, line
    assert repr(key) in line and 'object array' in line, line
    assert 'Traceback' not in proc.stderr


def test_trainer_resume_refuses_the_payload(snapshot, tmp_path):
    path, marker = poisoned(snapshot, tmp_path, WEIGHT)
    with pytest.raises(ValueError, match='cannot resume from ' +
                       re.escape(path) + ': it holds an object array under ' +
                       re.escape(repr(WEIGHT))):
        trainer_module.resume(build(tmp_path / 'out'), path)
    assert not os.path.exists(marker)


def test_a_pickle_or_an_npy_file_is_refused(tmp_path):
    marker = str(tmp_path / 'ran')
    pickled = str(tmp_path / 'pickled')
    numpy.save(pickled, numpy.array([Payload(marker)], dtype=object))
    with pytest.raises(ValueError, match=re.escape(pickled + '.npy')):
        mh.load_npz(pickled + '.npy', mh.make_model(8, seed=0))
    import pickle
    with open(pickled, 'wb') as f:
        pickle.dump(Payload(marker), f)
    with pytest.raises(ValueError, match=re.escape(pickled) + ' is a pickle'):
        mh.load_npz(pickled, mh.make_model(8, seed=0))
    assert not os.path.exists(marker)


def test_a_file_neither_npz_nor_pickle_is_named_so(tmp_path):
    path = str(tmp_path / 'notes.txt')
    with open(path, 'w') as f:
        f.write('hello, not a snapshot\n')
    with pytest.raises(ValueError) as e:
        mh.load_npz(path, mh.make_model(8, seed=0))
    assert str(e.value).startswith(path + ' is not an .npz file')
    assert 'pickle' not in str(e.value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize('kind', ['FIFO', 'link to /dev/zero'])
def test_a_fifo_or_a_device_is_refused_at_once(tmp_path, kind):
    path = str(tmp_path / 'snapshot_epoch_1')
    if kind == 'FIFO':
        os.mkfifo(path)
    else:
        os.symlink('/dev/zero', path)
    with pytest.raises(ValueError) as e:
        with snapshots.open_npz(path):
            pass
    assert str(e.value).startswith('cannot load {}: it is a {}, not a '
                                   'regular file'.format(path, kind.split()[0]
                                                         if kind == 'FIFO'
                                                         else 'link'))


@pytest.mark.per_stack
def test_load_npz_loads_as_chainer_does(snapshot, tmp_path):
    # A Trainer, a model under ``path``, ``strict``: Chainer's results.
    ours, theirs = build(tmp_path / 'a'), build(tmp_path / 'b')
    mh.load_npz(snapshot, ours)
    chainer.serializers.load_npz(snapshot, theirs)
    assert ours.updater.iteration == theirs.updater.iteration == 200
    a = ours.updater.get_iterator('main')
    b = theirs.updater.get_iterator('main')
    numpy.testing.assert_array_equal(a._state.order, b._state.order)
    assert a._state[:3] == b._state[:3]  # position, epoch, new epoch
    for (name, p), (_, q) in zip(
            sorted(ours.updater.get_optimizer('main').target.namedparams()),
            sorted(theirs.updater.get_optimizer('main').target.namedparams())):
        numpy.testing.assert_array_equal(p.array, q.array, err_msg=name)
    model = mh.make_model(8, seed=0)
    mh.load_npz(snapshot, model, path='updater/model:main/')
    numpy.testing.assert_array_equal(
        model.l2.W.array, ours.updater.get_optimizer('main').target.l2.W.array)
    # A key the object expects but the file lacks: KeyError, as Chainer's,
    # unless strict=False.
    wider = mh.make_model(8, seed=0)
    wider.add_param('extra', (2,))
    with pytest.raises(KeyError):
        mh.load_npz(snapshot, wider, path='updater/model:main/')
    mh.load_npz(snapshot, wider, path='updater/model:main/', strict=False)
    numpy.testing.assert_array_equal(wider.l2.W.array, model.l2.W.array)


def test_nothing_the_package_or_its_examples_read_uses_pickle():
    # The package, the scripts, the notebooks and the docs: no Chainer
    # load_npz (it allows pickle), and no numpy.load allowing pickle.
    unsafe = re.compile(r'serializers\.load_npz\(|allow_pickle\s*=\s*True')
    found = []
    for top in ('minibatch_hybrid', 'scripts', 'notebooks', 'docs'):
        for folder, _, names in os.walk(os.path.join(ROOT, top)):
            for name in names:
                if not name.endswith(('.py', '.ipynb', '.md', '.sh')):
                    continue
                path = os.path.join(folder, name)
                with open(path, encoding='utf-8') as f:
                    text = f.read()
                if name.endswith('.ipynb'):
                    text = '\n'.join(''.join(cell['source']) for cell in
                                     json.loads(text)['cells'])
                found += [(path, m.group()) for m in unsafe.finditer(text)]
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    found += [('README.md', m.group()) for m in unsafe.finditer(readme)]
    assert found == []
    assert 'mh.load_npz(' in readme


def npy_v3(shape, data):
    """An ``.npy`` member of format version 3.0 declaring float64 ``shape``
    and holding the bytes ``data``."""
    header = "{{'descr': '<f8', 'fortran_order': False, 'shape': {}, }}" \
        .format(repr(tuple(shape)))
    start = len(b'\x93NUMPY') + 2 + 4
    header += ' ' * (-(start + len(header) + 1) % 64) + '\n'
    return (b'\x93NUMPY\x03\x00' + len(header).to_bytes(4, 'little') +
            header.encode('utf-8') + data)


def replaced(snapshot, folder, key, member, compression=zipfile.ZIP_STORED):
    """A copy of ``snapshot`` whose member ``key``.npy is ``member`` (left
    as it is with None)."""
    path = str(folder / 'snapshot_epoch_2')
    with zipfile.ZipFile(snapshot) as src, \
            zipfile.ZipFile(path, 'w', compression) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, member if member is not None and
                         info.filename == key + '.npy' else src.read(info))
    return path


def test_a_version_3_array_with_a_huge_shape_is_refused(snapshot, tmp_path):
    # Version 3.0 headers were not checked: the load tried to allocate
    # 7.28 TiB and raised MemoryError (a traceback when resuming).
    path = replaced(snapshot, tmp_path, WEIGHT,
                    npy_v3((10 ** 12,), b'\0' * 64))
    with pytest.raises(snapshots.SnapshotError, match=re.escape(
            WEIGHT + '.npy declares 8000000000000 bytes of data, and its zip '
            'entry holds 64')):
        mh.load_npz(path, build(tmp_path / 'out'))
    proc = subprocess.run(
        [sys.executable, TRAINER, '-e', '4', '-u', '8', '--seed', '3',
         '--snapshot-every', '2', '--no-report', '-o', str(tmp_path / 'x'),
         '-r', path], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert path in one_line(proc.stderr) and 'damaged' in proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.per_stack
def test_a_sound_version_3_array_loads_as_version_1(snapshot, tmp_path):
    with numpy.load(snapshot, allow_pickle=False) as f:
        weight = f[WEIGHT]
    assert weight.dtype == numpy.float32
    buffer = io.BytesIO()
    numpy.lib.format.write_array(buffer, weight, version=(3, 0))
    path = replaced(snapshot, tmp_path, WEIGHT, buffer.getvalue())
    model = mh.make_model(8, seed=0)
    mh.load_npz(path, model, path='updater/model:main/')
    numpy.testing.assert_array_equal(model.l2.W.array, weight)


def test_an_array_larger_than_the_free_memory_is_refused_unread(
        snapshot, tmp_path, monkeypatch):
    # A zip bomb: 64 MiB of zeros deflated to 64 KiB, its sizes all true.
    # Its data is never decompressed: refused from the zip directory.
    size = 64 << 20
    path = replaced(snapshot, tmp_path, WEIGHT,
                    npy_v3((size // 8,), bytes(size)), zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < size // 100
    monkeypatch.setattr(snapshots.checks, 'available_memory',
                        lambda: size // 2)
    read = []  # bytes of the bomb's data read

    def counted(self, n=-1):
        data = real(self, n)
        if self.name == WEIGHT + '.npy':
            read.append(len(data))
        return data
    real = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, 'read', counted)
    with pytest.raises(snapshots.SnapshotError, match=re.escape(
            'its member {}.npy takes 0.0671 GB, and this process has 0.0336 '
            'GB free; nothing was loaded'.format(WEIGHT))):
        mh.load_npz(path, build(tmp_path / 'out'))
    assert sum(read) == 0  # not a byte of it: its zip entry says its size
    # With the memory free, the same file is checked to its end (and
    # refused by Chainer's shape check, as any wrong array is).
    monkeypatch.setattr(snapshots.checks, 'available_memory', lambda: None)
    with pytest.raises(ValueError):
        mh.load_npz(path, build(tmp_path / 'out2'))


def npy_v1(descr, shape, data):
    """An ``.npy`` member of format version 1.0 with a header of our own."""
    header = "{{'descr': {!r}, 'fortran_order': False, 'shape': {}, }}" \
        .format(descr, shape)
    start = len(b'\x93NUMPY') + 2 + 2
    header += ' ' * (-(start + len(header) + 1) % 64) + '\n'
    return (b'\x93NUMPY\x01\x00' + len(header).to_bytes(2, 'little') +
            header.encode('latin-1') + data)


@pytest.mark.parametrize('member,why', [
    # Products that overflowed NumPy's int64 (a traceback), or wrapped to
    # 0 and passed; negative sizes; what no snapshot holds; not an array.
    (npy_v1('<f4', '(18446744073709551616, 1)', b''), 'declares 73786976'),
    (npy_v1('<f4', '(4294967296, 4294967296)', b''), 'declares 73786976'),
    (npy_v1('<f4', '(-2, -4)', b''), 'declares the shape (-2, -4)'),
    (npy_v1('<c8', '(100, 1)', bytes(800)), 'holds complex64 values, and a '
     'snapshot holds numbers and text only'),
    (npy_v1('<M8[s]', '(100, 1)', bytes(800)), 'holds datetime64[s]'),
    (npy_v1([('a', '<f4')], '(100,)', bytes(400)), "holds [('a', '<f4')]"),
    (npy_v1('<f4', '(True, 8)', bytes(32)), 'declares the shape (True, 8)'),
    (b'raw bytes where an array goes', 'is not an .npy array'),
    (npy_v1('<f4', '(100, 1)' + ' ' * 20000, bytes(400)), 'is large'),
])
def test_a_forged_array_is_refused_in_one_line(snapshot, tmp_path, member,
                                               why):
    path = replaced(snapshot, tmp_path, WEIGHT, member)
    trainer = build(tmp_path / 'out')
    with pytest.raises(snapshots.SnapshotError) as e:
        mh.load_npz(path, trainer)
    assert why in str(e.value) and '\n' not in str(e.value), str(e.value)
    assert WEIGHT + '.npy' in str(e.value)
    assert trainer.updater.iteration == 0  # nothing was loaded


def test_a_bomb_that_is_no_array_is_refused_unread(snapshot, tmp_path,
                                                   monkeypatch):
    # Raw bytes, not an .npy array: no header to read a size from, and the
    # zip directory's size was not checked (32 GB were decompressed).
    size = 16 << 20
    path = replaced(snapshot, tmp_path, 'junk', None)
    with zipfile.ZipFile(path, 'a', zipfile.ZIP_DEFLATED) as z:
        z.writestr('junk', bytes(size))
    monkeypatch.setattr(snapshots.checks, 'available_memory',
                        lambda: size // 2)
    with pytest.raises(snapshots.SnapshotError, match='its member junk '
                       'takes 0.0168 GB'):
        mh.load_npz(path, build(tmp_path / 'out'))


@pytest.mark.parametrize('version', [2, 3])
def test_a_header_bomb_is_refused_unread(snapshot, tmp_path, version):
    # A deflated header of 200 MB in a file of 0.2 MB: the 3.0 header was
    # read whole (with copies: 800 MB at its peak), the 2.0 one by NumPy
    # (which reads, then checks its length).
    size = 200 << 20
    member = b'\x93NUMPY' + bytes([version, 0]) + \
        size.to_bytes(4, 'little') + b' ' * size
    path = replaced(snapshot, tmp_path, WEIGHT, member, zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < size // 100
    del member
    tracemalloc.start()
    try:
        with pytest.raises(snapshots.SnapshotError, match=re.escape(
                '.npy header declares {} bytes, more than NumPy reads '
                'without pickle ({})'.format(
                    size, 10000 * (4 if version == 3 else 1)))) as e:
            mh.load_npz(path, build(tmp_path / 'out'))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert '\n' not in str(e.value)
    assert peak < 16 << 20, peak


@pytest.mark.skipif(not os.path.exists('/proc/self/statm'),
                    reason='reads /proc/self/statm')
def test_the_free_memory_counts_an_address_space_limit():
    # ulimit -v: an array the machine could hold, but not this process,
    # was read and failed with a MemoryError traceback.
    code = ('import resource; from minibatch_hybrid import checks; '
            'free = checks.available_memory(); '
            'resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); '
            'print(free, checks.available_memory())')
    free, limited = map(int, subprocess.run(
        [sys.executable, '-c', code], check=True, capture_output=True,
        text=True, timeout=120).stdout.split())
    assert limited < 4 << 30
    assert limited <= free
