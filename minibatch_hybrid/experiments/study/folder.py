"""A study's folder: ``study.json`` (settings, engine) and the chunks
(``chunks/chunk-NNNNN.npz``), each with the record of what produced it,
checked on every load (docs/faults.md)."""
import functools
import io
import json
import math
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
    """What chunk ``index``, of seeds ``chunk_seeds``, must say of itself."""
    return {'config': config.identity(), 'engine': engine,
            'version': __version__, 'chunk': index,
            'seeds': list(chunk_seeds)}


def save_npz(path, arrays, compress=False):
    """Writes arrays as an .npz, atomically, without time stamps."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    # Not `with`: a Ctrl-C inside writestr can leave the archive unclosable,
    # and closing it would raise a ValueError over the KeyboardInterrupt.
    zf = zipfile.ZipFile(buffer, 'w', method)
    for name, array in arrays.items():
        member = io.BytesIO()
        numpy.lib.format.write_array(member, numpy.asanyarray(array),
                                     allow_pickle=False)
        info = zipfile.ZipInfo(name + '.npy', date_time=_EPOCH)
        info.external_attr = 0o644 << 16
        zf.writestr(info, member.getvalue())
    zf.close()
    results.atomic_write(path, lambda f: f.write(buffer.getvalue()),
                         binary=True)


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
_KINDS = {'U': 'text', 'iu': 'integers', 'f': 'floats'}


def _expected(record):
    """``{member: (most bytes, shape, dtype kinds, itemsizes)}`` of the
    chunk that carries ``record``."""
    config = record['config']
    runs = (len(study_arms(config['schedules'], config.get('revive'))),
            len(record['seeds']))
    shapes = {'seeds': runs[1:], 'loss': runs + (config['epochs'],)}
    # The record as UTF-32 (NumPy's 'U'), with room for other spellings.
    expected = {'meta': (HEADER_LIMIT + 4 * (1024 + 2 * len(json.dumps(
        record))), (), 'U', None)}
    for name in CHUNK_ARRAYS:
        kinds, sizes = ('iu', (1, 2, 4, 8)) if name == 'seeds' else \
            ('f', (4, 8))
        shape = shapes.get(name, runs)
        expected[name] = (HEADER_LIMIT + math.prod(shape) * max(sizes),
                          shape, kinds, sizes)
    return expected


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
    """Loads a chunk, checked against the ``record`` it must carry before
    anything of it is used (docs/faults.md).

    Raises:
        StudyFolderError: The file is damaged, or was produced by other
            settings, another engine or another version of the package.

    """
    path = chunk_path(out, index)
    damaged = functools.partial(_damaged, path)
    expected = _expected(record)

    def read(zf, name):
        info = zf.getinfo(name + '.npy')
        limit, shape, kinds, sizes = expected[name]
        if info.file_size > limit:
            raise damaged('{} declares {} bytes, more than this study\'s '
                          'chunk can hold ({})'.format(
                              info.filename, info.file_size, limit))

        def check(member, found, dtype):
            if found != shape:
                raise damaged('{} has shape {}, where this study\'s chunk '
                              'has {}'.format(member, found, shape))
            if dtype.hasobject or dtype.kind not in kinds or (
                    sizes is not None and dtype.itemsize not in sizes):
                raise damaged('{} holds {} values, not {}'.format(
                    member, dtype, _KINDS[kinds]))
        return snapshots.check_member(zf, info, damaged, check, keep=True)

    try:
        with results.open_regular(path, _damaged) as f:
            size = os.fstat(f.fileno()).st_size
            limit = ZIP_OVERHEAD + sum(e[0] for e in expected.values())
            if size > limit:
                raise damaged('it has {} bytes, more than this study\'s '
                              'chunk can hold ({})'.format(size, limit))
            try:
                zf = zipfile.ZipFile(f)
            except NotImplementedError as e:  # 'zip file version 6.3'
                raise zipfile.BadZipFile(e) from None
            with zf:
                _check_members(path, zf.namelist())
                _check_record(path, _parse_json(str(read(zf, 'meta'))),
                              record)
                arrays = {k: read(zf, k) for k in CHUNK_ARRAYS}
    except FileError as e:  # the record is not JSON
        raise damaged('its record: {}'.format(e)) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise damaged('{}: {}'.format(type(e).__name__, e)) from None
    bad = _bad_values(arrays)
    if bad:
        raise damaged(bad)
    if arrays['seeds'].tolist() != record['seeds']:
        raise damaged('its seeds are not those of its record')
    return arrays


def _check_members(path, names):
    expected = [k + '.npy' for k in ('meta',) + CHUNK_ARRAYS]
    if 'meta.npy' not in names and all(k in names for k in expected[1:]):
        raise StudyFolderError(
            '{} was written by a version before 0.2.0, which did not record '
            'how a chunk was made; {}'.format(path, _START_OVER))
    missing = [k[:-4] for k in expected if k not in names]
    if missing:
        raise _damaged(path, 'no {}'.format(', '.join(missing)))
    if len(names) != len(expected):
        raise _damaged(path, 'members that no chunk has: {}'.format(
            ', '.join(sorted(set(names) - set(expected)) or ['duplicates'])))


def _parse_json(text):
    """``json.loads``; anything it refuses is a :class:`FileError`."""
    try:
        return json.loads(text)
    except ValueError as e:  # json.JSONDecodeError
        raise FileError(str(e)) from None
    except RecursionError:
        raise FileError('its JSON is nested too deeply') from None


_START_OVER = 'give another --out, or delete that folder to start over'
_KEY_NAMES = {'engine': 'engine', 'version': 'version of minibatch_hybrid',
              'chunk': 'chunk number', 'seeds': 'list of seeds'}


def _other_settings(saved, config):
    changed = ['all'] if not isinstance(saved, dict) else sorted(
        k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    return 'other settings ({} differ)'.format(', '.join(changed))


def _check_record(path, saved, record):
    """Refuses a chunk whose record is not this run's."""
    if not isinstance(saved, dict):
        raise _damaged(path, 'its record is not a JSON object')
    for key in ('config', 'engine', 'version', 'chunk', 'seeds'):
        if saved.get(key) == record[key]:
            continue
        what = _other_settings(saved.get(key) or {}, record[key]) \
            if key == 'config' else 'another {} ({!r}, this run: {!r})'.format(
                _KEY_NAMES[key], saved.get(key), record[key])
        raise StudyFolderError('{} was produced with {}; {}'.format(
            path, what, _START_OVER))


#: Temporary chunk files of :func:`~minibatch_hybrid.io.results.
#: atomic_write`, which a killed save leaves.
_CHUNK_TEMP = re.compile(r'\.chunk-\d{5,}\.npz\.[a-z0-9_]{8}\.tmp\Z')


def _remove_if_temp(name, path):
    if not _CHUNK_TEMP.match(name) or not os.path.isfile(path) or \
            os.path.islink(path):
        return False
    os.unlink(path)
    return True


class StudyFolder(object):
    """A study's output folder, held by one run at a time: entering takes
    its lock and checks what it holds against this run.

    Args:
        out (str): The folder.
        config (StudyConfig): This run's settings.
        engine (str): The engine that will run (resolved).
        outputs (tuple of str): Names of the result files the run will
            write into the folder.

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
            results.check_output_dir(self.out, False, self.outputs)
            if os.path.lexists(chunks) and not os.path.isdir(chunks):
                raise results.OutputError(
                    '{} is {}, where the study keeps its chunks folder; '
                    'move it away (or give another --out) and rerun'.format(
                        chunks,
                        results.file_kind(os.lstat(chunks).st_mode)))
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
                what = 'is ' + results.file_kind(os.lstat(path).st_mode)
            except OSError:
                what = 'cannot be taken'
            raise StudyFolderError(
                'the lock file {} {} ({}); nothing was trained: move it away '
                'and rerun'.format(path, what, e.strerror or e)) from None
        try:
            # Only now can no run that holds the folder be writing them.
            results.remove_stale_staging(self.out)
            results.remove_left_over(chunks, _remove_if_temp)
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
            self._check_study_json(path)
        # Every chunk there must be this study's (with or without study.json).
        names = []
        for index, chunk_seeds in enumerate(self.config.chunks()):
            names.append(os.path.basename(chunk_path(self.out, index)))
            if os.path.lexists(chunk_path(self.out, index)):
                load_chunk(self.out, index, self.record(index, chunk_seeds))
        extra = sorted(
            name for name in os.listdir(os.path.join(self.out, 'chunks'))
            if name.endswith('.npz') and name not in names)
        if extra:
            raise StudyFolderError(
                '{} holds chunks this study does not have ({}): it is '
                'another study\'s folder; {}'.format(
                    self.out, ', '.join(extra), _START_OVER))
        try:
            results.write_json(path, {'config': self.config.identity(),
                                      'engine': self.engine,
                                      'version': __version__})
        except OSError as e:
            raise StudyFolderError(
                'cannot write {} ({}); nothing was trained: free some space '
                '(or give another --out) and rerun'.format(
                    path, results.describe_failure(e, path))) from None

    def _check_study_json(self, path):
        def damaged(path, why):
            return StudyFolderError('{} is damaged ({}); delete it and rerun: '
                                    'the chunks are checked on their '
                                    'own'.format(path, why))
        try:
            with results.open_regular(path, damaged) as f:
                saved = _parse_json(f.read(1 << 20))
        except (OSError, FileError) as e:
            raise damaged(path, e) from None
        if not isinstance(saved, dict) or 'config' not in saved:
            raise damaged(path, 'no settings in it')
        # Studies saved before engines existed ran on NumPy.
        ran = saved.get('engine', 'numpy')
        if not isinstance(ran, str):
            raise damaged(path, 'its engine is not a name')
        if saved['config'] != self.config.identity():
            raise StudyFolderError('{} holds a study with {}; {}'.format(
                self.out, _other_settings(saved['config'],
                                          self.config.identity()),
                _START_OVER))
        if ran.startswith('native-'):
            raise StudyFolderError(
                '{} holds a study run by the {} kernels of an earlier '
                'version, whose arithmetic depended on the CPU; the native '
                'engine now computes other (CPU-independent) bits, so it '
                'cannot continue that study. Give another --out, or delete '
                'that folder to start over'.format(self.out, ran))
        if ran != self.engine:
            raise StudyFolderError(
                '{} holds a study run by the {} engine, and this run would '
                'use {}; their results differ in rounding, so they are not '
                'mixed. Continue with --engine {}, {}'.format(
                    self.out, ran, self.engine, ran, _START_OVER))

    def record(self, index, chunk_seeds):
        """:func:`chunk_record` of chunk ``index`` of this run."""
        return chunk_record(self.config, self.engine, index, chunk_seeds)

    def saved(self):
        """Indices of the chunks already saved (and checked)."""
        return [i for i in range(len(self.config.chunks()))
                if os.path.lexists(chunk_path(self.out, i))]

    def save(self, index, data):
        """Saves chunk ``index``; if the folder cannot take it, elsewhere
        (:func:`~minibatch_hybrid.io.results.write_elsewhere`).

        Raises:
            StudyFolderError: The chunk diverged (it is not saved), or it
                was saved elsewhere (the message says where), or lost.

        """
        chunk_seeds = self.config.chunks()[index]
        held = '{} of {} chunks are saved in {}'.format(
            len(self.saved()), len(self.config.chunks()),
            os.path.join(self.out, 'chunks'))
        bad = _bad_values(data)
        if bad:
            raise StudyFolderError(
                'training diverged in chunk {} (seeds {}): {}, so it was not '
                'saved; {}: try fewer epochs or other schedules (with another '
                '--out)'.format(index, ', '.join(str(s) for s in chunk_seeds),
                                bad, held))
        record = self.record(index, chunk_seeds)
        path = chunk_path(self.out, index)
        try:
            write_chunk(path, record, data)
            return
        except OSError as e:
            failure = results.describe_failure(e, path)
        name = os.path.basename(path)
        folder, failures = results.write_elsewhere(
            self.out, 'minibatch-hybrid-chunk-',
            lambda folder: write_chunk(os.path.join(folder, name), record,
                                       data))
        if folder is None:
            then = 'nor anywhere else ({}), so it is lost: free some space ' \
                'and rerun the same command to train it again'.format(
                    ', '.join(failures))
        else:
            then = 'and was saved to {}: copy it into {} and rerun the ' \
                'same command to continue'.format(os.path.join(folder, name),
                                                  os.path.dirname(path))
        raise StudyFolderError('{}; chunk {} could not be saved there ({}) '
                               '{}'.format(held, index, failure, then))

    def load(self, index):
        return load_chunk(self.out, index,
                          self.record(index, self.config.chunks()[index]))
