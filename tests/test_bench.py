import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid import kernels
from minibatch_hybrid.experiments import bench
from _marks import needs_native


def _counted_flops(n_units, batchsize):
    """FLOP of one step counted from a real MyChain's parameters.

    Each Linear link with weights ``W`` of shape ``(out, in)`` makes
    ``B * in * out`` multiply-adds (2 FLOP each) in its forward product,
    as many in its weight gradient and, unless its input is the data
    (``l1``), as many in its input gradient; Adam makes about 10 FLOP per
    parameter.
    """
    model = mh.MyChain(n_units)
    macs = 0
    for name, link in sorted(model.namedlinks(skipself=True)):
        out_size, in_size = link.W.shape
        products = 2 if name == '/l1' else 3
        macs += products * batchsize * in_size * out_size
    params = sum(p.size for p in model.params())
    return 2 * macs + 10 * params


def test_flops_per_step_counts_the_products():
    # By hand, n = 1, B = 1: three 1 x 1 products forward (6 FLOP), three
    # weight gradients (6) and two input gradients (4); six parameters
    # (three weights, three biases) at 10 each (60): 76.
    assert _counted_flops(1, 1) == 76
    assert bench.flops_per_step(1, 1) == 76
    for n, b in [(100, 10), (7, 3), (33, 1), (2, 1000)]:
        assert bench.flops_per_step(n, b) == _counted_flops(n, b), (n, b)


def test_study_schedules_interleave_random_and_hybrid():
    assert bench.study_schedules(4, 10) == [
        (0, 'random'), (0, 'fixed:5+random:5'), (1, 'random'),
        (1, 'fixed:5+random:5')]


def _params(model):
    return [p.array.copy() for _, p in sorted(model.namedparams())]


STACKED = dict(zip(('W1', 'b1', 'W2', 'b2', 'W3', 'b3'),
                   ('l1/W', 'l1/b', 'l2/W', 'l2/b', 'l3/W', 'l3/b')))


def _chainer_state(model):
    """Weights and Adam's state of a Chainer model, by Chainer's names."""
    out = {}
    for name, p in model.namedparams():
        name = name.lstrip('/')
        rule = p.update_rule
        out[STACKED.get(name, name)] = (p.array, rule.state['m'],
                                        rule.state['v'], rule.t)
    return out


@pytest.fixture(scope='module')
def contenders():
    state = bench.LateState(4, warmup=3, n_units=100)
    contenders = bench._contenders(state, 4, [0, 1], window=1)
    return state, contenders, {name: setup() for name, (setup, _, _)
                               in contenders.items()}


@needs_native
@pytest.mark.exact
def test_every_contender_starts_from_the_same_late_state(contenders):
    # Before the timed window: every contender holds the late state's
    # weights and Adam state (copies: the same bits on every machine).
    state, contenders, work = contenders
    assert state.epoch == 3 and state.t == 300
    assert list(contenders)[:3] == ["post's loop", 'package loop',
                                    'numpy K=4']
    assert {name for name in contenders if name.startswith('native-')} == {
        'native-{} K=4'.format(k) for k in kernels.supported_kernels()}
    expected = {which: getattr(state, which) for which in ('params', 'm',
                                                           'v')}

    def same(got, replicas):
        for name, (p, m, v, t) in got.items():
            for which, a in (('params', p), ('m', m), ('v', v)):
                numpy.testing.assert_array_equal(
                    a, expected[which][name][replicas],
                    err_msg='{} {}'.format(which, name))
            assert t == state.t

    for name in ("post's loop", 'package loop'):
        for k, (model, _, _) in zip([0, 1], work[name]):
            same(_chainer_state(model), k)
    same(_chainer_state(work['numpy K=4'][0].link), slice(0, 4))
    for name in contenders:
        if name.startswith('native-'):
            ensemble = work[name][0]
            for which in ('params', 'm', 'v'):
                for link, a in ensemble.arrays(which).items():
                    numpy.testing.assert_array_equal(
                        a, expected[which][link][:4], err_msg=link)
            assert ensemble.t == state.t


@needs_native
@pytest.mark.per_stack
def test_the_contenders_train_the_same_window(contenders):
    # After the window: the package's loop is the post's, and the numpy
    # engine's replicas are those models, bit for bit on one NumPy + BLAS
    # stack (the same BLAS calls); every native kernel set gives the same
    # bits (exact).  How the engines' steps relate across arithmetics:
    # tests/test_bounds.py.
    state, contenders, work = contenders
    for name, (_, run, steps) in contenders.items():
        run(work[name])
        assert steps == (200 if name in ("post's loop", 'package loop')
                         else 400)
    for (post, _, _), (single, _, _) in zip(work["post's loop"],
                                            work['package loop']):
        for a, b in zip(_params(post), _params(single)):
            numpy.testing.assert_array_equal(a, b)
    ensemble = work['numpy K=4'][0]
    for k, (single, _, _) in enumerate(work['package loop']):
        for a, b in zip(_params(ensemble.replica(k)), _params(single)):
            numpy.testing.assert_array_equal(a, b)
    natives = [work[name][0] for name in contenders
               if name.startswith('native-')]
    for other in natives[1:]:
        numpy.testing.assert_array_equal(other.params, natives[0].params)
    assert all(e.t == state.t + 100 for e in natives)


@pytest.mark.slow
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
    # The late table's rows: each contender's median steps/s, its range, its
    # speed against the post's loop (the first row, so 1.0) and its share
    # of the best CPU peak (the FLOP it computes per second).
    late = result['workloads']['late']['speeds']
    base = late["post's loop"]['median']
    best = max(result['fma_peak_flops_per_s'].values(), default=0)
    rows = lines[2:2 + len(late)]
    assert rows[0].startswith("post's loop ")
    assert rows[0].split()[-2] == '1.0'
    for row, (name, s) in zip(rows, late.items()):
        *words, median, span, ratio, peak = row.split()
        assert ' '.join(words) == name
        assert abs(float(median.replace(',', '')) - s['median']) <= 0.5
        low, high = span.replace(',', '').split('-')
        assert abs(float(low) - s['min']) <= 0.5
        assert abs(float(high) - s['max']) <= 0.5
        # One decimal printed: within half of 0.1 (and a rounding error).
        assert float(ratio) == pytest.approx(s['median'] / base, abs=0.051)
        if best and not name.startswith('cupy'):
            share = 100 * s['median'] * result['flops_per_step'] / best
            assert float(peak.rstrip('%')) == pytest.approx(share, abs=0.051)
        else:
            assert peak == '-'
    assert lines[2 + len(late)] == ''
    assert lines[-1].startswith("CPU peak: c ")
    with pytest.raises(ValueError, match='warmup \\+ window <= 500'):
        bench.run_benchmark(warmup=499, window=2)
    with pytest.raises(ValueError, match='the benchmark at K = 100000000 '
                       'needs about'):
        bench.check_settings([10 ** 8], 300, 2, 5)


def test_without_the_kernels_the_benchmark_measures_fresh_weights(
        monkeypatch):
    monkeypatch.setattr(kernels, '_native', None)
    monkeypatch.setattr(kernels, '_IMPORT_ERROR', ImportError('not built'))
    lines = []
    result = bench.run_benchmark(replicas=[2], warmup=5, window=1, repeat=1,
                                 singles=1, log=lines.append)
    assert list(result['workloads']) == ['fresh']
    assert set(result['workloads']['fresh']['speeds']) == {
        "post's loop", 'package loop', 'numpy K=2'}
    assert 'not available here (not built)' in lines[0]
    assert bench.table(result)[0].startswith('fresh-weights workload')
