"""Imports Chainer 7.8.1 quietly and, where needed, on today's stacks.

Chainer's last release predates Python 3.12, NumPy 2 and setuptools 74.
Importing it on today's stacks meets four problems; this module solves each
in the smallest way and only where the problem is present:

* ``chainer/_environment_check.py`` imports ``numpy.distutils`` (removed on
  Python >= 3.12) only to call ``numpy.distutils.system_info.get_info`` on
  macOS.  Where ``numpy.distutils`` cannot be imported, a stub module with a
  ``get_info`` that returns ``{}`` ("no BLAS information") is registered.
* ``chainer.functions.array.as_strided`` reads ``numpy.sctypes``, removed in
  NumPy 2.0.  Where it is missing, the NumPy 1.x table is restored from the
  scalar types NumPy still has.
* The import emits three deprecation warnings that a user cannot act on
  (``numpy.distutils``, ``pkg_resources`` and ``msvccompiler`` being
  deprecated).  Exactly these messages are ignored during the import; every
  other warning, Chainer's own version checks included, stays visible.
* Where CuPy imports but has no usable cuDNN (CuPy 14 has none; CuPy 13
  without the cuDNN library), Chainer warns ``cuDNN is not enabled`` at
  import and again later, an error under ``-W error``.  There cuDNN is
  turned off as ``CHAINER_CUDNN=0`` does (no warning) and
  ``chainer.global_config.use_cudnn`` is ``'never'``; this is said once,
  as an INFO record of the ``minibatch_hybrid`` logger, with CuPy's reason.
  CuPy's own warning that NCCL cannot be loaded (Chainer imports it for
  its multi-GPU updater, which this package does not use) is ignored
  during the import, by its message.

Nothing else in NumPy or Chainer is patched.  :data:`APPLIED` lists what was
done in this process.
"""
import importlib
import logging
import sys
import types
import warnings

import numpy

#: Names of the shims applied in this process (empty on Python 3.11 with
#: NumPy 1.26 and an old setuptools, the default install).
APPLIED = []

#: (category, message regex) of the import-time warnings that are ignored.
IMPORT_WARNINGS = (
    # numpy.distutils' message starts with a newline.
    (DeprecationWarning, r'\s*`numpy\.distutils` is deprecated'),
    # DeprecationWarning up to setuptools 80.8, UserWarning from 80.9.
    (DeprecationWarning, r'pkg_resources is deprecated as an API'),
    (UserWarning, r'pkg_resources is deprecated as an API'),
    (DeprecationWarning, r'msvccompiler is deprecated'),
)

#: (category, message regex) of the import-time warnings of a CuPy stack
#: that are ignored: Chainer's on a missing cuDNN (which is then turned
#: off, see :func:`_turn_off_missing_cudnn`) and CuPy's on a missing NCCL.
CUPY_IMPORT_WARNINGS = (
    (UserWarning, r'cuDNN is not enabled\.'),
    (UserWarning, r'\s*nccl library could not be loaded\.'),
)

logger = logging.getLogger('minibatch_hybrid')


def _ensure_numpy_distutils():
    try:
        importlib.import_module('numpy.distutils.system_info')
        return
    except ImportError:
        pass
    package = types.ModuleType('numpy.distutils')
    package.__path__ = []
    system_info = types.ModuleType('numpy.distutils.system_info')

    def get_info(name, notfound_action=0):
        """Stub of ``numpy.distutils.system_info.get_info``: no info."""
        return {}

    system_info.get_info = get_info
    package.system_info = system_info
    sys.modules['numpy.distutils'] = package
    sys.modules['numpy.distutils.system_info'] = system_info
    APPLIED.append('numpy.distutils stub')


def _ensure_numpy_sctypes():
    if 'sctypes' in vars(numpy):
        return
    numpy.sctypes = {
        'int': [numpy.int8, numpy.int16, numpy.int32, numpy.int64],
        'uint': [numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64],
        'float': [numpy.float16, numpy.float32, numpy.float64,
                  numpy.longdouble],
        'complex': [numpy.complex64, numpy.complex128, numpy.clongdouble],
        'others': [bool, object, bytes, str, numpy.void],
    }
    APPLIED.append('numpy.sctypes')


def _turn_off_missing_cudnn(chainer):
    """Turns cuDNN off where CuPy works but has no usable cuDNN.

    Chainer decides ``cudnn_enabled`` when it is imported; where cuDNN
    cannot be imported it is already not used (its version reads ``-1``),
    but Chainer warns on every device check unless ``CHAINER_CUDNN=0`` was
    set.  This sets what that variable sets, and ``use_cudnn`` to
    ``'never'`` so that the configuration says what happens.

    """
    cuda = chainer.backends.cuda
    if not cuda.available or cuda.cudnn_enabled or \
            cuda._cudnn_disabled_by_user:
        return
    cuda._cudnn_disabled_by_user = True
    chainer.global_config.use_cudnn = 'never'
    APPLIED.append('cuDNN off')
    logger.info(
        'CuPy %s has no usable cuDNN (%s): Chainer runs without it, as with '
        'CHAINER_CUDNN=0', cuda.cupy.__version__,
        getattr(cuda, '_resolution_error', 'no reason given'))


def import_chainer():
    """Imports and returns the ``chainer`` module with the shims applied."""
    if 'chainer' in sys.modules:
        return sys.modules['chainer']
    with warnings.catch_warnings():
        for category, message in IMPORT_WARNINGS + CUPY_IMPORT_WARNINGS:
            warnings.filterwarnings('ignore', message=message,
                                    category=category)
        _ensure_numpy_distutils()
        _ensure_numpy_sctypes()
        chainer = importlib.import_module('chainer')
    _turn_off_missing_cudnn(chainer)
    return chainer


def __getattr__(name):
    # ``from minibatch_hybrid._compat import chainer``: what each
    # subpackage that uses Chainer does first.
    if name == 'chainer':
        return import_chainer()
    raise AttributeError('module {!r} has no attribute {!r}'.format(
        __name__, name))
