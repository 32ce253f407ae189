"""The native arithmetic on NVIDIA GPUs: its CUDA source, compiled by NVRTC.

The body of the CPU kernels (``_native_body.h``) is compiled for CUDA with
the vocabulary of ``_cuda_vocab.h``: one replica per thread, a vector is
one float, every operation an explicitly rounded intrinsic (``__fadd_rn``,
``__fsub_rn``, ``__fmul_rn``, ``__fdiv_rn``, ``__fsqrt_rn``,
``__fmaf_rn``).  Each output of a product is the same in-order chain of
fused multiply-adds as on the CPU, and Adam the same float32 operations,
so the kernels give the bits of every CPU kernel set.
``scripts/cuda_host_harness.c`` runs the kernels' per-thread code on the
host with those operations as C float operations and prints the CPU
harness's checksum (``tests/test_cuda_kernels.py``).

The source is ``_native.cu`` with its two headers inlined
(:func:`source`); :data:`OPTIONS` are the NVRTC options the bits rely on:

``--fmad=false``
    No multiply and add is contracted into a fused multiply-add: the only
    ``fma`` instructions are the body's ``__fmaf_rn``.
``--prec-div=true``, ``--prec-sqrt=true``
    Correctly rounded division and square root (the ``_rn`` intrinsics are
    that in any case).
``--ftz=true``
    Single-precision subnormal inputs and results are flushed to zero of
    the same sign, as the CPU kernels do with FTZ and DAZ.  The ``_rn``
    intrinsics follow the flag: compiled with it, ``__fadd_rn`` is
    ``add.rn.ftz.f32``, ``__fmaf_rn`` is ``fma.rn.ftz.f32``, and so on
    (the PTX test checks it); without it they keep subnormals.

:func:`compile_ptx` compiles the source to PTX without a GPU, by loading
NVRTC's library (``libnvrtc.so``) with :mod:`ctypes`; :func:`module`
builds the :class:`cupy.RawModule` of the kernels ``mh_train_epoch`` and
``mh_evaluate`` (not yet run on a GPU).  :func:`host_kernels` and
:class:`HostXp` run the kernels' loops over threads on the host, with NumPy
in CuPy's place (``tests/test_cuda_kernels.py``,
``scripts/gpu_native_check.py --device host``).
"""
import ctypes
import ctypes.util
import glob
import os
import re
import subprocess
import sys

from minibatch_hybrid.errors import Error
from minibatch_hybrid.kernels import HERE

#: The CUDA translation unit, and the headers it includes (package data).
SOURCE_FILE = '_native.cu'
HEADERS = ('_native_layout.h', '_cuda_vocab.h', '_native_body.h')

#: The NVRTC options the kernels' bits rely on (see the module's text).
OPTIONS = ('--fmad=false', '--ftz=true', '--prec-div=true',
           '--prec-sqrt=true')

#: The kernels' entry points (``extern "C"``).
KERNELS = ('mh_train_epoch', 'mh_evaluate')


#: The environment variable that names NVRTC's library file.
NVRTC_VARIABLE = 'MINIBATCH_HYBRID_NVRTC'

NVRTC_HOW = ('install NVRTC: pip install "nvidia-cuda-nvrtc>=13,<14" '
             '(CUDA 13; or a CUDA toolkit with libnvrtc), or name the '
             'library: {}=/path/to/libnvrtc.so'.format(NVRTC_VARIABLE))


class NvrtcUnavailable(Error, RuntimeError):
    """NVRTC's library cannot be found or loaded; the message says how."""


class CompileError(Error, RuntimeError):
    """NVRTC refused the source; the message holds its log."""


_INCLUDE = re.compile(r'^#include "([^"]+)"[ \t]*$', re.MULTILINE)


def _read(name):
    with open(os.path.join(HERE, name), encoding='utf-8') as f:
        return f.read()


def source():
    """Returns the kernels' CUDA source, the headers inlined.

    ``_native.cu`` with each ``#include "..."`` of a header of
    :data:`HEADERS` replaced by that header's text, read from the package:
    one string that needs no include path.

    Returns:
        str: The source.

    """
    def inline(match):
        name = match.group(1)
        if name not in HEADERS:
            raise ValueError('{} includes "{}", not one of {}'.format(
                SOURCE_FILE, name, HEADERS))
        return '/* {} */\n{}'.format(name, _read(name))
    return _INCLUDE.sub(inline, _read(SOURCE_FILE))


def scratch_floats(batchsize, n_units):
    """Returns the floats of one thread's scratch (``MH_SCRATCH``).

    Args:
        batchsize (int): Points per step (to evaluate,
            :data:`~minibatch_hybrid.kernels.EVAL_BATCH`).
        n_units (int): Hidden units of each layer.

    Returns:
        int: ``3 B n + 4 B + 1``: h1, h2 and g1; x, t, d and gy; a loss.

    """
    return 3 * batchsize * n_units + 4 * batchsize + 1


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
    # A CUDA toolkit.
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

    Looked for in the file that ``MINIBATCH_HYBRID_NVRTC`` names, else in
    the ``nvidia-cuda-nvrtc`` wheels on ``sys.path``, a CUDA toolkit
    (``CUDA_PATH``, ``CUDA_HOME``, ``/usr/local/cuda``), and the system's
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


def compile_ptx(arch='sm_90', options=OPTIONS, code=None):
    """Compiles the kernels to PTX with NVRTC; needs no GPU.

    Args:
        arch (str): The GPU (``'sm_90'``: Hopper) or its virtual
            architecture (``'compute_90'``); PTX is compiled for the
            latter.
        options (tuple of str): NVRTC options (:data:`OPTIONS`).
        code (str): The source (:func:`source` if ``None``).

    Returns:
        str: The PTX.

    Raises:
        NvrtcUnavailable: NVRTC cannot be found.
        CompileError: NVRTC refused the source (the log is in the
            message).

    """
    lib = nvrtc()
    code = source() if code is None else code
    program = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(
        ctypes.byref(program), code.encode(), SOURCE_FILE.encode(), 0,
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
                SOURCE_FILE, lib.nvrtcGetErrorString(status).decode(),
                log.value.decode(errors='replace')))
        _check(lib, lib.nvrtcGetPTXSize(program, ctypes.byref(size)))
        ptx = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetPTX(program, ptx))
        return ptx.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def module():
    """Returns the kernels as a :class:`cupy.RawModule` (needs CuPy).

    CuPy compiles :func:`source` with :data:`OPTIONS` for the current
    device when a kernel is first got
    (``module().get_function('mh_train_epoch')``).
    """
    import cupy
    return cupy.RawModule(code=source(), options=OPTIONS)


#: The flags setup.py builds the CPU kernels with (and the host kernels).
HOST_CFLAGS = ('-O3', '-ffp-contract=off', '-fno-math-errno')

#: The kernels' loops over threads, on the host: what a GPU runs for each
#: lane, one lane after another, with the CPU kernels' FTZ and DAZ.
HOST_KERNELS = r"""
#include "{source}"
#include <immintrin.h>

void
mh_train_epoch(int n, int B, int N, long long lanes, float *params,
               float *m, float *v, const float *X, const float *Y,
               const float *alpha_t, const int *order, float c1, float c2,
               float eps, float neg_eta, double *sum_loss, float *scratch)
{{
    const unsigned int saved = _mm_getcsr();
    const adam_hp h = {{c1, c2, eps, neg_eta}};
    _mm_setcsr(saved | 0x8040);
    for (long long lane = 0; lane < lanes; lane++)
        train_lane(n, B, N, lane, params, m, v, X, Y, alpha_t, order, h,
                   sum_loss, scratch + lane * MH_SCRATCH(B, n));
    _mm_setcsr(saved);
}}

void
mh_evaluate(int n, int N, long long lanes, const float *params,
            const float *X, const float *Y, float *out, float *scratch)
{{
    const unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);
    for (long long lane = 0; lane < lanes; lane++)
        evaluate_lane(n, N, lane, params, X, Y, out,
                      scratch + lane * MH_SCRATCH(EVAL_BATCH, n));
    _mm_setcsr(saved);
}}
"""


class HostXp(object):
    """NumPy in CuPy's place (``asnumpy``: a copy on the host)."""

    def __getattr__(self, name):
        import numpy
        return getattr(numpy, name)

    @staticmethod
    def asnumpy(a):
        """Returns a copy of ``a`` on the host (:func:`numpy.array`)."""
        import numpy
        return numpy.array(a)


def host_kernels(folder, cc='gcc'):
    """Returns the kernels compiled for the host, called as CuPy calls a
    RawKernel.

    The per-thread code of :func:`source` (``train_lane`` and
    ``evaluate_lane``) is compiled with :data:`HOST_KERNELS`' loops over
    the lanes and :data:`HOST_CFLAGS`, as a shared library in ``folder``;
    each kernel is then called as ``kernel(grid, block, args)`` with NumPy
    arrays and NumPy scalars.  Needs a C compiler and an x86 CPU (it sets
    flush-to-zero as the CPU kernels do).

    Args:
        folder (str): Where the C file and the library are written.
        cc (str): The C compiler.

    Returns:
        dict: ``{name: callable}`` for each name of :data:`KERNELS`.

    """
    import numpy
    program = os.path.join(str(folder), 'host_kernels.c')
    with open(program, 'w', encoding='utf-8') as f:
        f.write(HOST_KERNELS.format(source=os.path.join(HERE, SOURCE_FILE)))
    library = os.path.join(str(folder), 'host_kernels.so')
    subprocess.run([cc] + list(HOST_CFLAGS) + [
        '-shared', '-fPIC', '-o', library, program, '-lm'], check=True)
    lib = ctypes.CDLL(library)
    types = {numpy.int32: ctypes.c_int, numpy.int64: ctypes.c_longlong,
             numpy.float32: ctypes.c_float}

    def kernel(name):
        lanes = 3 if name == 'mh_train_epoch' else 2

        def call(grid, block, args):
            if grid[0] * block[0] < args[lanes]:
                raise ValueError('{}: {} x {} threads for {} lanes'.format(
                    name, grid[0], block[0], args[lanes]))
            values = []
            for a in args:
                if isinstance(a, numpy.ndarray):
                    if not a.flags.c_contiguous:
                        raise ValueError('{}: an array is not C-contiguous'
                                         .format(name))
                    values.append(ctypes.c_void_p(a.ctypes.data))
                else:
                    values.append(types[type(a)](a))
            getattr(lib, name)(*values)
        return call
    return {name: kernel(name) for name in KERNELS}
