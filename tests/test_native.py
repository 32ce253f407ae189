"""The compiled kernels against NumPy's operations, kernel set by kernel set."""
import chainer
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid import native
from minibatch_hybrid.ensemble import Ensemble
from minibatch_hybrid.functions import Buffers
from minibatch_hybrid.functions import mlp_loss

# Where the extension is not built the package runs on NumPy; the kernel
# tests then have nothing to test (`make test` checks that it is built).
needs_native = pytest.mark.skipif(not native.available(),
                                  reason='minibatch_hybrid._native not built')
KERNELS = native.supported_kernels() or ['c']


def stacked(k, batch, n, seed):
    """Random stacked inputs and parameters, some units dead (ReLU off)."""
    rng = numpy.random.default_rng(seed)
    f32 = numpy.float32
    x = rng.uniform(0, 2 * numpy.pi, (k, batch, 1)).astype(f32)
    t = numpy.sin(x)
    params = [rng.standard_normal(shape).astype(f32) * scale
              for shape, scale in [((k, n, 1), 1), ((k, n), 0.5),
                                   ((k, n, n), n ** -0.5), ((k, n), 0.1),
                                   ((k, 1, n), n ** -0.5), ((k, 1), 0.1)]]
    return x, t, params


def loss_and_grads(x, t, params, native_, buffers=None):
    variables = [chainer.Variable(p.copy()) for p in params]
    loss = mlp_loss(x, t, variables, native=native_, buffers=buffers)
    loss.grad = numpy.linspace(0.5, 1.5, len(x)).astype(numpy.float32)
    loss.backward()
    return loss.array, [v.grad for v in variables]


@needs_native
@pytest.mark.parametrize('kernels', KERNELS)
@pytest.mark.parametrize('k,batch,n', [(3, 10, 100), (1, 1, 1), (2, 3, 7),
                                       (9, 6, 17), (4, 5, 16), (2, 12, 33)])
def test_forward_and_backward_equal_numpys_to_rounding(kernels, k, batch, n):
    # Sizes that fill the register blocks exactly and sizes that leave
    # tails of rows and of 8-wide vectors; k = 9 splits across threads.
    x, t, params = stacked(k, batch, n, seed=n)
    expected, expected_grads = loss_and_grads(x, t, params, False)
    with native.using_kernels(kernels):
        loss, grads = loss_and_grads(x, t, params, True)
    numpy.testing.assert_allclose(loss, expected, rtol=2e-6)
    for name, g, e in zip(('W1', 'b1', 'W2', 'b2', 'W3', 'b3'), grads,
                          expected_grads):
        assert g.shape == e.shape and g.dtype == numpy.float32
        scale = numpy.abs(e).max()
        numpy.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6 * scale,
                                      err_msg=name)


@needs_native
@pytest.mark.parametrize('kernels', KERNELS)
def test_a_replica_gives_the_same_bits_alone_or_among_others(kernels):
    # Nine replicas are split across threads; each alone is not.
    x, t, params = stacked(9, 10, 100, seed=1)
    gloss = numpy.linspace(0.5, 1.5, 9).astype(numpy.float32)
    with native.using_kernels(kernels):
        loss, grads = loss_and_grads(x, t, params, True)
        for k in (0, 4, 8):
            variables = [chainer.Variable(p[k:k + 1].copy()) for p in params]
            one = mlp_loss(x[k:k + 1], t[k:k + 1], variables, native=True)
            one.grad = gloss[k:k + 1].copy()
            one.backward()
            assert one.array[0] == loss[k]
            for v, g in zip(variables, grads):
                numpy.testing.assert_array_equal(v.grad[0], g[k])


@needs_native
def test_the_same_seed_gives_the_same_bits():
    results = []
    for _ in range(2):
        ensemble = Ensemble.from_seeds(range(8), 20, native=True)
        schedules = [mh.Random(s) for s in range(8)]
        results.append(mh.train(ensemble, mh.make_optimizer(ensemble),
                                mh.make_sin_dataset(100), schedules, 3).loss)
    numpy.testing.assert_array_equal(*results)


@needs_native
def test_reused_buffers_never_overwrite_what_a_graph_still_needs():
    # Two forward passes before one backward: the first graph's saved
    # activations must survive the second pass.
    x, t, params = stacked(3, 10, 16, seed=2)
    x2, t2, _ = stacked(3, 10, 16, seed=3)
    variables = [chainer.Variable(p.copy()) for p in params]
    buffers = Buffers()
    a = mlp_loss(x, t, variables, native=True, buffers=buffers)
    b = mlp_loss(x2, t2, variables, native=True, buffers=buffers)
    chainer.functions.sum(a + b).backward()
    fresh = [chainer.Variable(p.copy()) for p in params]
    chainer.functions.sum(
        mlp_loss(x, t, fresh, native=True) +
        mlp_loss(x2, t2, fresh, native=True)).backward()
    for v, f in zip(variables, fresh):
        numpy.testing.assert_array_equal(v.grad, f.grad)


def test_buffers_reuse_only_what_nobody_holds():
    buffers = Buffers()
    first = buffers.empty((4, 5))
    second = buffers.empty((4, 5))
    assert second is not first  # `first` is still held here
    view = first[1:]
    del first
    assert buffers.empty((4, 5)) is not view.base  # held through a view
    del view
    third = buffers.empty((4, 5))
    assert third.shape == (4, 5) and third.dtype == numpy.float32
    assert buffers.empty((4, 5)) is not third
    assert buffers.empty((2, 2)).shape == (2, 2)


@needs_native
def test_kernel_arguments_are_checked():
    kernels = native._native
    x, t, params = stacked(2, 3, 4, seed=0)
    arrays = [a.reshape(2, -1) for a in [x, t] + params]
    out = [numpy.empty((2, 12), numpy.float32), numpy.empty((2, 12),
           numpy.float32), numpy.empty((2, 3), numpy.float32),
           numpy.empty(2, numpy.float32)]
    kernels.mlp_forward(0, 2, *arrays, *out)  # well formed
    with pytest.raises(TypeError, match='W2 must be float32'):
        kernels.mlp_forward(0, 2, *arrays[:4], arrays[4].astype(numpy.float64),
                            *arrays[5:], *out)
    with pytest.raises(TypeError, match='h1 must be a C-contiguous, writable '
                       'float32 array'):
        kernels.mlp_forward(0, 2, *arrays, out[0].T, *out[1:])
    with pytest.raises(ValueError, match='b2 has 6 elements; expected 8'):
        kernels.mlp_forward(0, 2, *arrays[:5], arrays[5][:, :3].copy(),
                            *arrays[6:], *out)
    with pytest.raises(ValueError, match=r'replica range \[1, 3\) is not '
                       r'within \[0, 2\)'):
        kernels.mlp_forward(1, 3, *arrays, *out)
    p = numpy.zeros(10, numpy.float32)
    with pytest.raises(ValueError, match='v has 9 elements, param has 10'):
        kernels.adam(p, p.copy(), p.copy(), p[:9].copy(), 0.9, 0.999, 1e-8,
                     1e-3, 1.0, 0, 10)
    with pytest.raises(ValueError, match=r'range \[0, 11\) is not within'):
        kernels.adam(p, p.copy(), p.copy(), p.copy(), 0.9, 0.999, 1e-8,
                     1e-3, 1.0, 0, 11)
    with pytest.raises(ValueError, match="unknown kernels 'sse': choose "
                       "'avx512', 'avx2' or 'c'"):
        kernels.set_kernels('sse')


@needs_native
def test_native_needs_stacked_float32_on_the_cpu():
    model = mh.make_model(4, 0)
    x = numpy.zeros((10, 1), numpy.float32)
    with pytest.raises(ValueError, match=r'stacked \(K, B, 1\) float32 '
                       'arrays on the CPU; got 2-D float32'):
        mlp_loss(x, x, (model.l1.W, model.l1.b, model.l2.W, model.l2.b,
                        model.l3.W, model.l3.b), native=True)


def test_engines_resolve_and_explain(monkeypatch):
    cpu = chainer.get_device('@numpy')
    assert native.resolve_engine('numpy', cpu) == 'numpy'
    with pytest.raises(ValueError, match="unknown engine 'gpu'"):
        native.resolve_engine('gpu', cpu)
    if native.available():
        assert native.resolve_engine('auto', cpu) == \
            'native-' + native.kernels()
    # As on a machine without a C compiler:
    monkeypatch.setattr(native, '_native', None)
    monkeypatch.setattr(native, '_IMPORT_ERROR', ImportError('not built'))
    assert native.resolve_engine('auto', cpu) == 'numpy'
    assert native.supported_kernels() == []
    with pytest.raises(native.NativeUnavailable, match='not built: not built. '
                       'Install a C compiler'):
        native.resolve_engine('native', cpu)
    with pytest.raises(native.NativeUnavailable):
        Ensemble.from_seeds([0], 4, native=True)
    # FusedAdam falls back to NumPy's operations (the same bits).
    assert not mh.adam.FusedAdam().setup(mh.make_model(4, 0)) \
        .create_update_rule().native


def test_the_command_says_how_to_build_the_kernels(monkeypatch, tmp_path,
                                                   capsys):
    from minibatch_hybrid import cli
    monkeypatch.setattr(native, '_native', None)
    monkeypatch.setattr(native, '_IMPORT_ERROR', ImportError('not built'))
    with pytest.raises(SystemExit) as exit_:
        cli.main(['study', '--quick', '--engine', 'native', '--out',
                  str(tmp_path / 'study')])
    assert exit_.value.code == 2
    assert 'Install a C compiler' in capsys.readouterr().err
