import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid.ensemble import Ensemble

SEEDS = [0, 1, 2, 3]


# The numpy engine's Ensemble and, where it runs, the native engine's.
ENGINES = ['numpy'] + (['native'] if mh.native.available() else [])


def build(engine, seeds):
    """Returns an ensemble of the engine and its optimizer (None: native)."""
    if engine == 'native':
        return mh.native.NativeEnsemble.from_seeds(seeds, 100), None
    ensemble = Ensemble.from_seeds(seeds, 100)
    return ensemble, mh.make_optimizer(ensemble)


@pytest.fixture(scope='module', params=ENGINES)
def together(request):
    dataset = mh.make_sin_dataset()
    schedules = [mh.parse_schedule(t, s) for t in ('random', 'fixed:2+random')
                 for s in SEEDS[:2]]
    ensemble, optimizer = build(request.param, SEEDS)
    ensemble.engine = request.param
    result = mh.train(ensemble, optimizer, dataset, schedules, 4,
                      heldout=mh.data.make_heldout_dataset(200, 0))
    return dataset, schedules, ensemble, result


def test_replicas_start_from_their_seeds_weights():
    ensemble = Ensemble.from_seeds([3, 5], 8)
    for k, seed in enumerate([3, 5]):
        model = mh.make_model(8, seed)
        replica = ensemble.replica(k)
        for (name, a), (_, b) in zip(sorted(model.namedparams()),
                                     sorted(replica.namedparams())):
            numpy.testing.assert_array_equal(a.array, b.array, err_msg=name)


def deviation(a, b):
    return float(numpy.max(numpy.abs(numpy.asarray(a) / b - 1)))


def test_ensemble_equals_models_trained_one_by_one(together):
    dataset, schedules, ensemble, result = together
    assert result.loss.shape == (4, 4)
    assert result.schedule == [str(s) for s in schedules]
    for k, (seed, schedule) in enumerate(zip(SEEDS, schedules)):
        model = mh.make_model(100, seed)
        single = mh.train(model, mh.make_optimizer(model), dataset, schedule,
                          4, heldout=mh.data.make_heldout_dataset(200, 0))
        if ensemble.engine == 'numpy':
            # NumPy's batched products: the single model's numbers.
            numpy.testing.assert_allclose(result.loss[:, k], single.loss,
                                          rtol=1e-5)
            numpy.testing.assert_allclose(result.train_loss[:, k],
                                          single.train_loss, rtol=1e-5)
            numpy.testing.assert_allclose(result.heldout_mse[k],
                                          single.heldout_mse, rtol=1e-5)
            trained = ensemble.replica(k)
            numpy.testing.assert_allclose(trained.l2.W.array,
                                          model.l2.W.array, rtol=1e-4,
                                          atol=1e-6)
            continue
        # The native engine sums in another order. Training amplifies
        # rounding differences (fixed order most), so the yardstick is the
        # single model itself with its l2.W moved by one float32 ulp.
        nudged = mh.make_model(100, seed)
        w = nudged.l2.W.array
        w[...] = numpy.nextafter(w, numpy.float32(numpy.inf))
        yardstick = mh.train(nudged, mh.make_optimizer(nudged), dataset,
                             schedule, 4,
                             heldout=mh.data.make_heldout_dataset(200, 0))
        assert deviation(result.loss[:, k], single.loss) <= \
            10 * deviation(yardstick.loss, single.loss) + 1e-6
        assert deviation(result.heldout_mse[k], single.heldout_mse) <= \
            10 * deviation(yardstick.heldout_mse, single.heldout_mse) + 1e-6


def test_a_replicas_result_does_not_depend_on_its_neighbours(together):
    dataset, schedules, ensemble, result = together
    alone, optimizer = build(ensemble.engine, [SEEDS[2]])
    single = mh.train(alone, optimizer, dataset, [schedules[2]], 4)
    numpy.testing.assert_array_equal(single.loss[:, 0], result.loss[:, 2])


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
    with pytest.raises(ValueError, match='a list of schedules .one per '
                       'replica. for an Ensemble; got Fixed for a Ensemble'):
        mh.train(ensemble, mh.make_optimizer(ensemble),
                 mh.make_sin_dataset(100), mh.Fixed(), 1)
    model = mh.make_model(4, 0)
    with pytest.raises(ValueError, match='got list for a MyChain'):
        mh.train(model, mh.make_optimizer(model), mh.make_sin_dataset(100),
                 [mh.Fixed()], 1)
