"""Loading Chainer snapshots without running code from the file.

Chainer 7.8.1's :func:`chainer.serializers.load_npz` opens the file with
pickle allowed: an array of a snapshot replaced by a pickled object
runs whatever the object's unpickling says, before Chainer sees that the
array is wrong.  :func:`load_npz` here reads the file with
``allow_pickle=False``, refuses any array that only pickle could read
(object arrays), in one line naming the file and the key, and hands the
arrays to Chainer's own :class:`~chainer.serializers.NpzDeserializer`, so
that everything else behaves as Chainer's ``load_npz``.

Example: resume a Trainer from a snapshot of
:func:`chainer.training.extensions.snapshot`, or load a model from one::

    import minibatch_hybrid as mh

    mh.load_npz('result/snapshot_epoch_2', trainer)
    mh.load_npz('result/snapshot_epoch_2', model,
                path='updater/model:main/')

Snapshots written by Chainer hold numbers and strings only; one that holds
an object array was not written by Chainer's ``save_npz`` of a model,
optimizer or Trainer, and is not opened.
"""
import contextlib
import os

import numpy
from chainer import serializers

from minibatch_hybrid.io import results as results_io

#: Readers of an ``.npy`` member's header, by format version.
_NPY_HEADER_READERS = {
    (1, 0): numpy.lib.format.read_array_header_1_0,
    (2, 0): numpy.lib.format.read_array_header_2_0,
}


class NpyVersionError(ValueError):
    """An ``.npy`` header of a format version this package does not read.

    Attributes:
        version (tuple): The version its magic string gives.

    """

    def __init__(self, version):
        self.version = version
        super().__init__('.npy format version {}'.format(version))


def read_npy_header(f, version=None):
    """Reads an ``.npy`` array's header, and nothing of its data.

    Args:
        f (file): At the start of the array (or, with ``version``, just
            after its magic string).
        version (tuple): The format version, if the magic string was
            already read.

    Returns:
        tuple: ``(shape, fortran_order, dtype)``.

    Raises:
        NpyVersionError: A format version other than 1.0 and 2.0.
        ValueError: ``f`` holds no ``.npy`` array, or a malformed header.

    """
    if version is None:
        version = numpy.lib.format.read_magic(f)
    reader = _NPY_HEADER_READERS.get(version)
    if reader is None:
        raise NpyVersionError(version)
    return reader(f)


#: The first byte of a pickle of protocol 2 or later (PROTO), and those
#: that begin one of protocol 0 or 1 of an object or a container (MARK,
#: GLOBAL, EMPTY_LIST, EMPTY_DICT, EMPTY_TUPLE).
_PICKLE_STARTS = b'\x80(c]})'


class UnsafeSnapshotError(ValueError):
    """A snapshot holds an array that only pickle could read.

    Attributes:
        file (str): The snapshot.
        key (str): The array's key in it.
        reason (str): What is wrong, for a message that names the file.

    """

    def __init__(self, file, key):
        self.file = file
        self.key = key
        self.reason = (
            'it holds an object array under {!r}, which only pickle could '
            'read, and unpickling can run code; nothing was loaded: use '
            'snapshots written by Chainer (numbers and strings '
            'only)'.format(key))
        super().__init__('cannot load {}: {}'.format(file, self.reason))


def _name(file):
    if isinstance(file, (str, bytes, os.PathLike)):
        return os.fsdecode(file)
    return str(getattr(file, 'name', file))


def _needs_pickle(archive, member):
    """Whether the ``.npy`` member's header declares an object dtype.

    Only the header is read; a member that is not an ``.npy`` array is
    read by NumPy as bytes, which needs no pickle.
    """
    with archive.open(member) as f:
        try:
            version = numpy.lib.format.read_magic(f)
        except ValueError:  # not an .npy array
            return False
        try:
            _, _, dtype = read_npy_header(f, version)
        except NpyVersionError:  # NumPy refuses objects there itself
            return False
    return dtype.hasobject


class SafeNpz(object):
    """The arrays of an ``.npz`` file, read without pickle.

    A read-only mapping from key to array (``in``, ``[]``, :attr:`files`),
    what :class:`~chainer.serializers.NpzDeserializer` needs.  Arrays are
    read when asked for, as Chainer's own loader reads them.  Use
    :func:`open_npz` to make one.

    Args:
        npz (numpy.lib.npyio.NpzFile): The archive, opened with
            ``allow_pickle=False``.
        name (str): The file's name, for messages.

    Raises:
        UnsafeSnapshotError: Some array needs pickle.

    """

    def __init__(self, npz, name):
        self._npz = npz
        self.name = name
        members = set(npz.zip.namelist())
        for key in npz.files:
            member = key + '.npy' if key + '.npy' in members else key
            if _needs_pickle(npz.zip, member):
                raise UnsafeSnapshotError(name, key)

    @property
    def files(self):
        """The keys, in the file's order."""
        return list(self._npz.files)

    def __contains__(self, key):
        return key in self._npz.files

    def __iter__(self):
        return iter(self._npz.files)

    def __len__(self):
        return len(self._npz.files)

    def __getitem__(self, key):
        try:
            return self._npz[key]
        except ValueError as e:  # an object array NumPy found on its own
            if 'allow_pickle' in str(e):
                raise UnsafeSnapshotError(self.name, key) from None
            raise


def _not_regular(path, why):
    return ValueError('cannot load {}: it is {}'.format(path, why))


@contextlib.contextmanager
def open_npz(file):
    """Opens an ``.npz`` file (a Chainer snapshot) without pickle.

    A path is opened only if it names a regular file
    (:func:`~minibatch_hybrid.io.results.open_regular`): a FIFO or a device
    is refused without waiting on it.

    Args:
        file (str or file-like): The file.

    Yields:
        SafeNpz: Its arrays, while the block runs.

    Raises:
        UnsafeSnapshotError: The file holds an object array (named).
        ValueError: The file is not an ``.npz`` archive (a pickle, an
            ``.npy`` array, anything else), or not a regular file.
        OSError: It cannot be read.

    """
    name = _name(file)
    with contextlib.ExitStack() as stack:
        if isinstance(file, (str, bytes, os.PathLike)):
            file = stack.enter_context(
                results_io.open_regular(name, _not_regular))
        start = file.tell()
        first = file.read(1)
        file.seek(start)
        try:
            loaded = numpy.load(file, allow_pickle=False)
        except ValueError as e:
            if 'allow_pickle' not in str(e):
                raise
            if first and first in _PICKLE_STARTS:
                raise ValueError('{} is a pickle, not an .npz snapshot, and '
                                 'unpickling can run code; it was not '
                                 'read'.format(name)) from None
            raise ValueError('{} is not an .npz file (nor an .npy array); '
                             'give a snapshot written by Chainer'.format(
                                 name)) from None
        if not isinstance(loaded, numpy.lib.npyio.NpzFile):
            raise ValueError('{} is a single .npy array, not an .npz '
                             'snapshot'.format(name))
        with loaded:
            yield SafeNpz(loaded, name)


def load_npz(file, obj, path='', strict=True, ignore_names=None):
    """Loads an object from an ``.npz`` file without running code from it.

    The same as :func:`chainer.serializers.load_npz` (same arguments, same
    results), except that the file is read with ``allow_pickle=False`` and
    an object array, which only pickle could read, is refused before
    anything is loaded into ``obj``.

    Args:
        file (str or file-like): The ``.npz`` file, such as a snapshot of
            :func:`chainer.training.extensions.snapshot`.
        obj: The object to load into: a Trainer, a Link, an Optimizer,
            anything with a ``serialize`` method.
        path (str): Where ``obj``'s data lies in the file's hierarchy, such
            as ``'updater/model:main/'`` for the model in a Trainer's
            snapshot (default: the root).
        strict (bool): Raise an error when a value ``obj`` expects is not
            in the file; with ``False``, leave such values as they are.
        ignore_names (string, callable or list of them): Names not to
            load, as in Chainer's ``load_npz``.

    Raises:
        UnsafeSnapshotError: The file holds an object array; the message
            names the file and the key.  Nothing was loaded.

    .. admonition:: Example

        A snapshot's Trainer, and its model alone::

            mh.load_npz('result/snapshot_epoch_2', trainer)
            mh.load_npz('result/snapshot_epoch_2', model,
                        path='updater/model:main/')

    """
    with open_npz(file) as arrays:
        serializers.NpzDeserializer(
            arrays, path=path, strict=strict,
            ignore_names=ignore_names).load(obj)
