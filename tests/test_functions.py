"""The one-node loss against Chainer's own functions, bit for bit."""
import chainer.functions as F
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.functions import mlp_loss


def params_of(model):
    return (model.l1.W, model.l1.b, model.l2.W, model.l2.b, model.l3.W,
            model.l3.b)


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


def test_stacked_loss_equals_single_to_rounding_and_is_per_replica():
    models = [mh.make_model(20, seed=s) for s in range(3)]
    ensemble = mh.ensemble.Ensemble(models)
    rng = numpy.random.default_rng(0)
    x = rng.uniform(0, 6, (3, 10, 1)).astype(numpy.float32)
    t = numpy.sin(x)
    losses = ensemble(x, t)
    assert losses.shape == (3,)
    for k, model in enumerate(models):
        numpy.testing.assert_allclose(losses.array[k],
                                      model(x[k], t[k]).array, rtol=1e-6)
    # Replica 1 alone gives the same bits as replica 1 among others.
    alone = mh.ensemble.Ensemble([models[1]])(x[1:2], t[1:2])
    assert alone.array[0] == losses.array[1]
