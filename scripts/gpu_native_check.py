"""The native arithmetic on a GPU: its bits, and its speed (issue #15).

``bits``: a short, fixed study chunk (:data:`RUN`: 8 seeds x the study's
two schedules, ``'random'`` and the post's hybrid, 20 epochs, 100 units,
batches of 10, 1000 points) trained by
:class:`~minibatch_hybrid.engines.cuda.CudaEnsemble`; the SHA-256 digest
of its arrays (every epoch's loss sums, the weights and Adam's moments,
the final evaluations) must equal :data:`DIGEST`, the CPU's
(:class:`~minibatch_hybrid.engines.native.NativeEnsemble`, the same bits
on every CPU kernel set; ``tests/test_cuda_kernels.py`` checks that the
CPU still gives it).  Where the compiled CPU kernels are built, the same
run on the CPU is compared array by array too, and the first array and
index that differ are printed.

``speed``: CudaEnsemble's model-steps per second at several K (a warm-up
epoch untimed, then rounds of a few epochs, synchronised, the median),
with the time the CPU spends computing the schedules' orders measured
apart, and a study of 4,096 seeds (K = 8192, 500 epochs) projected from
a few epochs at K = 8192.

``--device @cupy:N`` runs on a GPU; ``--device host`` (or ``@numpy``) runs
CudaEnsemble with NumPy in CuPy's place and the kernels compiled for the
host (``scripts/cuda_host.py``): the same code and digest, without a GPU.
``--fallback-host`` (the rehearsal): if the GPU cannot be used, say why,
run on the host instead, and exit with 3.

    python scripts/gpu_native_check.py bits --device @cupy:0
    python scripts/gpu_native_check.py bits --device host
    python scripts/gpu_native_check.py speed --device @cupy:0
"""
import argparse
import atexit
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time

import numpy

from minibatch_hybrid._compat import chainer  # first
from minibatch_hybrid import kernels
from minibatch_hybrid.core.data import make_heldout_dataset
from minibatch_hybrid.core.data import make_sin_dataset
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.schedules import parse_schedule
from minibatch_hybrid.settings import default_schedules

#: The fixed run whose bits are checked.
RUN = dict(seeds=8, epochs=20, n_units=100, batchsize=10, n_data=1000,
           n_heldout=100)

#: The SHA-256 of :data:`RUN`'s arrays (:func:`digest`), computed on the
#: CPU by NativeEnsemble.
DIGEST = '01c0edb2fe45c8acf279d1353bda399dd929bfb3399e4343d98dec93b8a5fc12'

#: The exit status when the GPU was refused and the host ran instead.
FELL_BACK = 3


def chunk(seeds, epochs, n_units):
    """Returns a study chunk's replicas: ``(models, schedules)``, as
    :func:`~minibatch_hybrid.experiments.study.run.train_chunk` builds
    them (every schedule of the study, each from every seed)."""
    texts = default_schedules(epochs)
    models = [make_model(n_units, seed) for _ in texts for seed in seeds]
    schedules = [parse_schedule(text, seed)
                 for text in texts for seed in seeds]
    return models, schedules


def train_run(engine, schedules, dataset, heldout, epochs, batchsize):
    """Trains ``engine`` and returns its arrays, by name, in order.

    Returns:
        list: ``(name, numpy.ndarray)``: ``loss_sums`` ``(epochs, K)``
        float64, the final evaluations on the training set and on each
        replica's held-out set, then the weights, ``m`` and ``v`` per
        parameter (Chainer's names), and Adam's step count.

    """
    size = len(dataset)
    sums = []
    for epoch in range(epochs):
        orders = numpy.stack([numpy.asarray(s.order(epoch, size))
                              for s in schedules])
        sums.append(engine.train_epoch(dataset.x, dataset.y, orders,
                                       batchsize))
    arrays = [('loss_sums', numpy.stack(sums)),
              ('train_mse', engine.evaluate(dataset.x, dataset.y)),
              ('heldout_mse', engine.evaluate(heldout[0], heldout[1]))]
    for which in ('params', 'm', 'v'):
        for name, a in sorted(engine.arrays(which).items()):
            arrays.append(('{}:{}'.format(which, name), numpy.asarray(a)))
    arrays.append(('t', numpy.array([engine.t], numpy.int64)))
    return arrays


def digest(arrays):
    """Returns the SHA-256 (hex) of arrays: each one's name, dtype, shape
    and bytes (little-endian, C order), in order."""
    sha = hashlib.sha256()
    for name, a in arrays:
        a = numpy.ascontiguousarray(a)
        a = a.astype(a.dtype.newbyteorder('<'), copy=False)
        sha.update('{} {} {}\n'.format(name, a.dtype.str, a.shape).encode())
        sha.update(a.tobytes())
    return sha.hexdigest()


def first_difference(got, want):
    """Returns a line naming the first array and index where ``got`` and
    ``want`` (:func:`train_run`'s lists) differ in bits, or ``None``."""
    for (name, g), (_, w) in zip(got, want):
        if g.shape != w.shape or g.dtype != w.dtype:
            return '{}: {} {} against {} {}'.format(
                name, g.dtype, g.shape, w.dtype, w.shape)
        bits = g.view('u{}'.format(g.dtype.itemsize))
        diff = numpy.argwhere(bits != w.view(bits.dtype))
        if len(diff):
            index = tuple(int(i) for i in diff[0])
            return '{} [{}]: {!r} against {!r} ({} of {} differ)'.format(
                name, ', '.join(map(str, index)), g[index], w[index],
                len(diff), g.size)
    return None


def bits_run(make_engine, run=RUN):
    """Trains :data:`RUN` with ``make_engine(models)``; returns the arrays
    (:func:`train_run`)."""
    seeds = range(run['seeds'])
    models, schedules = chunk(seeds, run['epochs'], run['n_units'])
    dataset = make_sin_dataset(run['n_data'])
    sets = [make_heldout_dataset(run['n_heldout'], seed)
            for _ in range(2) for seed in seeds]
    heldout = (numpy.stack([h.x for h in sets]),
               numpy.stack([h.y for h in sets]))
    return train_run(make_engine(models), schedules, dataset, heldout,
                     run['epochs'], run['batchsize'])


def native_arrays():
    """Returns :data:`RUN`'s arrays trained by NativeEnsemble on the CPU
    (needs the compiled kernels)."""
    from minibatch_hybrid.engines.native import NativeEnsemble
    return bits_run(NativeEnsemble)


def _use_host(engine_module):
    """Makes CudaEnsemble run with NumPy and the host-compiled kernels."""
    import cuda_host  # scripts/, beside this file
    folder = tempfile.mkdtemp(prefix='gpu-native-host-')
    atexit.register(shutil.rmtree, folder, True)
    host = cuda_host.host_kernels(folder)
    engine_module._cupy = cuda_host.HostXp
    engine_module._gpu = lambda device: chainer.get_device('@numpy')
    engine_module._kernel = host.__getitem__


def cuda_factory(device, fallback):
    """Returns ``(make_engine, where, fell_back)`` for ``--device``:
    CudaEnsemble on a GPU, or on the host with NumPy."""
    from minibatch_hybrid.engines import cuda as engine
    host = device in ('host', '@numpy', '-1')
    fell_back = False
    if not host:
        gpu = int(device.split(':')[-1]) if ':' in device else int(device)
        try:
            probe = engine.CudaEnsemble([make_model(4, 0)], device=gpu)
            probe.evaluate(numpy.zeros((1, 1), numpy.float32),
                           numpy.zeros((1, 1), numpy.float32))
        except Exception as e:  # the reason is the point: say it, in full
            print('GPU: cannot use device {!r}: {}: {}'.format(
                device, type(e).__name__, str(e).splitlines()[0]
                if str(e) else ''), flush=True)
            if not fallback:
                raise SystemExit(1) from None
            print('GPU: running on the host instead (NumPy for CuPy, the '
                  'kernels compiled for the host)', flush=True)
            host = fell_back = True
    if host:
        _use_host(engine)

        def make(models):
            return engine.CudaEnsemble(models)
        return make, 'host', fell_back

    def make(models):
        return engine.CudaEnsemble(models, device=gpu)
    return make, 'GPU {}'.format(device), fell_back


def check_bits(args):
    """The ``bits`` command; returns the exit status."""
    make, where, fell_back = cuda_factory(args.device, args.fallback_host)
    t0 = time.perf_counter()
    got = bits_run(make)
    print('CudaEnsemble on {}: {} replicas x {} epochs in {:.1f} s'.format(
        where, 2 * RUN['seeds'], RUN['epochs'], time.perf_counter() - t0))
    mine = digest(got)
    print('digest {}: {}'.format(where, mine))
    print('digest constant: {}'.format(DIGEST))
    ok = mine == DIGEST
    if kernels.available():
        want = native_arrays()
        print('digest NativeEnsemble on this CPU: {}'.format(digest(want)))
        where_diff = first_difference(got, want)
        print('against NativeEnsemble on this CPU: {}'.format(
            'the same bits' if where_diff is None
            else 'first difference: ' + where_diff))
    else:
        print('against NativeEnsemble on this CPU: not compared (the '
              'compiled CPU kernels are not built here)')
    print('verdict: {} ({}; {})'.format(
        'same bits' if ok else 'DIFFERENT BITS', where,
        'the digest is the CPU\'s' if ok else 'the digest is not the '
        'CPU\'s'))
    if not ok:
        return 1
    return FELL_BACK if fell_back else 0


def _epoch(engine, schedules, dataset, epoch, batchsize, sync):
    """One epoch; returns ``(orders_s, train_s)``."""
    t0 = time.perf_counter()
    size = len(dataset)
    orders = numpy.stack([numpy.asarray(s.order(epoch, size))
                          for s in schedules])
    t1 = time.perf_counter()
    engine.train_epoch(dataset.x, dataset.y, orders, batchsize)
    sync()
    return t1 - t0, time.perf_counter() - t1


def speed_at(make, sync, k, epochs, repeat, at_epochs=None):
    """Times CudaEnsemble at ``k`` replicas (the study's runs, seed
    ``i // 2`` and schedule ``i % 2`` for replica ``i``, the weights of 32
    seeds repeated: building ``k`` Chainer models would cost minutes of
    CPU); returns a dict of figures."""
    t0 = time.perf_counter()
    base = [make_model(RUN['n_units'], seed) for seed in range(32)]
    models = [base[(i // 2) % 32] for i in range(k)]
    texts = default_schedules(500)
    schedules = [parse_schedule(texts[i % 2], i // 2) for i in range(k)]
    engine = make(models)
    dataset = make_sin_dataset(RUN['n_data'])
    batchsize = RUN['batchsize']
    steps = -(-len(dataset) // batchsize)
    _epoch(engine, schedules, dataset, 0, batchsize, sync)  # warm-up
    setup = time.perf_counter() - t0
    if at_epochs is None:
        at_epochs = list(range(epochs))
    rounds = []
    for _ in range(repeat):
        parts = [_epoch(engine, schedules, dataset, e, batchsize, sync)
                 for e in at_epochs]
        rounds.append((sum(p[0] for p in parts), sum(p[1] for p in parts)))
    total = statistics.median(o + t for o, t in rounds)
    orders = statistics.median(o for o, _ in rounds)
    n = len(at_epochs)
    row = {'replicas': k, 'epochs': at_epochs,
           'model_steps_per_s': k * steps * n / total,
           'kernel_model_steps_per_s':
               k * steps * n / statistics.median(t for _, t in rounds),
           'epoch_s': total / n, 'orders_s_per_epoch': orders / n,
           'orders_share': orders / total,
           'rounds': [{'orders_s': o, 'train_s': t} for o, t in rounds],
           'setup_and_warmup_s': setup,
           'total_s': time.perf_counter() - t0,
           'epochs_run': 1 + n * repeat}
    del engine
    return row


def study(args, make, sync, figures, fits):
    """Projects a 4,096-seed study (K = 8192, 500 epochs) from a few
    epochs, half early, half late (the hybrid's random half); records it
    in ``figures['study']``."""
    k = args.study_replicas
    half = max(args.study_epochs // 2, 1)
    at = list(range(half)) + list(range(500 - half, 500))
    if not fits(k, 1 + len(at)):
        figures['study'] = {'replicas': k, 'skipped': True}
        return
    row = speed_at(make, sync, k, None, 1, at_epochs=at)
    projected = row['epoch_s'] * 500
    limit = ('the CPU\'s orders' if row['orders_share'] > 0.5
             else 'the kernels on the {}'.format(figures['where']))
    figures['study'] = {
        'replicas': k, 'measured_epochs': at, 'epoch_s': row['epoch_s'],
        'orders_s_per_epoch': row['orders_s_per_epoch'],
        'orders_share': row['orders_share'], 'projected_s': projected,
        'limited_by': limit}
    print('study K={} x 500 epochs: projected {:.0f} s ({:.3f} s an '
          'epoch from {} epochs, orders on the CPU {:.0%} of it: limited '
          'by {})'.format(k, projected, row['epoch_s'], len(at),
                          row['orders_share'], limit), flush=True)


def check_speed(args):
    """The ``speed`` command; returns the exit status."""
    make, where, fell_back = cuda_factory(args.device, args.fallback_host)
    if where == 'host':
        def sync():
            pass
    else:
        import cupy

        def sync():
            cupy.cuda.Device().synchronize()
    started = time.perf_counter()
    figures = {'where': where, 'rows': [], 'study': None, 'skipped': []}

    def save():
        if args.json:  # after each K: a step cut short keeps what it had
            with open(args.json, 'w') as f:
                json.dump(figures, f, indent=1)

    def fits(k, epochs):
        # From the largest K timed so far, linear in K; setup included.
        rows = figures['rows']
        if not rows or args.budget is None:
            return True
        last = rows[-1]
        guess = (last['total_s'] / last['replicas'] / last['epochs_run'] *
                 k * epochs)
        left = args.budget - (time.perf_counter() - started)
        if guess > left:
            figures['skipped'].append(k)
            print('K={} skipped: about {:.0f} s, {:.0f} s left'.format(
                k, guess, left), flush=True)
            return False
        return True

    ks = sorted(int(k) for k in args.replicas.split(','))
    study_k = args.study_replicas
    for k in ks + [None]:
        if figures['study'] is None and (k is None or k > study_k):
            study(args, make, sync, figures, fits)
            save()
        if k is None or not fits(k, 1 + args.epochs * args.repeat):
            continue
        row = speed_at(make, sync, k, args.epochs, args.repeat)
        figures['rows'].append(row)
        print('K={} {:.3g} model-steps/s (median of {} rounds of {} '
              'epochs; kernel alone {:.3g}; orders on the CPU {:.3f} s of '
              'an epoch of {:.3f} s, {:.0%}; setup and warm-up {:.1f} s)'
              .format(k, row['model_steps_per_s'], args.repeat,
                      args.epochs, row['kernel_model_steps_per_s'],
                      row['orders_s_per_epoch'], row['epoch_s'],
                      row['orders_share'], row['setup_and_warmup_s']),
              flush=True)
        save()
    return FELL_BACK if fell_back else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=('bits', 'speed', 'digest'))
    parser.add_argument('--device', default='@cupy:0',
                        help="'@cupy:N', or 'host' (NumPy for CuPy)")
    parser.add_argument('--fallback-host', action='store_true',
                        help='if the GPU cannot be used, run on the host '
                        'and exit with 3 (the rehearsal)')
    parser.add_argument('--replicas', default='1024,4096,16384,65536')
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--study-replicas', type=int, default=8192)
    parser.add_argument('--study-epochs', type=int, default=6,
                        help='epochs measured for the projection, half '
                        'early, half late')
    parser.add_argument('--json', help='write the speed figures here')
    parser.add_argument('--budget', type=float,
                        help='seconds: a K that would not fit is skipped')
    args = parser.parse_args(argv)
    if args.command == 'digest':  # the constant, from the CPU
        print(digest(native_arrays()))
        return 0
    return (check_bits if args.command == 'bits' else check_speed)(args)


if __name__ == '__main__':
    sys.exit(main())
