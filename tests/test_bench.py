import numpy
import pytest

import minibatch_hybrid as mh
from minibatch_hybrid import bench


def test_flops_per_step_counts_the_products():
    # forward 2*B*n*(n+2), backward twice the weight products plus the
    # input gradients of the upper two layers, Adam 10 per parameter.
    n, b = 100, 10
    params = 3 * n + n * n + n + 1
    assert bench.flops_per_step(n, b) == (2 * b * n * (n + 2) * 2 +
                                          2 * b * n * (n + 1) + 10 * params)


def test_single_loop_is_bitwise_the_posts_in_the_benchmark():
    result = bench.bench_post_and_single(epochs=1, repeat=1, n_units=16)
    assert result['single_bitwise_equal_to_post'] is True
    assert result['post_steps_per_s'] > 0 and result['single_steps_per_s'] > 0


@pytest.mark.parametrize('native', [False, True] if mh.native.available()
                         else [False])
def test_ensemble_bench_and_table(native):
    speed = bench.bench_ensemble(4, steps=5, repeat=1, n_units=8,
                                 native=native)
    assert speed > 0
    result = {'post_steps_per_s': 100.0, 'single_steps_per_s': 250.0,
              'ensemble': {'numpy': {4: speed}, 'native-avx2': {8: 1e4}},
              'compute_bound_steps_per_s': 1e6,
              'flops_per_step': 1000, 'matmul_flops_per_s': 1e9,
              'batched_matmul_flops_per_s': 5e8,
              'single_bitwise_equal_to_post': True}
    lines = bench.table(result)
    assert lines[2].split()[-3:] == ['250', '2.50', '0.0%']
    assert lines[3].startswith('numpy K=4 ')
    assert lines[4].split() == ['native-avx2', 'K=8', '10,000', '100.00',
                                '1.0%']
    assert numpy.isfinite(bench.matmul_rate(numpy, (2, 4, 4, 4), repeat=1))
