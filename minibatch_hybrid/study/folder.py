"""A study's folder: what it holds is always what produced it.

``study.json`` names the settings and the engine; ``chunks/chunk-NNNNN.npz``
holds one chunk's results *and* the settings, engine, package version and
seeds that produced them, checked on every load, so a chunk can never be
reported under settings it was not trained with (even with ``study.json``
gone).  Chunk files are written whole or not at all, byte for byte the same
for the same results (no time stamps), and one run at a time holds the
folder (a lock file).  A damaged or foreign file is a one-line error that
names it and says what to do.
"""
import io
import json
import os
import zipfile
import zlib

import filelock
import numpy

from minibatch_hybrid import results as results_io
from minibatch_hybrid._version import __version__

#: Arrays a chunk file holds, besides its record ('meta').
CHUNK_ARRAYS = ('seeds', 'loss', 'final_loss', 'heldout_mse')

# Zip members get this fixed time, so that equal results are equal bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


class StudyFolderError(ValueError):
    """A study folder holds something this run must not use or overwrite."""


def chunk_path(out, index):
    return os.path.join(out, 'chunks', 'chunk-{:05d}.npz'.format(index))


def chunk_record(config, engine, index, seeds):
    """What a chunk file must say about itself."""
    return {'config': config.identity(), 'engine': engine,
            'version': __version__, 'chunk': index, 'seeds': list(seeds)}


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
    results_io.atomic_write(path, lambda f: f.write(buffer.getvalue()),
                            binary=True)


def save_chunk(out, index, record, data):
    """Saves one chunk's results with its record."""
    arrays = {'meta': numpy.array(json.dumps(record, sort_keys=True))}
    arrays.update((k, data[k]) for k in CHUNK_ARRAYS)
    save_npz(chunk_path(out, index), arrays)


def _damaged(path, why):
    return StudyFolderError(
        '{} is damaged ({}); delete it and rerun the same command to train '
        'that chunk again'.format(path, why))


def load_chunk(out, index, record):
    """Loads a chunk, checking that it is what ``record`` says it must be.

    Raises:
        StudyFolderError: The file is damaged, or was produced by other
            settings, another engine or another version of the package.

    """
    path = chunk_path(out, index)
    try:
        # Opened here: numpy.load leaves a file open if it is not a zip.
        with open(path, 'rb') as f:
            with zipfile.ZipFile(f) as zf:
                bad = zf.testzip()  # numpy.load does not check CRCs
            if bad is not None:
                raise _damaged(path, 'bad CRC in {}'.format(bad))
            f.seek(0)
            data = numpy.load(f, allow_pickle=False)
            if 'meta' not in data.files and \
                    all(k in data.files for k in CHUNK_ARRAYS):
                raise StudyFolderError(
                    '{} was written by a version before 0.2.0, which did not '
                    'record how a chunk was made; give another --out, or '
                    'delete that folder to start over'.format(path))
            missing = [k for k in ('meta',) + CHUNK_ARRAYS
                       if k not in data.files]
            if missing:
                raise _damaged(path, 'no {}'.format(', '.join(missing)))
            arrays = {k: data[k] for k in data.files}
            data.close()
        saved = json.loads(str(arrays.pop('meta')))
    except StudyFolderError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError,
            NotImplementedError, RuntimeError, zlib.error) as e:
        raise _damaged(path, '{}: {}'.format(type(e).__name__, e)) from None
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
    if arrays['seeds'].tolist() != record['seeds']:
        raise _damaged(path, 'its seeds are not those of its record')
    return arrays


_KEY_NAMES = {'engine': 'engine', 'version': 'version of minibatch_hybrid',
              'chunk': 'chunk number', 'seeds': 'list of seeds'}


def _changed(a, b):
    if not isinstance(a, dict):
        return ['all']
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


class StudyFolder(object):
    """A study's output folder, held by one run at a time.

    Use as a context manager: entering takes the folder's lock (or raises
    :class:`StudyFolderError` at once if another run holds it) and checks
    ``study.json`` and the chunk files against this run; only then does it
    write ``study.json``.

    Args:
        out (str): The folder.
        config (StudyConfig): This run's settings.
        engine (str): The engine that will run (resolved).

    """

    def __init__(self, out, config, engine):
        self.out = out
        self.config = config
        self.engine = engine
        self._lock = None

    def __enter__(self):
        try:
            results_io.check_output_dir(self.out)
            os.makedirs(os.path.join(self.out, 'chunks'), exist_ok=True)
        except (OSError, results_io.OutputError) as e:
            raise StudyFolderError('cannot use {} as the study folder: '
                                   '{}'.format(self.out, getattr(
                                       e, 'strerror', None) or e)) from None
        self._lock = filelock.FileLock(os.path.join(self.out, '.lock'))
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise StudyFolderError(
                'another run is using {} (it holds {}); wait for it to end, '
                'or give another --out'.format(
                    self.out, os.path.join(self.out, '.lock'))) from None
        try:
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
        if os.path.exists(path):
            try:
                with open(path) as f:
                    saved = json.load(f)
                if not isinstance(saved, dict) or 'config' not in saved:
                    raise ValueError('no settings in it')
                if not isinstance(saved.get('engine', ''), str):
                    raise ValueError('its engine is not a name')
            except (OSError, ValueError) as e:
                raise StudyFolderError(
                    '{} is damaged ({}); delete it and rerun: the chunks '
                    'are checked on their own'.format(path, e)) from None
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
        for index, seeds in enumerate(self.config.chunks()):
            if os.path.exists(chunk_path(self.out, index)):
                load_chunk(self.out, index, self.record(index, seeds))
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
        results_io.write_json(path, {'config': self.config.identity(),
                                     'engine': self.engine,
                                     'version': __version__})

    def record(self, index, seeds):
        return chunk_record(self.config, self.engine, index, seeds)

    def saved(self):
        """Indices of the chunks already saved (and checked)."""
        return [i for i in range(len(self.config.chunks()))
                if os.path.exists(chunk_path(self.out, i))]

    def save(self, index, data):
        save_chunk(self.out, index,
                   self.record(index, self.config.chunks()[index]), data)

    def load(self, index):
        return load_chunk(self.out, index,
                          self.record(index, self.config.chunks()[index]))
