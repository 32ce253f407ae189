"""Reading ``.npz`` files without pickle (snapshots, a study's chunks),
each checked whole before it is used: docs/faults.md."""
import contextlib
import functools
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

_NPY_MAGIC = b'\x93NUMPY'
#: First bytes of a pickle (protocols 2+, or 0 and 1), of a zip archive.
_PICKLE_STARTS = b'\x80(c]})'
_ZIP_STARTS = (b'PK\x03\x04', b'PK\x05\x06')
#: Zip flag bits zipfile cannot read (encryption, patched data, strong
#: encryption); NumPy never writes them.
_UNREADABLE_FLAGS = 0x1 | 0x20 | 0x40
#: The longest .npy header NumPy reads without pickle (its
#: ``max_header_size``).
NPY_HEADER_LIMIT = 10000


def read_npy_header(f, version=None):
    """Reads an ``.npy`` array's header, and nothing of its data.

    Args:
        f (file): At the array's start, or after its magic string if
            ``version`` (the format version) is given.

    Returns:
        tuple: ``(shape, fortran_order, dtype)``.

    Raises:
        FileError: There is no sound header, or it is longer than NumPy
            reads without pickle.

    """
    try:
        if version is None:
            version = numpy.lib.format.read_magic(f)
    except ValueError as e:  # another file, or one too short
        raise FileError(str(e)) from None
    if version in ((2, 0), (3, 0)):
        # The header's length is checked before the header is read (NumPy
        # reads it whole, then checks); 3.0 is 2.0 in UTF-8.
        size = f.read(4)
        length = int.from_bytes(size, 'little')
        limit = NPY_HEADER_LIMIT * (4 if version == (3, 0) else 1)
        if length > limit:
            raise FileError('the .npy header declares {} bytes, more than '
                            'NumPy reads without pickle ({})'.format(
                                length, limit))
        header = f.read(length)
        if len(size) < 4 or len(header) < length:
            raise FileError('the .npy header is cut short')
        if version == (3, 0):
            try:
                header = header.decode('utf-8').encode('latin-1')
            except UnicodeError:  # field names: no snapshot or chunk has
                raise FileError('the .npy header (version 3.0) is not '
                                'Latin-1 text') from None
        f = io.BytesIO(len(header).to_bytes(4, 'little') + header)
        version = (2, 0)
    readers = {(1, 0): numpy.lib.format.read_array_header_1_0,
               (2, 0): numpy.lib.format.read_array_header_2_0}
    if version not in readers:
        raise FileError('it is .npy format version {}, which NumPy does not '
                        'read'.format(version))
    try:
        return readers[version](f)
    except ValueError as e:
        raise FileError(str(e).splitlines()[0]) from None
    except (TypeError, SyntaxError, tokenize.TokenError) as e:
        # What NumPy's header parsers let through: {[]: 1}, '(08)f4', an
        # unclosed bracket.
        raise FileError('malformed .npy header ({}: {})'.format(
            type(e).__name__, e)) from None


def check_member(archive, info, damaged, check, keep=False):
    """Reads archive member ``info`` to its end, its ``.npy`` header first
    (its declared size, which zipfile reads no further, checked before).

    Args:
        archive (zipfile.ZipFile): The archive.
        info (zipfile.ZipInfo): The member.
        damaged (callable): Makes the error to raise from what is wrong.
        check (callable): Takes an array's ``(member, shape, dtype)``
            before its data are read, and raises to refuse them.
        keep (bool): Return the array (else None).

    """
    name = info.filename
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise damaged('{} is compressed in a way NumPy does not '
                      'write'.format(name))
    if info.flag_bits & _UNREADABLE_FLAGS:
        raise damaged('{} is encrypted'.format(name))
    if info.header_offset < 0:  # zipfile would seek before the start
        raise damaged('{} lies before the start of the file'.format(name))
    header = None
    try:
        with archive.open(info) as f:
            if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                try:
                    header = read_npy_header(f, tuple(f.read(2)))
                except FileError as e:
                    raise damaged('{}: {}'.format(name, e)) from None
                shape, fortran, dtype = header
                check(name, shape, dtype)
                if not all(type(d) is int and d >= 0 for d in shape):
                    raise damaged('{} declares the shape {}'.format(
                        name, shape))
                declared = math.prod(shape) * dtype.itemsize
                if f.tell() + declared != info.file_size:
                    raise damaged('{} declares {} bytes of data, and its zip '
                                  'entry holds {}'.format(
                                      name, declared,
                                      info.file_size - f.tell()))
            elif name.endswith('.npy'):
                raise damaged('{}: it is not an .npy array'.format(name))
            parts = iter(lambda: f.read(1 << 20), b'')
            data = b''.join(parts) if keep else None
            read = len(data) if keep else sum(map(len, parts))
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise damaged(str(e) if name in str(e) else '{}: {}'.format(
            name, e)) from None
    if header is None:
        return None
    # A stored member whose local sizes lie can end early, its CRC right.
    if read != declared:
        raise damaged('{} holds {} bytes of data, and its header declares '
                      '{}'.format(name, read, declared))
    if keep:
        return numpy.frombuffer(data, dtype, math.prod(shape)).reshape(
            shape, order='F' if fortran else 'C').copy()


class SnapshotError(FileError):
    """A file that is not a snapshot this package loads; nothing was
    loaded from it."""


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


def _damaged(name, why):
    return SnapshotError('cannot load {}: it is damaged ({}); nothing was '
                         'loaded: give a complete snapshot'.format(name, why))


def _check_snapshot_array(file, member, shape, dtype):
    if dtype.hasobject:
        raise UnsafeSnapshotError(
            file, member[:-4] if member.endswith('.npy') else member)
    if dtype.kind not in 'biufSU' or dtype.fields:  # what Chainer writes
        raise _damaged(file, '{} holds {} values, and a snapshot holds '
                       'numbers and text only'.format(member, dtype))


class SafeNpz(object):
    """The arrays of a checked ``.npz`` (:func:`open_npz`), read as asked:
    ``key in``, ``[key]`` and :attr:`files`, what Chainer's loader needs."""

    def __init__(self, npz):
        self._npz = npz
        self.files = list(npz.files)

    def __contains__(self, key):
        return key in self.files

    def __getitem__(self, key):
        if key not in self.files:
            raise KeyError(key)
        return self._npz[key]


@contextlib.contextmanager
def open_npz(file):
    """Opens an ``.npz`` file (a Chainer snapshot), checked whole first.

    Args:
        file (str or file-like): The file; a path must name a regular file.

    Yields:
        SafeNpz: Its arrays, while the block runs.

    Raises:
        SnapshotError: It is no sound ``.npz`` file (empty, a pickle, an
            ``.npy`` array, damaged, not a regular file), or holds an
            object array (:class:`UnsafeSnapshotError`).
        OSError: It cannot be read.

    """
    is_path = isinstance(file, (str, bytes, os.PathLike))
    name = os.fsdecode(file) if is_path else str(getattr(file, 'name', file))
    with contextlib.ExitStack() as stack:
        if is_path:
            file = stack.enter_context(results.open_regular(
                name, lambda path, why: SnapshotError(
                    'cannot load {}: it is {}'.format(path, why))))
        # Its kind from its first bytes, so that NumPy opens archives only.
        start = file.tell()
        head = file.read(len(_NPY_MAGIC))
        file.seek(start)
        if not head.startswith(_ZIP_STARTS):
            what = ('empty, ' if not head else
                    'a single .npy array, ' if head == _NPY_MAGIC else
                    'a pickle (not read: unpickling can run code), '
                    if head[:1] in _PICKLE_STARTS else '')
            raise SnapshotError('{} is {}not an .npz file; give a snapshot '
                                'written by Chainer'.format(name, what))
        try:
            npz = stack.enter_context(numpy.load(file, allow_pickle=False))
        # Its zip directory: damaged, or of a version zipfile cannot read.
        except (zipfile.BadZipFile, ValueError, NotImplementedError) as e:
            raise _damaged(name, e) from None
        free = checks.available_memory()  # None: not known
        for info in npz.zip.infolist():
            # Chainer copies one array at a time: this bounds a load.
            if free is not None and info.file_size > free:
                raise SnapshotError(
                    'cannot load {}: its member {} takes {:.3g} GB, and this '
                    'process has {:.3g} GB free; nothing was loaded'.format(
                        name, info.filename, info.file_size / 1e9,
                        free / 1e9))
            check_member(npz.zip, info, functools.partial(_damaged, name),
                         functools.partial(_check_snapshot_array, name))
        yield SafeNpz(npz)


def load_npz(file, obj, path='', strict=True, ignore_names=None):
    """:func:`chainer.serializers.load_npz`, without pickle.

    The same arguments and results, but the file is read with
    ``allow_pickle=False`` and checked whole first (:func:`open_npz`)::

        mh.load_npz('result/snapshot_epoch_2', trainer)
        mh.load_npz('result/snapshot_epoch_2', model,
                    path='updater/model:main/')

    Raises:
        UnsafeSnapshotError: The file holds an object array.
        SnapshotError: The file is not an ``.npz`` snapshot, or damaged.

    """
    with open_npz(file) as arrays:
        serializers.NpzDeserializer(
            arrays, path=path, strict=strict,
            ignore_names=ignore_names).load(obj)
