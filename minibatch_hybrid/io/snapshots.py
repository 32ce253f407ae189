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

A file is checked whole before anything is loaded from it: its kind (an
``.npz`` archive, not a pickle, an ``.npy`` array or anything else), each
member read to its end (zip's checksums, the compressed data) and each
array's header against the bytes that follow.  Whatever is wrong with it
is a :class:`SnapshotError` (a :class:`ValueError`) in one line that names
the file, never an error of the zip or ``.npy`` readers halfway through
a load.
"""
import contextlib
import io
import math
import os
import tokenize
import zipfile
import zlib

import numpy
from chainer import serializers

from minibatch_hybrid import checks
from minibatch_hybrid.errors import FileError
from minibatch_hybrid.io import results

#: Readers of an ``.npy`` member's header, by format version.
_NPY_HEADER_READERS = {
    (1, 0): numpy.lib.format.read_array_header_1_0,
    (2, 0): numpy.lib.format.read_array_header_2_0,
}


class NpyVersionError(FileError):
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
        NpyVersionError: A format version other than 1.0, 2.0 and 3.0.
        ~minibatch_hybrid.errors.FileError: ``f`` holds no ``.npy`` array
            (or one cut short), or a malformed header.

    """
    try:
        if version is None:
            version = numpy.lib.format.read_magic(f)
    except ValueError as e:  # NumPy's word for another file, or too short
        raise FileError(str(e)) from None
    if version == (3, 0):
        f = _npy_3_as_2(f)
        version = (2, 0)
    reader = _NPY_HEADER_READERS.get(version)
    if reader is None:
        raise NpyVersionError(version)
    try:
        return reader(f)
    except ValueError as e:  # NumPy's word for a malformed header
        raise FileError(str(e).splitlines()[0]) from None
    except (TypeError, SyntaxError, tokenize.TokenError) as e:
        # What NumPy's parsers of the header (a Python literal) and of its
        # dtype let through: an unhashable key, as in {[]: 1}, a repeat
        # count such as '(08)f4', an unclosed bracket in the Python 2
        # spelling it retries with.
        raise FileError('malformed .npy header ({}: {})'.format(
            type(e).__name__, e)) from None


#: The longest ``.npy`` header NumPy reads without ``allow_pickle``, in
#: characters (its ``max_header_size``); UTF-8 takes at most 4 bytes each.
_NPY_HEADER_LIMIT = 10000


def _npy_3_as_2(f):
    """The header of an ``.npy`` array of format version 3.0 (``f`` just
    after its version), as the same header in version 2.0.

    Version 3.0 differs from 2.0 only in its header's encoding, UTF-8 for
    Latin-1, which NumPy needs for field names outside Latin-1; such a
    header is refused (a Chainer snapshot holds numbers and strings, no
    fields).  Returns a file that holds the header alone.
    """
    size = f.read(4)
    if len(size) < 4:
        raise FileError('the .npy header is cut short')
    length = int.from_bytes(size, 'little')
    if length > 4 * _NPY_HEADER_LIMIT:
        raise FileError('the .npy header declares {} bytes, more than NumPy '
                        'reads without pickle'.format(length))
    header = f.read(length)
    if len(header) < length:
        raise FileError('the .npy header is cut short')
    try:
        header = header.decode('utf-8').encode('latin-1')
    except UnicodeError:
        raise FileError('the .npy header (version 3.0) names fields outside '
                        'Latin-1, which a snapshot never holds') from None
    return io.BytesIO(len(header).to_bytes(4, 'little') + header)


#: The first byte of a pickle of protocol 2 or later (PROTO), and those
#: that begin one of protocol 0 or 1 of an object or a container (MARK,
#: GLOBAL, EMPTY_LIST, EMPTY_DICT, EMPTY_TUPLE).
_PICKLE_STARTS = b'\x80(c]})'

#: How a zip archive begins: a member's local header, or the end of an
#: archive without members (NumPy's test for an ``.npz``).
_ZIP_STARTS = (b'PK\x03\x04', b'PK\x05\x06')

#: How an ``.npy`` array begins (its format's magic string, before the
#: version).
_NPY_MAGIC = b'\x93NUMPY'

#: Zip flag bits that zipfile cannot read (encryption, compressed patched
#: data, strong encryption); NumPy never writes them.
_UNREADABLE_FLAGS = 0x1 | 0x20 | 0x40

#: Bytes read at a time while a member is checked to its end.
_CHECK_CHUNK = 1 << 20


class SnapshotError(FileError):
    """A file that is not a snapshot this package loads: not an ``.npz``
    archive, damaged, or holding an array that only pickle could read.
    The message names the file; nothing was loaded from it."""


class UnsafeSnapshotError(SnapshotError):
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


def _damaged(name, why):
    return SnapshotError('cannot load {}: it is damaged ({}); nothing was '
                         'loaded: give a complete snapshot'.format(name, why))


def _check_member(archive, info, name, free):
    """Checks one member of an archive to its end, before it is used.

    Its size in the zip directory must fit ``free``, the bytes of memory
    this process has free (:func:`checks.available_memory`; None: not
    known), before a byte of it is read: zip's reader stops at that size,
    a compressed member's too (a zip bomb), and a load holds one array at a
    time (Chainer copies each into its place), so this bounds its memory.
    It must be stored or deflated and not encrypted (what NumPy writes);
    reading it to its end checks its data (zipfile compares the CRC at
    the end).  An ``.npy`` array's header must give a shape and dtype that
    take exactly the bytes that follow; one that declares an object dtype
    is refused without reading further.  A member that is not an ``.npy``
    array is read by NumPy as bytes, which needs no pickle.

    Raises:
        UnsafeSnapshotError: The header declares an object dtype.
        SnapshotError: The member is damaged or cannot be read.

    """
    key = info.filename[:-4] if info.filename.endswith('.npy') else \
        info.filename
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _damaged(name, '{} is compressed in a way NumPy does not '
                       'write'.format(info.filename))
    if info.flag_bits & _UNREADABLE_FLAGS:
        raise _damaged(name, '{} is encrypted'.format(info.filename))
    if info.header_offset < 0:  # zipfile would seek before the start
        raise _damaged(name, '{} lies before the start of the '
                       'file'.format(info.filename))
    if free is not None and info.file_size > free:
        raise SnapshotError(
            'cannot load {}: its member {} takes {:.3g} GB, and this process '
            'has {:.3g} GB free; nothing was loaded'.format(
                name, info.filename, info.file_size / 1e9, free / 1e9))
    try:
        with archive.open(info) as f:
            declared = None
            if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                declared = _declared_bytes(f, info, name, key)
                if f.tell() + declared != info.file_size:
                    raise _damaged(name, '{} declares {} bytes of data, and '
                                   'its zip entry holds {}'.format(
                                       info.filename, declared,
                                       info.file_size - f.tell()))
            elif info.filename.endswith('.npy'):
                raise _damaged(name, '{} is not an .npy array'.format(
                    info.filename))
            read = 0
            while True:
                chunk = f.read(_CHECK_CHUNK)
                if not chunk:
                    break
                read += len(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        why = str(e) if info.filename in str(e) else '{}: {}'.format(
            info.filename, e)
        raise _damaged(name, why) from None
    # A stored member whose local sizes lie can end early, its CRC right.
    if declared is not None and read != declared:
        raise _damaged(name, '{} holds {} bytes of data, and its header '
                       'declares {}'.format(info.filename, read, declared))


#: The dtype kinds of the arrays Chainer writes: booleans, integers,
#: floats, bytes and text.
_SNAPSHOT_KINDS = 'biufSU'


def _declared_bytes(f, info, name, key):
    """Reads an ``.npy`` member's version and header (``f`` is just after
    its magic prefix); returns the bytes of data the header declares."""
    version = tuple(f.read(2))
    try:
        shape, _, dtype = read_npy_header(f, version)
    except NpyVersionError:
        raise _damaged(name, '{} is .npy version {}, which NumPy does not '
                       'read'.format(info.filename, version)) from None
    except ValueError as e:  # a malformed header
        raise _damaged(name, '{}: {}'.format(info.filename, e)) from None
    if dtype.hasobject:
        raise UnsafeSnapshotError(name, key)
    if dtype.kind not in _SNAPSHOT_KINDS or dtype.fields:
        raise _damaged(name, '{} holds {} values, and a snapshot holds '
                       'numbers and text only'.format(info.filename, dtype))
    if not all(type(d) is int and d >= 0 for d in shape):
        raise _damaged(name, '{} declares the shape {}'.format(
            info.filename, shape))
    return math.prod(shape) * dtype.itemsize  # Python's ints: no overflow


class SafeNpz(object):
    """The arrays of an ``.npz`` file, read without pickle.

    A read-only mapping from key to array (``in``, ``[]``, :attr:`files`),
    what :class:`~chainer.serializers.NpzDeserializer` needs.  Every
    member is checked to its end first (:func:`_check_member`); arrays
    are then read when asked for, as Chainer's own loader reads them.  Use
    :func:`open_npz` to make one.

    Args:
        npz (numpy.lib.npyio.NpzFile): The archive, opened with
            ``allow_pickle=False``.
        name (str): The file's name, for messages.

    Raises:
        UnsafeSnapshotError: Some array needs pickle.
        SnapshotError: Some member is damaged or cannot be read.

    """

    def __init__(self, npz, name):
        self._npz = npz
        self.name = name
        free = checks.available_memory()
        for info in npz.zip.infolist():
            _check_member(npz.zip, info, name, free)

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
        if key not in self._npz.files:
            raise KeyError(key)
        try:
            return self._npz[key]
        except ValueError as e:  # an object array NumPy found on its own
            if 'allow_pickle' in str(e):
                raise UnsafeSnapshotError(self.name, key) from None
            raise


def _not_regular(path, why):
    return SnapshotError('cannot load {}: it is {}'.format(path, why))


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
        SnapshotError: The file is not an ``.npz`` archive (empty, a
            pickle, an ``.npy`` array, anything else), not a regular file,
            or damaged (checked whole before it is yielded).
        OSError: It cannot be read.

    """
    name = _name(file)
    with contextlib.ExitStack() as stack:
        if isinstance(file, (str, bytes, os.PathLike)):
            file = stack.enter_context(
                results.open_regular(name, _not_regular))
        # Its kind from its first bytes, as NumPy tells them, so that
        # NumPy only ever opens an archive.
        start = file.tell()
        head = file.read(len(_NPY_MAGIC))
        file.seek(start)
        if not head:
            raise SnapshotError('{} is empty, not an .npz snapshot; give a '
                                'snapshot written by Chainer'.format(name))
        if head == _NPY_MAGIC:
            raise SnapshotError('{} is a single .npy array, not an .npz '
                                'snapshot'.format(name))
        if not head.startswith(_ZIP_STARTS):
            if head[:1] in _PICKLE_STARTS:
                raise SnapshotError(
                    '{} is a pickle, not an .npz snapshot, and unpickling '
                    'can run code; it was not read'.format(name))
            raise SnapshotError('{} is not an .npz file (nor an .npy '
                                'array); give a snapshot written by '
                                'Chainer'.format(name))
        try:
            loaded = numpy.load(file, allow_pickle=False)
        # Its zip directory: damaged, or of a zip version zipfile does not
        # read (NotImplementedError).
        except (zipfile.BadZipFile, ValueError, NotImplementedError) as e:
            raise _damaged(name, e) from None
        with loaded:
            yield SafeNpz(loaded, name)


def load_npz(file, obj, path='', strict=True, ignore_names=None):
    """Loads an object from an ``.npz`` file without running code from it.

    The same as :func:`chainer.serializers.load_npz` (same arguments, same
    results), except that the file is read with ``allow_pickle=False``,
    and checked whole before anything is loaded into ``obj``
    (:func:`open_npz`): an object array, which only pickle could read, and
    a damaged file are refused in one line.

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
        SnapshotError: The file is not an ``.npz`` snapshot, or it is
            damaged; the message names it.  Nothing was loaded.

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
