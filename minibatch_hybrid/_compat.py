"""Imports Chainer 7.8.1 quietly, on today's stacks too.

Only where each problem is present: a stub ``numpy.distutils`` (gone on
Python >= 3.12), ``numpy.sctypes`` restored (gone in NumPy 2), the import's
known deprecation warnings ignored by exact message, and cuDNN turned off
where CuPy has none (said once, at INFO).  Nothing else is patched
(``docs/install.md``); :data:`APPLIED` lists what was done here.
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

#: The same on a CuPy stack: Chainer's on a missing cuDNN (then turned off)
#: and CuPy's on a missing NCCL.
CUPY_IMPORT_WARNINGS = (
    (UserWarning, r'cuDNN is not enabled\.'),
    (UserWarning, r'\s*nccl library could not be loaded\.'),
)

logger = logging.getLogger('minibatch_hybrid')


def _ensure_numpy_distutils():
    try:
        return importlib.import_module('numpy.distutils.system_info')
    except ImportError:
        pass
    package = types.ModuleType('numpy.distutils')
    package.__path__ = []
    system_info = types.ModuleType('numpy.distutils.system_info')
    # Chainer calls it on macOS only: "no BLAS information".
    system_info.get_info = lambda name, notfound_action=0: {}
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
    # Without cuDNN, Chainer warns on every device check unless
    # CHAINER_CUDNN=0: set what that sets, and say it in the configuration.
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


def __getattr__(name):
    # ``from minibatch_hybrid._compat import chainer``: each subpackage's
    # first line, which imports Chainer with the shims applied.
    if name != 'chainer':
        raise AttributeError('module {!r} has no attribute {!r}'.format(
            __name__, name))
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
