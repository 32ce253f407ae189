"""The CUDA kernels' arithmetic, checked without a GPU.

* On the host: ``scripts/cuda_host_harness.c`` runs the kernels'
  per-thread code (``_native.cu``'s ``train_lane`` and ``evaluate_lane``)
  with the CUDA vocabulary's operations as C float operations, and must
  print the CPU harness's checksum (``tests/test_harness.py``).
* The engine: :class:`~minibatch_hybrid.engines.cuda.CudaEnsemble` with
  NumPy in CuPy's place and the kernels' loops over threads run on the
  host must give the native engine's bits (its packing of arguments and
  results; what a GPU adds, the threads' scheduling, cannot change them:
  each thread owns its lane and its scratch).
* In PTX: NVRTC compiles the source for sm_90 with the package's options;
  the PTX must hold both kernels, every float32 operation rounded to
  nearest and flushing subnormals, and no fused multiply-add but the
  body's ``__fmaf_rn``.  Each check is shown to fail on what it guards
  against.  These tests skip where NVRTC's library is not found
  (``make test-cuda-compile`` installs it).

None of these runs a GPU: that the GPU gives these bits is still to be
checked on one.
"""
import os
import platform
import re
import shutil
import subprocess

import chainer
import numpy
import pytest

from minibatch_hybrid import kernels
from minibatch_hybrid.kernels import cuda
from test_harness import CHECKSUM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, os.pardir)
SCRIPTS = os.path.join(ROOT, 'scripts')
HARNESS = os.path.join(SCRIPTS, 'cuda_host_harness.c')


def _script(name):
    """Imports ``scripts/<name>.py`` (not a package module)."""
    import importlib.util
    path = os.path.join(SCRIPTS, name + '.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cuda_host = _script('cuda_host')

#: The flags setup.py builds the CPU kernels with.
CFLAGS = list(cuda_host.HOST_CFLAGS)

needs_gcc = pytest.mark.skipif(shutil.which('gcc') is None,
                               reason='needs gcc')


def _run_harness(tmp_path, harness=HARNESS):
    binary = str(tmp_path / 'cuda_host_harness')
    subprocess.run(['gcc'] + CFLAGS + ['-o', binary, harness, '-lm'],
                   check=True)
    return subprocess.run([binary], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.exact
@needs_gcc
def test_the_host_build_prints_the_cpu_checksum(tmp_path):
    line = _run_harness(tmp_path)
    assert line.split()[0] == CHECKSUM, line
    # The training reached the range where flushing subnormals acts.
    assert int(line.split()[-1]) > 0, line


@pytest.mark.exact
@needs_gcc
def test_one_unfused_multiply_add_changes_the_checksum(tmp_path):
    # The harness's teeth: __fmaf_rn as a product and a sum, two roundings.
    tree = tmp_path / 'tree'
    (tree / 'scripts').mkdir(parents=True)
    kernels = tree / 'minibatch_hybrid' / 'kernels'
    kernels.mkdir(parents=True)
    for name in (HARNESS, os.path.join(ROOT, 'scripts', 'harness_run.h')):
        shutil.copy(name, str(tree / 'scripts'))
    for name in (cuda.SOURCE_FILE,) + cuda.HEADERS:
        shutil.copy(os.path.join(cuda.HERE, name), str(kernels))
    vocab = kernels / '_cuda_vocab.h'
    text = vocab.read_text()
    assert text.count('return fmaf(a, b, c);') == 1
    vocab.write_text(text.replace('return fmaf(a, b, c);',
                                  'return a * b + c;'))
    line = _run_harness(tmp_path, str(tree / 'scripts' /
                                      'cuda_host_harness.c'))
    assert line.split()[0] != CHECKSUM, line


@needs_gcc
def test_the_scratch_size_is_the_kernels(tmp_path):
    program = tmp_path / 'scratch.c'
    program.write_text(
        '#include "{}"\n#include <stdio.h>\n'
        'int main(void) {{ printf("%ld %ld %d", (long)MH_SCRATCH(7, 24), '
        '(long)MH_SCRATCH(1, 3), EVAL_BATCH); return 0; }}\n'.format(
            os.path.join(cuda.HERE, cuda.SOURCE_FILE)))
    binary = str(tmp_path / 'scratch')
    subprocess.run(['gcc'] + CFLAGS + ['-o', binary, str(program), '-lm'],
                   check=True)
    out = subprocess.run([binary], check=True, capture_output=True,
                         text=True).stdout.split()
    assert [int(w) for w in out] == [cuda.scratch_floats(7, 24),
                                     cuda.scratch_floats(1, 3),
                                     kernels.EVAL_BATCH]


def test_the_source_is_one_string_with_its_headers():
    code = cuda.source()
    assert '#include "' not in code
    assert 'SUFFIX(step)' in code          # the body
    assert '#define vfma __fmaf_rn' in code  # the vocabulary
    for name in cuda.KERNELS:
        assert 'extern "C" __global__ void\n' + name + '(' in code


def test_the_launch_table_is_the_kernels_signatures():
    # cuda.PARAMETERS, which builds every launch, names each kernel's
    # parameters in the source's order with the source's types.
    types = {'int': 'int32', 'long long': 'int64', 'float': 'float32',
             'double': 'float64'}
    found = {}
    for name, params in re.findall(
            r'extern "C" __global__ void\n(\w+)\(([^)]*)\)', cuda.source()):
        found[name] = tuple(
            (m.group(3), types[m.group(1)] + m.group(2)) for m in (
                re.fullmatch(r'\s*(?:const )?(int|long long|float|double) '
                             r'(\*?)(\w+)\s*', p) for p in params.split(',')))
    assert found == cuda.PARAMETERS


def test_a_launch_is_checked_against_the_table():
    table = cuda.PARAMETERS['mh_evaluate']
    values = {name: numpy.zeros(3, kind[:-1]) if kind.endswith('*') else 2
              for name, kind in table}
    args = cuda.arguments('mh_evaluate', **values)
    assert [type(a).__name__ if not isinstance(a, numpy.ndarray)
            else a.dtype.name + '*' for a in args] == [k for _, k in table]
    with pytest.raises(TypeError, match='mh_evaluate takes n_units, '):
        cuda.arguments('mh_evaluate', **dict(values, extra=1))
    del values['out']
    with pytest.raises(TypeError, match='mh_evaluate takes'):
        cuda.arguments('mh_evaluate', **values)
    for bad in (numpy.zeros(3, numpy.float64),
                numpy.zeros((3, 2), numpy.float32)[:, 0]):
        values['out'] = bad
        with pytest.raises(TypeError, match='mh_evaluate: out must be a '
                           'C-contiguous float32 array'):
            cuda.arguments('mh_evaluate', **values)


def test_without_nvrtc_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(cuda_host, '_library', None)
    monkeypatch.setenv(cuda_host.NVRTC_VARIABLE, '/nonexistent/libnvrtc.so')
    with pytest.raises(cuda_host.NvrtcUnavailable) as info:
        cuda_host.compile_ptx()
    assert 'pip install "nvidia-cuda-nvrtc' in str(info.value)
    assert '/nonexistent/libnvrtc.so' in str(info.value)


def _nvrtc_missing():
    try:
        cuda_host.nvrtc()
    except cuda_host.NvrtcUnavailable as e:
        return str(e)
    return None


_MISSING = _nvrtc_missing()
needs_nvrtc = pytest.mark.skipif(
    _MISSING is not None, reason='NVRTC not found: {}'.format(_MISSING))

#: An instruction's opcode (after any predicate).
_OPCODE = re.compile(r'^\s*(?:@!?%p\d+\s+)?([a-z][\w.]*)', re.MULTILINE)
#: The float32 arithmetic whose rounding the bits depend on.
_ARITHMETIC = re.compile(r'^(add|sub|mul|div|sqrt|fma|rcp|mad)\..*f32$')


def _opcodes(ptx):
    return [m.group(1) for m in _OPCODE.finditer(ptx)]


def _arithmetic(ptx):
    return {op for op in _opcodes(ptx) if _ARITHMETIC.match(op)}


@pytest.fixture(scope='module')
def ptx():
    return cuda_host.compile_ptx('sm_90')


@needs_nvrtc
def test_the_ptx_has_both_kernels(ptx):
    entries = re.findall(r'\.visible \.entry (\w+)\(', ptx)
    assert sorted(entries) == sorted(cuda.KERNELS)
    assert '.target sm_90' in ptx


@needs_nvrtc
def test_every_float_operation_is_rounded_and_flushed(ptx):
    # Each one the IEEE operation, rounded to nearest, subnormals flushed:
    # no approximation, no operation without a rounding mode (which ptxas
    # may fuse), nothing that keeps subnormals.
    assert _arithmetic(ptx) == {'add.rn.ftz.f32', 'sub.rn.ftz.f32',
                                'mul.rn.ftz.f32', 'div.rn.ftz.f32',
                                'sqrt.rn.ftz.f32', 'fma.rn.ftz.f32'}
    assert '.approx' not in ptx


@needs_nvrtc
def test_every_fused_multiply_add_is_the_bodys(ptx):
    # With the body's __fmaf_rn renamed to round toward zero, an fma.rn
    # left in the PTX would be one the compiler contracted from a product
    # and a sum: there is none, and the body's are all still there.
    renamed = cuda_host.compile_ptx(
        'sm_90', code='#define __fmaf_rn __fmaf_rz\n' + cuda.source())
    ops = _opcodes(renamed)
    assert not [op for op in ops if op.startswith('fma.rn')]
    assert ops.count('fma.rz.ftz.f32') == _opcodes(ptx).count(
        'fma.rn.ftz.f32') > 0


def _plain_vocabulary():
    """The source with vadd, vsub and vmul as C operators."""
    code = cuda.source()
    for name, op in (('vadd', '+'), ('vsub', '-'), ('vmul', '*')):
        line = '#define {} __f{}_rn\n'.format(name, name[1:])
        assert code.count(line) == 1, line
        code = code.replace(line, '#define {}(a, b) ((a) {} (b))\n'.format(
            name, op))
    return '#define __fmaf_rn __fmaf_rz\n' + code


@needs_nvrtc
def test_the_checks_fail_on_what_they_guard_against():
    plain = _plain_vocabulary()
    # Operators in place of the intrinsics: with --fmad=true the compiler
    # contracts products and sums (the check above fails) ...
    fmad = [o for o in cuda.OPTIONS if not o.startswith('--fmad')]
    contracted = cuda_host.compile_ptx('sm_90', fmad + ['--fmad=true'], plain)
    assert 'fma.rn.ftz.f32' in _opcodes(contracted)
    # ... and --fmad=false still keeps them apart.
    kept = cuda_host.compile_ptx('sm_90', code=plain)
    assert not [op for op in _opcodes(kept) if op.startswith('fma.rn')]
    # Without --ftz=true the intrinsics keep subnormals (no .ftz).
    ftz = [o for o in cuda.OPTIONS if not o.startswith('--ftz')]
    ieee = _arithmetic(cuda_host.compile_ptx('sm_90', ftz + ['--ftz=false']))
    assert ieee and not [op for op in ieee if '.ftz' in op]


def test_the_cuda_engine_without_cupy_says_how_to_get_it():
    # The engine itself is not yet run on a GPU (engines/cuda.py).
    pytest.importorskip('minibatch_hybrid.engines.cuda')
    from minibatch_hybrid.engines import cuda as engine
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip('CuPy is installed: the error is not raised')
    with pytest.raises(engine.CudaUnavailable, match='pip install'):
        engine.CudaEnsemble.from_seeds([0, 1], n_units=4)


@pytest.mark.exact
@needs_gcc
@pytest.mark.skipif(platform.machine() not in ('x86_64', 'AMD64'),
                    reason='the host kernels set x86 flush-to-zero')
def test_the_cuda_engine_emulated_on_the_host_is_the_native_engine(
        tmp_path, monkeypatch):
    # CudaEnsemble with NumPy for CuPy and its kernels run on the host:
    # its packing of arguments and results gives the native engine's bits.
    from minibatch_hybrid.engines import cuda as engine
    from minibatch_hybrid.engines.native import NativeEnsemble
    if not kernels.available():
        pytest.skip('minibatch_hybrid.kernels._native not built')
    host = cuda_host.host_kernels(tmp_path)
    monkeypatch.setattr(engine, '_cupy', cuda_host.HostXp)
    monkeypatch.setattr(engine, '_gpu',
                        lambda device: chainer.get_device('@numpy'))
    monkeypatch.setattr(engine, '_kernel', host.__getitem__)
    seeds, n_units, points = range(19), 6, 23
    gpu = engine.CudaEnsemble.from_seeds(seeds, n_units, alpha=0.01)
    cpu = NativeEnsemble.from_seeds(seeds, n_units, alpha=0.01)
    rng = numpy.random.RandomState(0)
    x = rng.uniform(0, 6.25, (points, 1)).astype(numpy.float32)
    y = numpy.sin(x)
    for _ in range(4):
        orders = numpy.stack([rng.permutation(points) for s in seeds])
        numpy.testing.assert_array_equal(
            gpu.train_epoch(x, y, orders, 5),
            cpu.train_epoch(x, y, orders, 5))
    assert gpu.t == cpu.t
    for which in ('params', 'm', 'v'):
        g, c = gpu.arrays(which), cpu.arrays(which)
        for name in c:
            numpy.testing.assert_array_equal(g[name], c[name])
    own = rng.uniform(0, 6.25, (len(seeds), 17, 1)).astype(numpy.float32)
    for data in ((x, y), (own, numpy.cos(own))):
        numpy.testing.assert_array_equal(gpu.evaluate(*data),
                                         cpu.evaluate(*data))
    assert gpu.replica(3).l2.W.array.tobytes() == \
        cpu.replica(3).l2.W.array.tobytes()


@pytest.mark.exact
def test_the_gpu_checks_digest_is_the_cpus():
    # The GPU check (scripts/gpu_native_check.py bits) passes only if the
    # GPU's run gives DIGEST: the native engine's, on every CPU kernel
    # set.  A change to the arithmetic, the models, the schedules or the
    # run shows here first, not as a failure on a GPU.
    if not kernels.available():
        pytest.skip('minibatch_hybrid.kernels._native not built')
    check = _script('gpu_native_check')
    for name in kernels.supported_kernels():
        with kernels.using_kernels(name):
            arrays = check.native_arrays()
        assert check.digest(arrays) == check.DIGEST, name
    # What a difference is reported as: the first array and index.
    changed = [(n, a.copy()) for n, a in arrays]
    changed[3][1].reshape(-1)[5] = numpy.nextafter(
        changed[3][1].reshape(-1)[5], numpy.float32(numpy.inf))
    assert check.digest(changed) != check.DIGEST
    where = check.first_difference(changed, arrays)
    assert where.startswith(changed[3][0] + ' [') and '1 of' in where
    assert check.first_difference(arrays, arrays) is None
