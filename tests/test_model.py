import chainer
import chainer.links as L
import numpy
import pytest

import minibatch_hybrid as mh

import bounds


def params(model):
    return {name: param.array.copy() for name, param in model.namedparams()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for name in a:
        numpy.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.bound
def test_mychain_has_the_posts_architecture():
    model = mh.make_model(n_units=100, seed=0)
    shapes = {name: p.shape for name, p in model.namedparams()}
    assert shapes == {'/l1/W': (100, 1), '/l1/b': (100,),
                      '/l2/W': (100, 100), '/l2/b': (100,),
                      '/l3/W': (1, 100), '/l3/b': (1,)}
    # Linear -> ReLU -> Linear -> ReLU -> Linear and the mean squared
    # error, against the exact values of that network (tests/bounds.py),
    # within the float32 error bound of any order of summation.
    x = numpy.linspace(-1, 1, 7, dtype=numpy.float32).reshape(-1, 1)
    t = numpy.zeros_like(x)
    exact = bounds.forward({k.lstrip('/'): v for k, v in
                            params(model).items()}, x, t)
    bounds.check(model.predict(x).array, exact['d'], 'prediction')
    bounds.check(model(x, t).array, exact['loss'], 'loss')


def test_initial_weights_are_chainers_default_initializer():
    # Chainer's Linear draws LeCunNormal from NumPy's global generator by
    # default; the seeded model draws the same from its own RandomState.
    numpy.random.seed(42)
    default = [L.Linear(1, 8), L.Linear(8, 8), L.Linear(8, 1)]
    seeded = mh.make_model(n_units=8, seed=42)
    for link, name in zip(default, ('l1', 'l2', 'l3')):
        numpy.testing.assert_array_equal(getattr(seeded, name).W.array,
                                         link.W.array)
        numpy.testing.assert_array_equal(getattr(seeded, name).b.array,
                                         numpy.zeros_like(link.b.array))


def test_same_seed_same_weights_without_global_state():
    numpy.random.seed(0)
    a = params(mh.make_model(16, seed=3))
    numpy.random.seed(1)
    b = params(mh.make_model(16, seed=3))
    assert_same_params(a, b)
    c = params(mh.make_model(16, seed=4))
    assert not numpy.array_equal(a['/l2/W'], c['/l2/W'])


def test_bad_units():
    with pytest.raises(ValueError, match='n_units must be a positive'):
        mh.MyChain(0)


def short_run(model, optimizer, dataset, seed=0, epochs=3):
    return mh.train(model, optimizer, dataset,
                    mh.parse_schedule('fixed:1+random', seed), epochs,
                    batchsize=10)


@pytest.mark.per_stack
def test_reset_makes_the_next_run_bit_for_bit_the_same():
    dataset = mh.make_sin_dataset(200)
    model = mh.make_model(32, seed=1)
    optimizer = mh.make_optimizer(model)
    initial = mh.InitialState(model)
    before = params(model)
    first = short_run(model, optimizer, dataset)
    after_first = params(model)
    assert optimizer.t == 60
    initial.restore(model, optimizer)
    assert_same_params(params(model), before)
    assert optimizer.t == 0
    for _, param in model.namedparams():
        assert param.grad is None
        assert param.update_rule.state is None  # Adam's moments are gone
    second = short_run(model, optimizer, dataset)
    numpy.testing.assert_array_equal(first.loss, second.loss)
    numpy.testing.assert_array_equal(first.train_loss, second.train_loss)
    assert_same_params(params(model), after_first)


def test_restore_without_optimizer_reset_differs():
    # The optimizer's state matters: keeping Adam's moments (as rebuilding
    # only the model would not) changes the next run. This is what the
    # reset above guards against.
    dataset = mh.make_sin_dataset(200)
    model = mh.make_model(32, seed=1)
    optimizer = mh.make_optimizer(model)
    initial = mh.InitialState(model)
    first = short_run(model, optimizer, dataset)
    initial.restore(model)
    second = short_run(model, optimizer, dataset)
    assert not numpy.array_equal(first.loss, second.loss)


def test_restore_into_another_model_checks_its_shape():
    initial = mh.InitialState(mh.make_model(8, seed=0))
    with pytest.raises(ValueError, match='same n_units'):
        initial.restore(mh.make_model(9, seed=0))
    other = chainer.Chain()
    with other.init_scope():
        other.l1 = L.Linear(1, 8)
    with pytest.raises(ValueError, match='same architecture'):
        initial.restore(other)
