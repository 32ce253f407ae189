"""The native arithmetic on NVIDIA GPUs: its CUDA source, for NVRTC.

``_native.cu`` compiles the CPU kernels' body (``_native_body.h``) with the
vocabulary of ``_cuda_vocab.h``: one replica per thread, every operation an
explicitly rounded intrinsic, so the kernels give the CPU kernel sets' bits.
``scripts/cuda_host.py`` compiles them to PTX and runs them on the host,
without a GPU.
"""
import os
import re

import numpy

from minibatch_hybrid.kernels import HERE

#: The CUDA translation unit, and the headers it includes (package data).
SOURCE_FILE = '_native.cu'
HEADERS = ('_native_layout.h', '_cuda_vocab.h', '_native_body.h')

#: The NVRTC options the kernels' bits rely on: no contraction into fused
#: multiply-adds, subnormals flushed as on the CPU, correctly rounded
#: division and square root (see ``_cuda_vocab.h``).
OPTIONS = ('--fmad=false', '--ftz=true', '--prec-div=true',
           '--prec-sqrt=true')

#: Each kernel's parameters in ``_native.cu``'s order, ``(name, type)``; an
#: array's type ends in ``*``.  :func:`arguments` builds a launch from it.
PARAMETERS = {
    'mh_train_epoch': (
        ('n_units', 'int32'), ('batchsize', 'int32'), ('points', 'int32'),
        ('lanes', 'int64'), ('params', 'float32*'), ('m', 'float32*'),
        ('v', 'float32*'), ('x', 'float32*'), ('y', 'float32*'),
        ('alpha_t', 'float32*'), ('order', 'int32*'),
        ('one_minus_beta1', 'float32'), ('one_minus_beta2', 'float32'),
        ('eps', 'float32'), ('neg_eta', 'float32'), ('sums', 'float64*'),
        ('scratch', 'float32*')),
    'mh_evaluate': (
        ('n_units', 'int32'), ('points', 'int32'), ('lanes', 'int64'),
        ('params', 'float32*'), ('x', 'float32*'), ('y', 'float32*'),
        ('out', 'float32*'), ('scratch', 'float32*')),
}

#: The kernels' entry points (``extern "C"``).
KERNELS = tuple(PARAMETERS)

_INCLUDE = re.compile(r'^#include "([^"]+)"[ \t]*$', re.MULTILINE)


def _read(name):
    with open(os.path.join(HERE, name), encoding='utf-8') as f:
        return f.read()


def source():
    """Returns ``_native.cu`` with its headers (:data:`HEADERS`) inlined."""
    def inline(match):
        name = match.group(1)
        if name not in HEADERS:
            raise ValueError('{} includes "{}", not one of {}'.format(
                SOURCE_FILE, name, HEADERS))
        return '/* {} */\n{}'.format(name, _read(name))
    return _INCLUDE.sub(inline, _read(SOURCE_FILE))


def scratch_floats(batchsize, n_units):
    """Returns the floats of one thread's scratch, ``_native.cu``'s
    ``MH_SCRATCH(B, n)`` (a test compares them)."""
    return 3 * batchsize * n_units + 4 * batchsize + 1


def arguments(kernel, **values):
    """Returns a launch's arguments in ``kernel``'s order, from one value
    per name of :data:`PARAMETERS`: scalars cast to their type, arrays
    checked (TypeError) for theirs and for C order."""
    table = PARAMETERS[kernel]
    names = [name for name, _ in table]
    if sorted(values) != sorted(names):
        raise TypeError('{} takes {}; got {}'.format(
            kernel, ', '.join(names), ', '.join(sorted(values))))
    out = []
    for name, kind in table:
        value = values[name]
        if not kind.endswith('*'):
            value = numpy.dtype(kind).type(value)
        elif value.dtype != kind[:-1] or not value.flags.c_contiguous:
            raise TypeError('{}: {} must be a C-contiguous {} array, not '
                            '{} ({}contiguous)'.format(
                                kernel, name, kind[:-1], value.dtype,
                                '' if value.flags.c_contiguous else 'non-'))
        out.append(value)
    return tuple(out)


def module():
    """Returns the kernels as a :class:`cupy.RawModule` (needs CuPy),
    compiled with :data:`OPTIONS` when a kernel is first got."""
    import cupy
    return cupy.RawModule(code=source(), options=OPTIONS)
