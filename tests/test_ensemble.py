"""The ensembles: K replicas trained together, each as if alone."""
import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.engines.stacked import Ensemble

import bounds
from _marks import needs_native

SEEDS = [0, 1, 2, 3]
BATCH = 10


def build(engine, seeds):
    """Returns an ensemble of the engine and its optimizer (None: native)."""
    if engine == 'native':
        return mh.NativeEnsemble.from_seeds(seeds, 100), None
    ensemble = Ensemble.from_seeds(seeds, 100)
    return ensemble, mh.make_optimizer(ensemble)


# The numpy engine's Ensemble calls the BLAS with each replica's matrices
# as the single model does, so its claims hold per NumPy + BLAS stack; the
# native engine's arithmetic is its own, the same on every machine.
@pytest.fixture(scope='module', params=[
    pytest.param('numpy', marks=pytest.mark.per_stack),
    pytest.param('native', marks=[pytest.mark.exact, needs_native])])
def together(request):
    dataset = mh.make_sin_dataset()
    schedules = [mh.parse_schedule(t, s) for t in ('random', 'fixed:2+random')
                 for s in SEEDS[:2]]
    ensemble, optimizer = build(request.param, SEEDS)
    ensemble.engine = request.param
    result = mh.train(ensemble, optimizer, dataset, schedules, 4,
                      heldout=mh.core.data.make_heldout_dataset(200, 0))
    return dataset, schedules, ensemble, result


def test_replicas_start_from_their_seeds_weights():
    ensemble = Ensemble.from_seeds([3, 5], 8)
    for k, seed in enumerate([3, 5]):
        model = mh.make_model(8, seed)
        replica = ensemble.replica(k)
        for (name, a), (_, b) in zip(sorted(model.namedparams()),
                                     sorted(replica.namedparams())):
            numpy.testing.assert_array_equal(a.array, b.array, err_msg=name)


def reduction_bound(value, terms):
    """How far two float32 sums of the same ``terms`` squares, divided by
    ``terms``, can lie apart: each within ``gamma(terms + 2)`` of the exact
    mean (the sum in any order, the division rounded once or twice)."""
    g = bounds.gamma(terms + 2)
    return 2 * g / (1 - g) * numpy.abs(value)


# The native engine sums in its own order, so its replicas part from the
# single model's path after enough steps; what holds it to Chainer's path
# is tests/test_bounds.py (one step within the float32 error bound) and, for
# whole trajectories, tests/test_native.py (bit for bit against the port of
# its arithmetic, tests/native_reference.py).
@pytest.mark.per_stack
def test_numpy_ensemble_is_the_models_trained_one_by_one():
    # On one NumPy + BLAS stack each replica's products are the very BLAS
    # calls the single model makes (same shapes and strides), so the
    # weights follow the same path bit for bit.  The recorded losses are
    # reduced differently (the single model's BLAS dot, the replicas'
    # pairwise sum): the same squares summed in two orders, within the
    # bound of two such sums.
    dataset = mh.make_sin_dataset()
    heldout = mh.core.data.make_heldout_dataset(200, 0)
    schedules = [mh.parse_schedule(t, s) for t in ('random', 'fixed:2+random')
                 for s in SEEDS[:2]]
    ensemble, optimizer = build('numpy', SEEDS)
    result = mh.train(ensemble, optimizer, dataset, schedules, 4,
                      heldout=heldout)
    assert result.loss.shape == (4, 4)
    assert result.schedule == [str(s) for s in schedules]
    for k, (seed, schedule) in enumerate(zip(SEEDS, schedules)):
        model = mh.make_model(100, seed)
        single = mh.train(model, mh.make_optimizer(model), dataset, schedule,
                          4, heldout=heldout)
        for (name, a), (_, b) in zip(sorted(model.namedparams()),
                                     sorted(ensemble.replica(k)
                                            .namedparams())):
            numpy.testing.assert_array_equal(b.array, a.array, err_msg=name)
        for got, expected, terms in (
                (result.loss[:, k], single.loss, BATCH),
                (result.train_loss[:, k], single.train_loss, len(dataset)),
                (result.heldout_mse[k], single.heldout_mse, len(heldout))):
            assert (numpy.abs(got - expected) <=
                    reduction_bound(expected, terms)).all()


def test_a_replicas_result_does_not_depend_on_its_neighbours(together):
    dataset, schedules, ensemble, result = together
    alone, optimizer = build(ensemble.engine, [SEEDS[2]])
    single = mh.train(alone, optimizer, dataset, [schedules[2]], 4,
                      heldout=mh.core.data.make_heldout_dataset(200, 0))
    numpy.testing.assert_array_equal(single.loss[:, 0], result.loss[:, 2])
    numpy.testing.assert_array_equal(single.train_loss[:, 0],
                                     result.train_loss[:, 2])
    numpy.testing.assert_array_equal(single.heldout_mse[0],
                                     result.heldout_mse[2])


def test_ensemble_needs_one_schedule_per_replica():
    ensemble = Ensemble.from_seeds([0, 1], 4)
    with pytest.raises(ValueError, match='2 replicas needs one schedule per '
                       'replica, got 1'):
        mh.train(ensemble, mh.make_optimizer(ensemble),
                 mh.make_sin_dataset(100), [mh.Fixed()], 1)


def test_ensemble_rejects_mixed_widths():
    with pytest.raises(ValueError, match='same n_units'):
        Ensemble([mh.make_model(4, 0), mh.make_model(5, 0)])
    with pytest.raises(ValueError, match='at least one model'):
        Ensemble([])


def test_schedules_must_match_the_model_kind():
    ensemble = Ensemble.from_seeds([0, 1], 4)
    with pytest.raises(mh.SettingsError, match='a list of schedules .one per '
                       'replica. for an ensemble; got one Fixed for an '
                       'ensemble of 2'):
        mh.train(ensemble, mh.make_optimizer(ensemble),
                 mh.make_sin_dataset(100), mh.Fixed(), 1)
    model = mh.make_model(4, 0)
    with pytest.raises(mh.SettingsError, match='an ensemble of 1 replicas '
                       'needs one schedule per replica, got 2'):
        mh.train(model, mh.make_optimizer(model), mh.make_sin_dataset(100),
                 [mh.Fixed(), mh.Fixed()], 1)


@pytest.mark.exact
def test_one_model_is_an_ensemble_of_one():
    # One shape: a list of one schedule trains one model as K = 1 and
    # records (epochs, 1); one schedule gives the same numbers as scalars.
    dataset = mh.make_sin_dataset(100)
    runs = []
    for schedule in ([mh.Random(3)], mh.Random(3)):
        model = mh.make_model(4, 0)
        runs.append(mh.train(model, mh.make_optimizer(model), dataset,
                             schedule, 3, heldout=dataset))
    listed, single = runs
    assert listed.loss.shape == (3, 1) and single.loss.shape == (3,)
    assert listed.schedule == ['random'] and single.schedule == 'random'
    numpy.testing.assert_array_equal(listed.loss[:, 0], single.loss)
    numpy.testing.assert_array_equal(listed.train_loss[:, 0],
                                     single.train_loss)
    assert listed.heldout_mse.shape == (1,)
    assert float(listed.heldout_mse[0]) == single.heldout_mse
