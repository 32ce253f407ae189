"""Benchmark: the post's loop, the package's loop and the ensemble, side by side.

Everything is measured in one process, one after another, so the ratios are
comparable even where absolute times drift.  Throughput is in model-steps
per second: one step is one mini-batch update of one model.
"""
import importlib.util
import os
import statistics
import time

import numpy

from minibatch_hybrid import native
from minibatch_hybrid.adam import FusedAdam
from minibatch_hybrid.data import make_sin_dataset
from minibatch_hybrid.device import get_device
from minibatch_hybrid.ensemble import Ensemble
from minibatch_hybrid.model import make_model
from minibatch_hybrid.schedules import Random
from minibatch_hybrid.schedules import Replay
from minibatch_hybrid.training import train


def flops_per_step(n_units=100, batchsize=10):
    """Floating-point operations of one MyChain mini-batch step.

    Counts the matrix products (forward: ``2*B*n*(1 + n + 1)``; backward:
    the weight gradients of all three layers and the input gradients of the
    upper two, about twice that) and Adam (about 10 per parameter);
    elementwise work of the activations is left out.
    """
    n, b = n_units, batchsize
    forward = 2 * b * n * (1 + n + 1)
    backward = 2 * b * n * (1 + n + 1) + 2 * b * n * (n + 1)
    params = n + n + n * n + n + n + 1
    return forward + backward + 10 * params


def matmul_rate(xp, shape, repeat=5):
    """Measured FLOP/s of ``a @ w`` for ``a, w`` of shapes ``shape``.

    Args:
        xp: numpy or cupy.
        shape (tuple): ``(K, M, N, P)``: K products of ``(M, N) @ (N, P)``.

    """
    k, m, n, p = shape
    a = xp.ones((k, m, n), numpy.float32)
    w = xp.ones((k, n, p), numpy.float32)
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        for _ in range(10):
            c = a @ w
        float(c[0, 0, 0])  # synchronises a GPU
        times.append(time.perf_counter() - start)
    return 10 * 2 * k * m * n * p / min(times[1:])


def load_reference():
    """Imports the post's loop, ported, from the repository's tests."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                        'tests', 'blog_reference.py')
    if not os.path.exists(path):
        raise ValueError(
            'the benchmark compares against the post\'s loop in '
            'tests/blog_reference.py, which is not here ({}); run it from a '
            'checkout of the repository (pip install -e .)'.format(path))
    spec = importlib.util.spec_from_file_location('blog_reference', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _median_time(run, repeat):
    run()  # warm-up
    return statistics.median(_timed(run) for _ in range(repeat))


def _timed(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def bench_post_and_single(epochs=1, repeat=3, n_units=100, batchsize=10):
    """Times the post's loop and the package's loop on identical work.

    Returns:
        dict: steps/s of each, and whether their losses were bitwise equal.

    """
    import chainer
    blog = load_reference()
    x64, y64 = blog.get_dataset(1000)
    dataset = make_sin_dataset(1000)
    orders = [Random(0).order(e, 1000) for e in range(epochs)]
    steps = epochs * -(-1000 // batchsize)
    seed_model = make_model(n_units, seed=0)
    losses = {}

    def post():
        model = blog.MyChain(n_units)
        for (_, dst), (_, src) in zip(sorted(model.namedparams()),
                                      sorted(seed_model.namedparams())):
            dst.array[...] = src.array
        optimizer = chainer.optimizers.Adam()
        optimizer.setup(model)
        feed = iter(orders)
        losses['post'] = blog.normal_loop(
            model, optimizer, x64, y64, epochs, batchsize,
            lambda n: next(feed))

    def single():
        model = seed_model.copy(mode='copy')
        losses['single'] = train(model, FusedAdam().setup(model), dataset,
                                 Replay(orders), epochs, batchsize,
                                 train_loss='never').loss

    t_post = _median_time(post, repeat)
    t_single = _median_time(single, repeat)
    return {
        'post_steps_per_s': steps / t_post,
        'single_steps_per_s': steps / t_single,
        'single_bitwise_equal_to_post': bool(numpy.array_equal(
            numpy.asarray(losses['post'], numpy.float64), losses['single'])),
    }


def bench_ensemble(replicas, device='@numpy', steps=100, repeat=3,
                   n_units=100, batchsize=10, native=False):
    """Times the ensemble's loop; returns model-steps/s.

    ``native``: with the compiled kernels (:mod:`~minibatch_hybrid.native`).
    """
    device = get_device(device)
    dataset = make_sin_dataset(steps * batchsize)
    ensemble = Ensemble([make_model(n_units, seed=0)] * replicas, native)
    ensemble.to_device(device)
    optimizer = FusedAdam().setup(ensemble)
    schedules = [Random(k) for k in range(replicas)]

    def run():
        train(ensemble, optimizer, dataset, schedules, 1, batchsize,
              train_loss='never')

    return replicas * steps / _median_time(run, repeat)


def run_benchmark(replicas=(1, 16, 64, 128, 256, 1024), device='@numpy',
                  log=print):
    """Runs the whole benchmark; returns a JSON-ready dict.

    The ensemble is measured with each engine there is: NumPy's (or
    CuPy's) operations, and on the CPU the compiled kernels if they are
    built.  ``result['ensemble'][engine][K]`` is in model-steps/s.
    """
    device_obj = get_device(device)
    log('measuring the post\'s loop and the package\'s loop ...')
    result = bench_post_and_single()
    result['device'] = str(device_obj)
    result['flops_per_step'] = flops_per_step()
    # The machine's peak (one large product) bounds any implementation; the
    # rate of the ensemble's own small batched products shows how much of
    # it NumPy's batched matmul reaches.
    result['matmul_flops_per_s'] = matmul_rate(device_obj.xp,
                                               (1, 2048, 2048, 2048))
    result['batched_matmul_flops_per_s'] = matmul_rate(device_obj.xp,
                                                       (256, 10, 100, 100))
    result['compute_bound_steps_per_s'] = (result['matmul_flops_per_s'] /
                                           result['flops_per_step'])
    engines = ['numpy']  # on a GPU: CuPy's operations
    if device_obj.xp is numpy:
        if native.available():
            engines.append('native')
        else:
            log('the compiled kernels are not built: {}'.format(
                native._IMPORT_ERROR))
    result['ensemble'] = {}
    for engine in engines:
        name = native.resolve_engine(engine, device_obj)
        result['ensemble'][name] = speeds = {}
        for k in replicas:
            log('measuring the ensemble ({}) at K = {} ...'.format(name, k))
            speeds[k] = bench_ensemble(k, device, native=engine == 'native')
    return result


def table(result):
    """Returns the benchmark as lines of a table."""
    base = result['post_steps_per_s']
    bound = result['compute_bound_steps_per_s']
    rows = [('post\'s loop', base), ('package loop', result['single_steps_per_s'])]
    rows += [('{} K={}'.format(engine, k), v)
             for engine, speeds in result['ensemble'].items()
             for k, v in speeds.items()]
    lines = ['{:<20} {:>16} {:>10} {:>14}'.format(
        'what', 'model-steps/s', 'x post', '% of bound')]
    for name, value in rows:
        lines.append('{:<20} {:>16,.0f} {:>10.2f} {:>13.1f}%'.format(
            name, value, value / base, 100 * value / bound))
    lines.append('compute bound {:,.0f} model-steps/s: {:,} FLOP per step at '
                 '{:.1f} GFLOP/s (peak matmul; the ensemble\'s 10x100x100 '
                 'batched products reach {:.1f})'.format(
                     bound, result['flops_per_step'],
                     result['matmul_flops_per_s'] / 1e9,
                     result['batched_matmul_flops_per_s'] / 1e9))
    lines.append('package loop bitwise equal to the post\'s: {}'.format(
        result['single_bitwise_equal_to_post']))
    return lines
