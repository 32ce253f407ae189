"""The CUDA kernels checked without a GPU: compiled to PTX, run on the host.

:func:`compile_ptx` compiles the kernels with NVRTC's library, loaded with
:mod:`ctypes` (``make test-cuda-compile``).  :func:`host_kernels` compiles
``_native.cu``'s per-thread code (``train_lane``, ``evaluate_lane``) with
loops over the lanes in place of the GPU's threads, and :class:`HostXp`
stands in for CuPy: with both,
:class:`~minibatch_hybrid.engines.cuda.CudaEnsemble` runs without a GPU
(``tests/test_cuda_kernels.py``, ``gpu_native_check.py --device host``).
"""
import ctypes
import ctypes.util
import glob
import os
import re
import subprocess
import sys

import numpy

from minibatch_hybrid.kernels import cuda

#: The environment variable that names NVRTC's library file.
NVRTC_VARIABLE = 'MINIBATCH_HYBRID_NVRTC'

NVRTC_HOW = ('install NVRTC: pip install "nvidia-cuda-nvrtc>=13,<14" '
             '(CUDA 13; or a CUDA toolkit with libnvrtc), or name the '
             'library: {}=/path/to/libnvrtc.so'.format(NVRTC_VARIABLE))


class NvrtcUnavailable(RuntimeError):
    """NVRTC's library cannot be found or loaded; the message says how."""


class CompileError(RuntimeError):
    """NVRTC refused the source; the message holds its log."""


def _candidates():
    """Yields the paths where NVRTC's library may be, in order."""
    named = os.environ.get(NVRTC_VARIABLE, '').strip()
    if named:
        yield named
        return
    # The pip wheels: nvidia-cuda-nvrtc 13 (nvidia/cu13/lib) and 12
    # (nvidia/cuda_nvrtc/lib), wherever sys.path finds the nvidia folder.
    for entry in sys.path:
        for sub in ('cu13', 'cuda_nvrtc'):
            pattern = os.path.join(entry or '.', 'nvidia', sub, 'lib',
                                   'libnvrtc.so*')
            yield from sorted(p for p in glob.glob(pattern)
                              if 'builtins' not in os.path.basename(p))
    for root in (os.environ.get('CUDA_PATH'), os.environ.get('CUDA_HOME'),
                 '/usr/local/cuda'):
        if root:
            yield from sorted(glob.glob(
                os.path.join(root, 'lib64', 'libnvrtc.so*')))
    found = ctypes.util.find_library('nvrtc')
    if found:
        yield found


_library = None


def nvrtc():
    """Returns NVRTC's library, loaded once (:class:`ctypes.CDLL`).

    Looked for in the file ``MINIBATCH_HYBRID_NVRTC`` names, else in the
    ``nvidia-cuda-nvrtc`` wheels on ``sys.path``, a CUDA toolkit
    (``CUDA_PATH``, ``CUDA_HOME``, ``/usr/local/cuda``) and the system's
    libraries.

    Raises:
        NvrtcUnavailable: It is found nowhere, or does not load.

    """
    global _library
    if _library is not None:
        return _library
    tried = []
    for path in _candidates():
        try:
            library = ctypes.CDLL(path)
            _declare(library)
        except (OSError, AttributeError) as e:
            tried.append('{} ({})'.format(path, e))
            continue
        _library = library
        return library
    raise NvrtcUnavailable('NVRTC (libnvrtc) not found{}: {}'.format(
        ' (tried {})'.format('; '.join(tried)) if tried else '',
        NVRTC_HOW))


def _declare(lib):
    """Gives the NVRTC calls used here their C signatures."""
    p, i, c = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    size = ctypes.POINTER(ctypes.c_size_t)
    calls = {
        'nvrtcVersion': [ctypes.POINTER(i), ctypes.POINTER(i)],
        'nvrtcGetErrorString': [i],
        'nvrtcCreateProgram': [ctypes.POINTER(p), c, c, i,
                               ctypes.POINTER(c), ctypes.POINTER(c)],
        'nvrtcCompileProgram': [p, i, ctypes.POINTER(c)],
        'nvrtcGetProgramLogSize': [p, size],
        'nvrtcGetProgramLog': [p, c],
        'nvrtcGetPTXSize': [p, size],
        'nvrtcGetPTX': [p, c],
        'nvrtcDestroyProgram': [ctypes.POINTER(p)],
    }
    for name, argtypes in calls.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = c if name == 'nvrtcGetErrorString' else i


def version():
    """Returns NVRTC's version, ``(major, minor)``."""
    lib = nvrtc()
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(lib, lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)))
    return major.value, minor.value


def _check(lib, status, what='NVRTC'):
    if status != 0:
        raise CompileError('{}: {}'.format(
            what, lib.nvrtcGetErrorString(status).decode()))


def _virtual(arch):
    """``'sm_90'`` or ``'compute_90'`` -> ``'compute_90'`` (PTX's)."""
    match = re.fullmatch(r'(?:sm|compute)_(\d+[a-z]?)', arch)
    if match is None:
        raise ValueError('arch: expected sm_NN or compute_NN, got {!r}'
                         .format(arch))
    return 'compute_' + match.group(1)


def compile_ptx(arch='sm_90', options=cuda.OPTIONS, code=None):
    """Compiles the kernels to PTX with NVRTC; needs no GPU.

    Args:
        arch (str): The GPU (``'sm_90'``) or its virtual architecture
            (``'compute_90'``), which the PTX is compiled for.
        options (tuple of str): NVRTC options (the package's).
        code (str): The source (the package's if ``None``).

    Returns:
        str: The PTX.

    Raises:
        NvrtcUnavailable: NVRTC cannot be found.
        CompileError: NVRTC refused the source (its log in the message).

    """
    lib = nvrtc()
    code = cuda.source() if code is None else code
    program = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(
        ctypes.byref(program), code.encode(), cuda.SOURCE_FILE.encode(), 0,
        None, None))
    try:
        flags = list(options) + ['--gpu-architecture=' + _virtual(arch)]
        array = (ctypes.c_char_p * len(flags))(*[f.encode() for f in flags])
        status = lib.nvrtcCompileProgram(program, len(flags), array)
        size = ctypes.c_size_t()
        _check(lib, lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)))
        log = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetProgramLog(program, log))
        if status != 0:
            raise CompileError('NVRTC could not compile {}: {}\n{}'.format(
                cuda.SOURCE_FILE, lib.nvrtcGetErrorString(status).decode(),
                log.value.decode(errors='replace')))
        _check(lib, lib.nvrtcGetPTXSize(program, ctypes.byref(size)))
        ptx = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetPTX(program, ptx))
        return ptx.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))

#: The flags setup.py builds the CPU kernels with (and the host kernels).
HOST_CFLAGS = ('-O3', '-ffp-contract=off', '-fno-math-errno')

#: The kernels' loops over threads, on the host: what a GPU runs for each
#: lane, one lane after another, with the CPU kernels' FTZ and DAZ.
HOST_KERNELS = r"""
#include "{source}"
#include <immintrin.h>

void
mh_train_epoch(int n_units, int batchsize, int points, long long lanes,
               float *params, float *m, float *v, const float *x,
               const float *y, const float *alpha_t, const int *order,
               float one_minus_beta1, float one_minus_beta2, float eps,
               float neg_eta, double *sums, float *scratch)
{{
    const unsigned int saved = _mm_getcsr();
    const adam_hp h = {{one_minus_beta1, one_minus_beta2, eps, neg_eta}};
    _mm_setcsr(saved | 0x8040);
    for (long long lane = 0; lane < lanes; lane++)
        train_lane(n_units, batchsize, points, lane, params, m, v, x, y,
                   alpha_t, order, h, sums,
                   scratch + lane * MH_SCRATCH(batchsize, n_units));
    _mm_setcsr(saved);
}}

void
mh_evaluate(int n_units, int points, long long lanes, const float *params,
            const float *x, const float *y, float *out, float *scratch)
{{
    const unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);
    for (long long lane = 0; lane < lanes; lane++)
        evaluate_lane(n_units, points, lane, params, x, y, out,
                      scratch + lane * MH_SCRATCH(EVAL_BATCH, n_units));
    _mm_setcsr(saved);
}}
"""

_CTYPES = {'int32': ctypes.c_int, 'int64': ctypes.c_longlong,
           'float32': ctypes.c_float}


class HostXp(object):
    """NumPy in CuPy's place (``asnumpy``: a copy on the host)."""

    def __getattr__(self, name):
        return getattr(numpy, name)

    @staticmethod
    def asnumpy(a):
        return numpy.array(a)


def host_kernels(folder, cc='gcc'):
    """Returns the kernels compiled for the host, called as CuPy calls a
    RawKernel: ``kernel(grid, block, args)``, ``args`` as
    :func:`minibatch_hybrid.kernels.cuda.arguments` makes them.

    Needs a C compiler and an x86 CPU (for flush-to-zero).

    Args:
        folder (str): Where the C file and the library are written.
        cc (str): The C compiler.

    Returns:
        dict: ``{name: callable}`` for each kernel.

    """
    program = os.path.join(str(folder), 'host_kernels.c')
    with open(program, 'w', encoding='utf-8') as f:
        f.write(HOST_KERNELS.format(
            source=os.path.join(cuda.HERE, cuda.SOURCE_FILE)))
    library = os.path.join(str(folder), 'host_kernels.so')
    subprocess.run([cc] + list(HOST_CFLAGS) + [
        '-shared', '-fPIC', '-o', library, program, '-lm'], check=True)
    lib = ctypes.CDLL(library)

    def kernel(name):
        table = cuda.PARAMETERS[name]
        lanes = [param for param, _ in table].index('lanes')

        def call(grid, block, args):
            if grid[0] * block[0] < args[lanes]:
                raise ValueError('{}: {} x {} threads for {} lanes'.format(
                    name, grid[0], block[0], args[lanes]))
            getattr(lib, name)(*[
                ctypes.c_void_p(a.ctypes.data) if kind.endswith('*')
                else _CTYPES[kind](a) for a, (_, kind) in zip(args, table)])
        return call
    return {name: kernel(name) for name in cuda.KERNELS}
