"""The one-node loss against Chainer's own functions.

Contract ``per_stack``: ``mlp_loss`` makes the very NumPy/BLAS calls that
Chainer's ``Linear``, ``relu`` and ``mean_squared_error`` make (``matmul``
where Chainer calls ``dot``: the same BLAS routine, shapes and strides), so
on one NumPy + BLAS stack they give the same bits, whichever kernels the
BLAS picks for the CPU.  Checked on OpenBLAS (NumPy 1.26 and 2.x wheels)
with every x86-64 kernel type (``OPENBLAS_CORETYPE``: SkylakeX, Haswell,
Zen, Sandybridge, Prescott); another BLAS may route ``dot`` and ``matmul``
differently.
"""
import chainer.functions as F
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.core.loss import mlp_loss

import bounds


def params_of(model):
    return (model.l1.W, model.l1.b, model.l2.W, model.l2.b, model.l3.W,
            model.l3.b)


@pytest.mark.per_stack
@pytest.mark.parametrize('batch', [1, 7, 10])
def test_loss_and_gradients_equal_chainers_functions(batch):
    model = mh.make_model(100, seed=5)
    data = mh.make_sin_dataset(1000)
    index = numpy.random.default_rng(batch).permutation(1000)[:batch]
    x, t = data.x[index], data.y[index]

    model.cleargrads()
    expected = F.mean_squared_error(model.predict(x), t)
    expected.backward()
    grads = {name: p.grad.copy() for name, p in model.namedparams()}

    model.cleargrads()
    loss = mlp_loss(x, t, params_of(model))
    loss.backward()
    assert loss.dtype == numpy.float32 and loss.shape == ()
    assert loss.array == expected.array
    for name, p in model.namedparams():
        numpy.testing.assert_array_equal(p.grad, grads[name], err_msg=name)


@pytest.mark.bound
def test_stacked_loss_is_within_the_bound_of_each_replicas_loss():
    # The stacked loss sums the squares in its own order (a pairwise sum,
    # not the single model's BLAS dot): each replica's loss lies within the
    # forward pass's error bound of the exact loss.
    models = [mh.make_model(20, seed=s) for s in range(3)]
    ensemble = mh.Ensemble(models)
    rng = numpy.random.default_rng(0)
    x = rng.uniform(0, 6, (3, 10, 1)).astype(numpy.float32)
    t = numpy.sin(x)
    losses = ensemble(x, t)
    assert losses.shape == (3,)
    for k, model in enumerate(models):
        params = {n.lstrip('/'): p.array for n, p in model.namedparams()}
        bounds.check(losses.array[k], bounds.forward(params, x[k], t[k])
                     ['loss'], 'replica {}'.format(k))


@pytest.mark.per_stack
def test_a_replicas_loss_does_not_depend_on_its_neighbours():
    models = [mh.make_model(20, seed=s) for s in range(3)]
    x = numpy.random.default_rng(0).uniform(0, 6, (3, 10, 1)).astype(
        numpy.float32)
    t = numpy.sin(x)
    losses = mh.Ensemble(models)(x, t)
    alone = mh.Ensemble([models[1]])(x[1:2], t[1:2])
    assert alone.array[0] == losses.array[1]
