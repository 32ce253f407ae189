"""A study's folder: what it holds is always what produced it.

``study.json`` names the settings and the engine; ``chunks/chunk-NNNNN.npz``
holds one chunk's results *and* the settings, engine, package version and
seeds that produced them, checked on every load, so a chunk can never be
reported under settings it was not trained with (even with ``study.json``
gone).  Chunk files are written whole or not at all, byte for byte the same
for the same results (no time stamps), and one run at a time holds the
folder (a lock file), until its result files are written.  A chunk is
checked before it is used: only a regular file is read, its members and
sizes are bounded before anything is read, its shapes and dtypes are
those of the study, its losses finite and non-negative.  A damaged or
foreign file is a one-line error that names it and says what to do.  A
chunk that the folder cannot take (a full disk) is saved elsewhere, and
the error says where.
"""
import io
import json
import os
import re
import zipfile
import zlib

import filelock
import numpy

from minibatch_hybrid.errors import Error
from minibatch_hybrid.errors import FileError
from minibatch_hybrid.io import results
from minibatch_hybrid.io import snapshots
from minibatch_hybrid._version import __version__
from minibatch_hybrid.experiments.study.config import study_arms

#: Arrays a chunk file holds, besides its record ('meta').
CHUNK_ARRAYS = ('seeds', 'loss', 'final_loss', 'heldout_mse', 'coverage')

# Zip members get this fixed time, so that equal results are equal bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


class StudyFolderError(Error, ValueError):
    """A study folder holds something this run must not use or overwrite."""


def chunk_path(out, index):
    return os.path.join(out, 'chunks', 'chunk-{:05d}.npz'.format(index))


def chunk_record(config, engine, index, chunk_seeds):
    """What a chunk file must say about itself (``chunk_seeds``: the
    chunk's list of seeds)."""
    return {'config': config.identity(), 'engine': engine,
            'version': __version__, 'chunk': index,
            'seeds': list(chunk_seeds)}


def save_npz(path, arrays, compress=False):
    """Writes arrays as an .npz, atomically, without time stamps."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, 'w', method) as zf:
        for name, array in arrays.items():
            member = io.BytesIO()
            numpy.lib.format.write_array(member, numpy.asanyarray(array),
                                         allow_pickle=False)
            info = zipfile.ZipInfo(name + '.npy', date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    results.atomic_write(path, lambda f: f.write(buffer.getvalue()),
                            binary=True)


def save_chunk(out, index, record, data):
    """Saves one chunk's results with its record."""
    write_chunk(chunk_path(out, index), record, data)


def write_chunk(path, record, data):
    """Writes one chunk's results with its record as file ``path``."""
    arrays = {'meta': numpy.array(json.dumps(record, sort_keys=True))}
    arrays.update((k, data[k]) for k in CHUNK_ARRAYS)
    save_npz(path, arrays)


def _damaged(path, why):
    return StudyFolderError(
        '{} is damaged ({}); delete it and rerun the same command to train '
        'that chunk again'.format(path, why))


#: Bytes a member's .npy header may take (NumPy writes about 128).
HEADER_LIMIT = 4096
#: Bytes of zip structure a chunk file may hold besides its members.
ZIP_OVERHEAD = 64 * 1024
#: Zip flag bits that zipfile cannot read (encryption, compressed patched
#: data, strong encryption); no chunk has them.
_UNREADABLE_FLAGS = 0x1 | 0x20 | 0x40
_MEMBERS = ('meta',) + CHUNK_ARRAYS


def _expected(record):
    """``{name: (shape, allowed dtype kinds, itemsizes)}`` of a chunk's
    arrays, from the record it must carry."""
    config = record['config']
    arms = study_arms(config['schedules'], config.get('revive'))
    shape = (len(arms), len(record['seeds']))
    return {'seeds': (shape[1:], 'iu', (1, 2, 4, 8)),
            'loss': (shape + (config['epochs'],), 'f', (4, 8)),
            'final_loss': (shape, 'f', (4, 8)),
            'heldout_mse': (shape, 'f', (4, 8)),
            'coverage': (shape, 'f', (4, 8))}


def _meta_limit(record):
    # The record as UTF-32 (NumPy's 'U'), with room for other spellings.
    return HEADER_LIMIT + 4 * (1024 + 2 * len(json.dumps(record)))


def _data_limit(record, name):
    shape, _, sizes = _expected(record)[name]
    return HEADER_LIMIT + int(numpy.prod(shape, dtype=numpy.int64)) * \
        max(sizes)


def open_regular(path, damaged=None):
    """Opens ``path`` for reading if it is a regular file, not a link
    (:func:`~minibatch_hybrid.io.results.open_regular`).

    Args:
        path (str): The file.
        damaged (callable): Makes the error from ``(path, why)``
            (default: a chunk's message).

    Raises:
        StudyFolderError: ``path`` is not a regular file.
        OSError: It cannot be opened.

    """
    return results.open_regular(path, damaged or _damaged)


def _bad_values(arrays):
    """What makes a chunk's losses, errors and coverage impossible, or
    None.  A coverage is an x of the data, or NaN (no unit active)."""
    for name in CHUNK_ARRAYS[1:]:
        values = numpy.asarray(arrays[name])
        if name == 'coverage':
            values = values[~numpy.isnan(values)]
        if not numpy.isfinite(values).all():
            return '{} holds {} values'.format(
                name, 'NaN' if numpy.isnan(values).any() else 'infinite')
        if (values < 0).any():
            return '{} holds negative values, which no loss, squared ' \
                'error or coverage can be'.format(name)
    return None


def load_chunk(out, index, record):
    """Loads a chunk, checking that it is what ``record`` says it must be.

    Only a regular file is read (:func:`open_regular`); its zip directory
    must name exactly the chunk's arrays, each no larger than this study's
    chunk can be, before any is read; each array's .npy header must give
    the shape and dtype the study implies before its data are read; the
    losses and errors must be finite and non-negative.

    Raises:
        StudyFolderError: The file is damaged, or was produced by other
            settings, another engine or another version of the package.

    """
    path = chunk_path(out, index)
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            limit = ZIP_OVERHEAD + _meta_limit(record) + sum(
                _data_limit(record, k) for k in CHUNK_ARRAYS)
            if size > limit:
                raise _damaged(path, 'it has {} bytes, more than this '
                               'study\'s chunk can hold ({})'.format(
                                   size, limit))
            with _open_zip(f) as zf:
                infos = {i.filename: i for i in zf.infolist()}
                names = [i.filename for i in zf.infolist()]
                expected = [k + '.npy' for k in _MEMBERS]
                if 'meta.npy' not in infos and \
                        all(k in infos for k in expected[1:]):
                    raise StudyFolderError(
                        '{} was written by a version before 0.2.0, which '
                        'did not record how a chunk was made; give another '
                        '--out, or delete that folder to start over'.format(
                            path))
                missing = [k for k in expected if k not in infos]
                if missing:
                    raise _damaged(path, 'no {}'.format(', '.join(
                        k[:-4] for k in missing)))
                if len(names) != len(expected):
                    raise _damaged(path, 'members that no chunk has: '
                                   '{}'.format(', '.join(sorted(
                                       set(names) - set(expected)) or
                                       ['duplicates'])))
                for info in zf.infolist():
                    if info.compress_type not in (zipfile.ZIP_STORED,
                                                  zipfile.ZIP_DEFLATED):
                        raise _damaged(path, '{} is compressed in a way no '
                                       'chunk is'.format(info.filename))
                    if info.flag_bits & _UNREADABLE_FLAGS:
                        raise _damaged(path, '{} is encrypted'.format(
                            info.filename))
                meta = _load_member(zf, infos['meta.npy'], path,
                                    _meta_limit(record), ((), 'U', None))
                saved = _parse_json(str(meta))
                _check_record(path, saved, record)
                arrays = {k: _load_member(zf, infos[k + '.npy'], path,
                                          _data_limit(record, k),
                                          _expected(record)[k])
                          for k in CHUNK_ARRAYS}
    except FileError as e:  # the record is not JSON
        raise _damaged(path, 'its record: {}'.format(e)) from None
    # What is left after the checks above: the zip directory, the data
    # (CRC, compression, truncation).
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise _damaged(path, '{}: {}'.format(type(e).__name__, e)) from None
    bad = _bad_values(arrays)
    if bad:
        raise _damaged(path, bad)
    if arrays['seeds'].tolist() != record['seeds']:
        raise _damaged(path, 'its seeds are not those of its record')
    return arrays


def _open_zip(f):
    """``zipfile.ZipFile(f)``; a zip version that zipfile does not read is
    a :class:`zipfile.BadZipFile` too."""
    try:
        return zipfile.ZipFile(f)
    except NotImplementedError as e:  # 'zip file version 6.3', say
        raise zipfile.BadZipFile(str(e)) from None


def _parse_json(text):
    """``json.loads``; text that is not JSON, or JSON nested too deeply
    for Python (a crafted file), is a :class:`FileError`."""
    try:
        return json.loads(text)
    except ValueError as e:  # json.JSONDecodeError
        raise FileError(str(e)) from None
    except RecursionError:
        raise FileError('its JSON is nested too deeply') from None


def _load_member(zf, info, path, limit, expect):
    """One member's array: its declared size, then its header (shape,
    dtype), and only then its data."""
    if info.file_size > limit:
        raise _damaged(path, '{} declares {} bytes, more than this study\'s '
                       'chunk can hold ({})'.format(info.filename,
                                                    info.file_size, limit))
    try:
        return _read_member(zf, info, path, expect)
    except zipfile.BadZipFile as e:
        # Reading a member to its end checks its CRC (zipfile reads ahead:
        # a small member's is checked with its header).
        why = str(e) if info.filename in str(e) else '{}: {}'.format(
            info.filename, e)
        raise _damaged(path, why) from None


def _read_member(zf, info, path, expect):
    want, kinds, sizes = expect
    with zf.open(info) as member:
        try:
            shape, fortran, dtype = snapshots.read_npy_header(member)
        except snapshots.NpyVersionError as e:
            raise _damaged(path, '{} is .npy version {}'.format(
                info.filename, e.version)) from None
        except FileError as e:  # not an .npy array, or a malformed header
            raise _damaged(path, '{}: {}'.format(info.filename, e)) \
                from None
        if shape != want:
            raise _damaged(path, '{} has shape {}, where this study\'s '
                           'chunk has {}'.format(info.filename, shape, want))
        if dtype.hasobject or dtype.kind not in kinds or (
                sizes is not None and dtype.itemsize not in sizes):
            raise _damaged(path, '{} holds {} values, not {}'.format(
                info.filename, dtype, {'U': 'text', 'iu': 'integers',
                                       'f': 'floats'}[kinds]))
        count = int(numpy.prod(shape, dtype=numpy.int64))
        if member.tell() + count * dtype.itemsize != info.file_size:
            raise _damaged(path, '{} is {} bytes, not what its header '
                           'declares'.format(info.filename, info.file_size))
        data = member.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise _damaged(path, '{} is cut short'.format(info.filename))
        return numpy.frombuffer(data, dtype, count).reshape(
            shape, order='F' if fortran else 'C').copy()


def _check_record(path, saved, record):
    """Refuses a chunk whose record is not this run's."""
    if not isinstance(saved, dict):
        raise _damaged(path, 'its record is not a JSON object')
    for key in ('config', 'engine', 'version', 'chunk', 'seeds'):
        if saved.get(key) == record[key]:
            continue
        if key == 'config':
            what = 'other settings ({} differ)'.format(', '.join(
                _changed(saved.get(key) or {}, record[key])))
        else:
            what = 'another {} ({!r}, this run: {!r})'.format(
                _KEY_NAMES[key], saved.get(key), record[key])
        raise StudyFolderError(
            '{} was produced with {}; give another --out, or delete that '
            'folder to start over'.format(path, what))


_KEY_NAMES = {'engine': 'engine', 'version': 'version of minibatch_hybrid',
              'chunk': 'chunk number', 'seeds': 'list of seeds'}


def _changed(a, b):
    if not isinstance(a, dict):
        return ['all']
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


#: The names of the temporary files that :func:`save_npz` writes a chunk
#: into (those of :func:`~minibatch_hybrid.io.results.atomic_write`).
_CHUNK_TEMP = re.compile(r'\.chunk-\d{5,}\.npz\.[a-z0-9_]{8}\.tmp\Z')


def remove_chunk_temp_files(out):
    """Removes the temporary chunk files a killed run left in
    ``out/chunks`` (``.chunk-NNNNN.npz.XXXXXXXX.tmp``; only regular files
    of that name).  Call it while holding the folder's lock, so that no
    run can be writing them.

    Returns:
        list of str: The files removed.

    """
    folder = os.path.join(out, 'chunks')
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in sorted(names):
        path = os.path.join(folder, name)
        if _CHUNK_TEMP.match(name) and os.path.isfile(path) and \
                not os.path.islink(path):
            try:
                os.unlink(path)
            except OSError:
                continue
            removed.append(path)
    return removed


def _damaged_json(path, why):
    return StudyFolderError(
        '{} is damaged ({}); delete it and rerun: the chunks are checked on '
        'their own'.format(path, why))


def _read_study_json(path):
    """Returns what a folder's ``study.json`` holds: a JSON object with
    the settings (``'config'``) and the engine's name.

    Raises:
        StudyFolderError: It is not a regular file, cannot be read, or
            does not hold such an object.

    """
    try:
        with open_regular(path, _damaged_json) as f:
            text = f.read(1 << 20)
        saved = _parse_json(text)
    except (OSError, FileError) as e:
        raise _damaged_json(path, e) from None
    if not isinstance(saved, dict) or 'config' not in saved:
        raise _damaged_json(path, 'no settings in it')
    if not isinstance(saved.get('engine', ''), str):
        raise _damaged_json(path, 'its engine is not a name')
    return saved


class StudyFolder(object):
    """A study's output folder, held by one run at a time.

    Use as a context manager: entering takes the folder's lock (or raises
    :class:`StudyFolderError` at once if another run holds it) and checks
    ``study.json`` and the chunk files against this run; only then does it
    write ``study.json``.  Leaving releases the lock: a run that writes
    its result files before it leaves keeps a second run out until they
    exist.

    Args:
        out (str): The folder.
        config (StudyConfig): This run's settings.
        engine (str): The engine that will run (resolved).
        outputs (tuple of str): Names of the result files the run will
            write into the folder: anything but a file in their place is
            refused before the run.

    """

    def __init__(self, out, config, engine, outputs=()):
        self.out = out
        self.config = config
        self.engine = engine
        self.outputs = tuple(outputs)
        self._lock = None

    def __enter__(self):
        chunks = os.path.join(self.out, 'chunks')
        try:
            results.check_output_dir(self.out, clean=False)
            if os.path.lexists(chunks) and not os.path.isdir(chunks):
                raise results.OutputError(
                    '{} is {}, where the study keeps its chunks folder; '
                    'move it away (or give another --out) and rerun'.format(
                        chunks,
                        results.file_kind(os.lstat(chunks).st_mode)))
            results.check_output_targets(self.out, self.outputs)
            os.makedirs(chunks, exist_ok=True)
        except results.OutputError as e:
            raise StudyFolderError(str(e)) from None
        except OSError as e:
            raise StudyFolderError('cannot use {} as the study folder: '
                                   '{}'.format(self.out, e.strerror or e)) \
                from None
        path = os.path.join(self.out, '.lock')
        self._lock = filelock.FileLock(path)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise StudyFolderError(
                'another run is using {} (it holds {}); wait for it to end, '
                'or give another --out'.format(self.out, path)) from None
        except OSError as e:
            try:
                what = 'is {}'.format(
                    results.file_kind(os.lstat(path).st_mode))
            except OSError:
                what = 'cannot be taken'
            raise StudyFolderError(
                'the lock file {} {} ({}); nothing was trained: move it away '
                'and rerun'.format(path, what, e.strerror or e)) from None
        try:
            # Only now: what a killed run left, no run that holds the
            # folder can still be writing.
            results.remove_stale_staging(self.out)
            remove_chunk_temp_files(self.out)
            self._check()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc):
        self._lock.release()
        return False

    def _check(self):
        path = os.path.join(self.out, 'study.json')
        if os.path.lexists(path):
            saved = _read_study_json(path)
            identity = self.config.identity()
            if saved['config'] != identity:
                raise StudyFolderError(
                    '{} holds a study with other settings ({} differ); give '
                    'another --out, or delete that folder to start '
                    'over'.format(self.out, ', '.join(
                        _changed(saved['config'], identity))))
            # Studies saved before engines existed ran on NumPy.
            ran = saved.get('engine', 'numpy')
            if ran.startswith('native-'):
                raise StudyFolderError(
                    '{} holds a study run by the {} kernels of an earlier '
                    'version, whose arithmetic depended on the CPU; the '
                    'native engine now computes other (CPU-independent) '
                    'bits, so it cannot continue that study. Give another '
                    '--out, or delete that folder to start over'.format(
                        self.out, ran))
            if ran != self.engine:
                raise StudyFolderError(
                    '{} holds a study run by the {} engine, and this run '
                    'would use {}; their results differ in rounding, so '
                    'they are not mixed. Continue with --engine {}, give '
                    'another --out, or delete that folder to start '
                    'over'.format(self.out, ran, self.engine, ran))
        # Every chunk there must be this study's (with or without study.json).
        for index, chunk_seeds in enumerate(self.config.chunks()):
            if os.path.lexists(chunk_path(self.out, index)):
                load_chunk(self.out, index, self.record(index, chunk_seeds))
        extra = sorted(
            name for name in os.listdir(os.path.join(self.out, 'chunks'))
            if name.endswith('.npz') and name not in {
                os.path.basename(chunk_path(self.out, i))
                for i in range(len(self.config.chunks()))})
        if extra:
            raise StudyFolderError(
                '{} holds chunks this study does not have ({}): it is '
                'another study\'s folder; give another --out, or delete that '
                'folder to start over'.format(self.out, ', '.join(extra)))
        try:
            results.write_json(path, {'config': self.config.identity(),
                                         'engine': self.engine,
                                         'version': __version__})
        except OSError as e:
            raise StudyFolderError(
                'cannot write {} ({}); nothing was trained: free some space '
                '(or give another --out) and rerun'.format(
                    path, results.describe_failure(e, path))) from None

    def record(self, index, chunk_seeds):
        """What chunk ``index``, of seeds ``chunk_seeds``, must say about
        itself (:func:`chunk_record`)."""
        return chunk_record(self.config, self.engine, index, chunk_seeds)

    def saved(self):
        """Indices of the chunks already saved (and checked)."""
        return [i for i in range(len(self.config.chunks()))
                if os.path.lexists(chunk_path(self.out, i))]

    def save(self, index, data):
        """Saves chunk ``index``; if the folder cannot take it, elsewhere.

        A chunk once trained is not lost: if it cannot be written into
        ``out/chunks`` (a full or read-only disk, a folder in its place,
        ...), it is written into a new folder beside ``out``, else in the
        user's cache folder, else in the temporary folder
        (:func:`~minibatch_hybrid.io.results.fallback_places`), and
        :class:`StudyFolderError` says where, how many chunks the folder
        holds, and what to do.  A chunk whose training diverged (NaN,
        infinite or negative losses) is not saved: it would be refused as
        damaged on load, and trained again to the same values.
        """
        chunk_seeds = self.config.chunks()[index]
        bad = _bad_values(data)
        if bad:
            raise StudyFolderError(
                'training diverged in chunk {} (seeds {}): {}, so it was not '
                'saved; {} of {} chunks are saved in {}: try fewer epochs or '
                'other schedules (with another --out)'.format(
                    index, ', '.join(str(s) for s in chunk_seeds), bad,
                    len(self.saved()), len(self.config.chunks()),
                    os.path.join(self.out, 'chunks')))
        record = self.record(index, chunk_seeds)
        path = chunk_path(self.out, index)
        try:
            save_chunk(self.out, index, record, data)
            return
        except OSError as e:
            failure = results.describe_failure(e, path)
        name = os.path.basename(path)
        folder, failures = results.write_elsewhere(
            self.out, 'minibatch-hybrid-chunk-',
            lambda folder: write_chunk(os.path.join(folder, name), record,
                                       data))
        held = '{} of {} chunks are saved in {}'.format(
            len(self.saved()), len(self.config.chunks()),
            os.path.join(self.out, 'chunks'))
        if folder is None:
            raise StudyFolderError(
                '{}; chunk {} could not be saved there ({}) nor anywhere '
                'else ({}), so it is lost: free some space and rerun the '
                'same command to train it again'.format(
                    held, index, failure, ', '.join(failures)))
        raise StudyFolderError(
            '{}; chunk {} could not be saved there ({}) and was saved to {}: '
            'copy it into {} and rerun the same command to continue'.format(
                held, index, failure, os.path.join(folder, name),
                os.path.join(self.out, 'chunks')))

    def load(self, index):
        return load_chunk(self.out, index,
                          self.record(index, self.config.chunks()[index]))
