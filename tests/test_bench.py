import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid import bench

needs_native = pytest.mark.skipif(not mh.native.available(),
                                  reason='the native engine is not built')


def test_flops_per_step_counts_the_products():
    # forward 2*B*n*(n+2), backward twice the weight products plus the
    # input gradients of the upper two layers, Adam 10 per parameter.
    n, b = 100, 10
    params = 3 * n + n * n + n + 1
    assert bench.flops_per_step(n, b) == (2 * b * n * (n + 2) * 2 +
                                          2 * b * n * (n + 1) + 10 * params)


def test_study_schedules_interleave_random_and_hybrid():
    assert bench.study_schedules(4, 10) == [
        (0, 'random'), (0, 'fixed:5+random:5'), (1, 'random'),
        (1, 'fixed:5+random:5')]


def _params(model):
    return [p.array.copy() for _, p in sorted(model.namedparams())]


@needs_native
def test_every_contender_starts_from_the_same_late_state():
    state = bench.LateState(4, warmup=3, n_units=100)
    assert state.epoch == 3 and state.t == 300
    contenders = bench._contenders(state, 4, [0, 1], window=1)
    assert list(contenders)[:3] == ["post's loop", 'package loop',
                                    'numpy K=4']
    work = {}
    for name, (setup, run, steps) in contenders.items():
        work[name] = setup()
        run(work[name])
        assert steps == (200 if name in ("post's loop", 'package loop')
                         else 400)
    # From the same weights and Adam state, the package's loop is the
    # post's, bit for bit ...
    for (post, _, _), (single, _, _) in zip(work["post's loop"],
                                            work['package loop']):
        for a, b in zip(_params(post), _params(single)):
            numpy.testing.assert_array_equal(a, b)
    # ... the numpy engine's ensemble is those models, to rounding, and the
    # native engine agrees with it to rounding.
    ensemble = work['numpy K=4'][0]
    for k, (single, _, _) in enumerate(work['package loop']):
        numpy.testing.assert_allclose(ensemble.replica(k).l2.W.array,
                                      single.l2.W.array, rtol=1e-4,
                                      atol=1e-6)
    for name in contenders:
        if name.startswith('native'):
            native_ensemble = work[name][0]
            numpy.testing.assert_allclose(
                native_ensemble.arrays()['l2/W'],
                ensemble.W2.array, rtol=1e-3, atol=1e-5)
            assert native_ensemble.t == state.t + 100


@needs_native
def test_benchmark_runs_and_tabulates():
    result = bench.run_benchmark(replicas=[2], warmup=2, window=1, repeat=1,
                                 singles=1, log=lambda line: None)
    assert set(result['workloads']) == {'late', 'fresh'}
    for entry in result['workloads'].values():
        speeds = entry['speeds']
        assert {"post's loop", 'package loop', 'numpy K=2'} <= set(speeds)
        assert all(s['min'] <= s['median'] <= s['max'] and s['min'] > 0
                   for s in speeds.values())
    lines = bench.table(result)
    assert lines[0].startswith('late-training workload: epochs 3-3 (')
    assert lines[2].split()[-2:] == ['1.0', lines[2].split()[-1]]
    assert lines[-1].startswith("CPU peak: c ")
    with pytest.raises(ValueError, match='warmup \\+ window <= 500'):
        bench.run_benchmark(warmup=499, window=2)
    with pytest.raises(ValueError, match='the benchmark at K = 100000000 '
                       'needs about'):
        bench.check_settings([10 ** 8], 300, 2, 5)


def test_without_the_kernels_the_benchmark_measures_fresh_weights(
        monkeypatch):
    monkeypatch.setattr(mh.native, '_native', None)
    monkeypatch.setattr(mh.native, '_IMPORT_ERROR', ImportError('not built'))
    lines = []
    result = bench.run_benchmark(replicas=[2], warmup=5, window=1, repeat=1,
                                 singles=1, log=lines.append)
    assert list(result['workloads']) == ['fresh']
    assert set(result['workloads']['fresh']['speeds']) == {
        "post's loop", 'package loop', 'numpy K=2'}
    assert 'not available here (not built)' in lines[0]
    assert bench.table(result)[0].startswith('fresh-weights workload')
