"""Benchmark of the real workload: the study's ensembles in late training.

What users run is a study: K replicas, half in random order and half in
the post's hybrid order, for 500 epochs.  Late in training many ReLU units
are dead, their weights' gradients are exactly zero, and Adam's first
moment of those weights decays into the subnormal range, which costs Intel
CPUs a microcode assist per operand.  A benchmark from fresh weights sees
none of that, so this one times a *window* of a real run well past the
switch:

1. The study's replicas (seed ``k // 2``; ``random`` for even ``k``,
   ``fixed:E/2+random:E/2`` for odd ``k``) are trained by the native engine
   under IEEE semantics for ``warmup`` epochs (default 300 of 500, 50 past
   the switch), so the state holds what an IEEE run would hold,
   subnormals included.
2. Every contender starts from that state (weights, Adam's moments and
   step count) and trains the next ``window`` epochs in the schedules'
   orders: the post's loop (:mod:`~minibatch_hybrid.core.reference`, Chainer's
   Adam) and the package's loop on single replicas, the numpy engine's
   ensemble, and the native engine with each kernel set the CPU runs.
3. Contenders take turns, ``repeat`` rounds, so that drift of the machine
   touches all alike; each figure is the median over rounds, with the
   lowest and highest.

The same is measured from fresh weights (epoch 0), labelled as such.
Throughput is in model-steps per second: one step is one mini-batch update
of one model.
"""
import statistics
import time

import chainer
import numpy

from minibatch_hybrid import kernels
from minibatch_hybrid.core import reference
from minibatch_hybrid.core.adam import FusedAdam
from minibatch_hybrid.checks import check_memory
from minibatch_hybrid.core.data import make_sin_dataset
from minibatch_hybrid.core.device import get_device
from minibatch_hybrid.core.engine import ChainerEngine
from minibatch_hybrid.core.loop import train
from minibatch_hybrid.core.model import make_model
from minibatch_hybrid.core.model import n_params
from minibatch_hybrid.core.model import replica_model
from minibatch_hybrid.core.model import stack_models
from minibatch_hybrid.engines import make_ensemble
from minibatch_hybrid.errors import SettingsError
from minibatch_hybrid.kernels import threads
from minibatch_hybrid.schedules import Replay
from minibatch_hybrid.schedules import parse_schedule
from minibatch_hybrid.settings import Settings
from minibatch_hybrid.settings import default
from minibatch_hybrid.settings import default_schedules

#: Epochs of a run in the study (the post's); the hybrid switches at half.
EPOCHS = default('epochs')

#: The post's settings, the study's defaults: those of the replicas here.
_POST = Settings()


def flops_per_step(n_units=_POST.n_units, batchsize=_POST.batchsize):
    """Floating-point operations of one MyChain mini-batch step.

    Counts the matrix products (forward: ``2*B*n*(1 + n + 1)``; backward:
    the weight gradients of all three layers and the input gradients of the
    upper two, about twice that) and Adam (about 10 per parameter);
    elementwise work of the activations is left out.
    """
    n, b = n_units, batchsize
    forward = 2 * b * n * (1 + n + 1)
    backward = 2 * b * n * (1 + n + 1) + 2 * b * n * (n + 1)
    return forward + backward + 10 * n_params(n)


def fma_peak(kernel_set, seconds=0.3):
    """The CPU's float32 FMA rate with a kernel set, on all cores (FLOP/s).

    Independent chains of fused multiply-adds in registers, one thread per
    core: what no real kernel exceeds.
    """
    with kernels.using_kernels(kernel_set):
        native = kernels.module()
        rounds = 1 << 16
        while True:  # about `seconds` per thread
            start = time.perf_counter()
            native.fma_peak(rounds)
            if time.perf_counter() - start > seconds / 4:
                break
            rounds *= 2
        parts = threads.slices(threads.workers(), threads.workers())
        flops = [0] * len(parts)

        def work(part):
            flops[part.start] = native.fma_peak(rounds * 4)

        start = time.perf_counter()
        threads.run(work, parts)
        return sum(flops) / (time.perf_counter() - start)


def study_schedules(replicas, epochs=EPOCHS):
    """The study's runs, interleaved: ``(seed, schedule text)`` per replica
    (the study's default schedules, :func:`default_schedules`)."""
    texts = default_schedules(epochs)
    return [(k // 2, texts[k % 2]) for k in range(replicas)]


class LateState(object):
    """The replicas' state after ``warmup`` epochs of their real schedules.

    Attributes:
        params, m, v (dict): Chainer's parameter names to ``(K, ...)``
            arrays: weights and Adam's moments.
        t (int): Adam's step count.
        epoch (int): The next epoch to run.
        schedules (list): Each replica's schedule.

    """

    def __init__(self, replicas, warmup, n_units=_POST.n_units,
                 batchsize=_POST.batchsize):
        runs = study_schedules(replicas)
        self.schedules = [parse_schedule(text, seed) for seed, text in runs]
        self.dataset = make_sin_dataset(_POST.n_data)
        self.batchsize = batchsize
        self.epoch = warmup
        self.n_units = n_units
        if not warmup:  # fresh weights: no compiled kernels needed
            models = [make_model(n_units, seed) for seed, _ in runs]
            self.params = stack_models(models)
            self.m = {k: numpy.zeros_like(a) for k, a in self.params.items()}
            self.v = {k: numpy.zeros_like(a) for k, a in self.params.items()}
            self.t = 0
            return
        ensemble = make_ensemble(
            'native', [make_model(n_units, seed) for seed, _ in runs], None)
        size = len(self.dataset)
        with kernels.ieee_subnormals():
            for epoch in range(warmup):  # the first epochs of 500
                ensemble.train_epoch(
                    self.dataset.x, self.dataset.y,
                    [s.order(epoch, size) for s in self.schedules], batchsize)
        self.params = ensemble.arrays('params')
        self.m = ensemble.arrays('m')
        self.v = ensemble.arrays('v')
        self.t = ensemble.t

    def subnormal_fraction(self):
        """The share of Adam's first moments that are subnormal."""
        m = numpy.concatenate([a.ravel() for a in self.m.values()])
        tiny = numpy.finfo(numpy.float32).tiny
        return float(numpy.mean((m != 0) & (numpy.abs(m) < tiny)))

    def orders(self, k, window):
        """Replica ``k``'s orders of the window's epochs."""
        return [self.schedules[k].order(self.epoch + e, len(self.dataset))
                for e in range(window)]

    def model(self, k):
        """Replica ``k`` as a MyChain."""
        return replica_model(self.params, k)

    def load_into(self, engine, replicas):
        """Puts the replicas' weights and Adam state into an engine.

        ``replicas``: a slice (``k:k + 1`` for one model).
        """
        for which in ('params', 'm', 'v'):
            engine.load(which, {name: a[replicas] for name, a in
                                getattr(self, which).items()})
        engine.t = self.t
        return engine


def _contenders(state, replicas, singles, window, device='@numpy'):
    """Returns ``{name: (setup, run, model_steps)}`` for one window."""
    steps = window * -(-len(state.dataset) // state.batchsize)
    contenders = {}
    x64, y64 = reference.get_dataset(len(state.dataset))

    def post_setup():
        runs = []
        for k in singles:
            model = reference.MyChain(state.n_units)
            optimizer = chainer.optimizers.Adam()
            optimizer.setup(model)
            state.load_into(ChainerEngine(model, optimizer),
                            slice(k, k + 1))
            runs.append((model, optimizer, iter(state.orders(k, window))))
        return runs

    def post_run(runs):
        for model, optimizer, feed in runs:
            reference.normal_loop(model, optimizer, x64, y64, window,
                                  state.batchsize,
                                  lambda n, feed=feed: next(feed))

    contenders["post's loop"] = (post_setup, post_run, len(singles) * steps)

    def single_setup():
        runs = []
        for k in singles:
            model = state.model(k)
            optimizer = FusedAdam().setup(model)
            state.load_into(ChainerEngine(model, optimizer),
                            slice(k, k + 1))
            runs.append((model, optimizer, Replay(state.orders(k, window))))
        return runs

    def single_run(runs):
        for model, optimizer, schedule in runs:
            train(model, optimizer, state.dataset, schedule, window,
                  state.batchsize, train_loss='never')

    contenders['package loop'] = (single_setup, single_run,
                                  len(singles) * steps)

    def schedules():
        return [Replay(state.orders(k, window)) for k in range(replicas)]

    device = get_device(device)

    def numpy_setup():
        ensemble = make_ensemble('numpy', [state.model(k) for k in
                                           range(replicas)], device)
        return state.load_into(ensemble, slice(0, replicas)), schedules()

    def ensemble_run(run):
        ensemble, scheds = run
        train(ensemble, None, state.dataset, scheds, window,
              state.batchsize, train_loss='never')
        if device.xp is not numpy:  # wait for the GPU
            device.device.synchronize()

    engine = 'numpy' if device.xp is numpy else 'cupy'
    contenders['{} K={}'.format(engine, replicas)] = (
        numpy_setup, ensemble_run, replicas * steps)

    sets = kernels.supported_kernels() if kernels.available() else []
    for kernel_set in sets:
        def native_setup(kernel_set=kernel_set):
            ensemble = make_ensemble('native', [state.model(k) for k in
                                                range(replicas)], None)
            ensemble = state.load_into(ensemble, slice(0, replicas))
            return ensemble, kernel_set, schedules()

        def native_run(run):
            ensemble, kernel_set, scheds = run
            with kernels.using_kernels(kernel_set):
                train(ensemble, None, state.dataset, scheds, window,
                      state.batchsize, train_loss='never')

        contenders['native-{} K={}'.format(kernel_set, replicas)] = (
            native_setup, native_run, replicas * steps)
    return contenders


def measure(state, replicas, singles, window, repeat, device='@numpy',
            log=print):
    """Times each contender ``repeat`` times, taking turns.

    Returns:
        dict: contender to ``{'median', 'min', 'max'}`` model-steps/s.

    """
    contenders = _contenders(state, replicas, singles, window, device)
    speeds = {name: [] for name in contenders}
    for round_ in range(repeat + 1):  # round 0 warms caches up, untimed
        for name, (setup, run, steps) in contenders.items():
            work = setup()
            start = time.perf_counter()
            run(work)
            seconds = time.perf_counter() - start
            if round_:
                speeds[name].append(steps / seconds)
        if round_:
            log('round {}/{} done'.format(round_, repeat))
    return {name: {'median': statistics.median(v), 'min': min(v),
                   'max': max(v)} for name, v in speeds.items()}


def check_settings(replicas, warmup, window, repeat, singles=1,
                   settings=None):
    """Refuses settings the benchmark cannot run, before it starts.

    Args:
        replicas, warmup, window, repeat, singles: As
            :func:`run_benchmark`.
        settings (~minibatch_hybrid.settings.Settings): Those of the study
            whose runs are timed (default: the post's): the window must
            lie in its epochs, and the largest ensemble fit in memory
            (:meth:`~minibatch_hybrid.settings.Settings.memory`; each
            contender holds its replicas and the state they start from).

    """
    settings = Settings() if settings is None else settings
    if not 0 <= warmup or window < 1 or repeat < 1 or singles < 1 or \
            warmup + window > settings.epochs:
        raise SettingsError(
            'need warmup >= 0, window >= 1 and warmup + window <= {} (the '
            'study\'s epochs), repeat >= 1 and singles >= 1; got warmup={}, '
            'window={}, repeat={}, singles={}'.format(
                settings.epochs, warmup, window, repeat, singles))
    check_memory(settings.memory(replicas=max(replicas)),
                 'the benchmark at K = {}'.format(max(replicas)),
                 'use fewer --replicas')


def run_benchmark(replicas=(64, 128), warmup=300, window=2, repeat=5,
                  singles=2, device='@numpy', log=print):
    """Runs the whole benchmark; returns a JSON-ready dict.

    Args:
        replicas (list of int): Ensemble sizes (the study trains 64
            replicas at once: 32 seeds x 2 schedules).
        warmup (int): Epochs before the timed window (0: fresh weights
            only).
        window (int): Epochs timed per contender and round.
        repeat (int): Rounds.
        singles (int): Replicas the single-model loops train per round
            (one in random order, one hybrid).
        device: Where the numpy engine's ensemble runs (``'@cupy:0'``: the
            CuPy ensemble on a GPU); everything else runs on the CPU.
        log (callable): Takes one line of progress.

    Without the compiled kernels there is no native contender, and no
    late-training workload (the native engine prepares it).
    """
    check_settings(replicas, warmup, window, repeat, singles)
    if not kernels.available():
        log('the native engine is not available here ({}): fresh weights '
            'only, without it'.format(kernels.import_error() or 'no FMA'))
        warmup = 0
    largest = max(max(replicas), singles)
    result = {'flops_per_step': flops_per_step(), 'workloads': {},
              'warmup': warmup, 'window': window, 'repeat': repeat,
              'device': str(get_device(device)),
              'fma_peak_flops_per_s': {k: fma_peak(k) for k in
                                       kernels.supported_kernels()}}
    for label, epochs in (('late', warmup), ('fresh', 0)):
        if label == 'late' and not warmup:
            continue
        log('preparing {} replicas, {} epochs (IEEE) ...'.format(largest,
                                                                epochs))
        state = LateState(largest, epochs)
        entry = {'epoch': epochs,
                 'subnormal_m_fraction': state.subnormal_fraction(),
                 'speeds': {}}
        for k in replicas:
            log('measuring the {} workload at K = {} ...'.format(label, k))
            entry['speeds'].update(measure(
                state, k, list(range(singles)), window, repeat, device, log))
        result['workloads'][label] = entry
    return result


def table(result):
    """Returns the benchmark as lines of text, one table per workload."""
    lines = []
    best_peak = max(result['fma_peak_flops_per_s'].values(), default=0)
    for label, entry in result['workloads'].items():
        speeds = entry['speeds']
        base = speeds["post's loop"]['median']
        lines.append('{} workload: epochs {}-{} ({:.1%} of Adam\'s m '
                     'subnormal at the start)'.format(
                         'late-training' if label == 'late'
                         else 'fresh-weights',
                         entry['epoch'] + 1, entry['epoch'] + result['window'],
                         entry['subnormal_m_fraction']))
        lines.append('{:<20} {:>14} {:>19} {:>8} {:>8}'.format(
            'what', 'model-steps/s', 'min-max', 'x post', '% peak'))
        for name, s in speeds.items():
            rate = s['median'] * result['flops_per_step']
            peak = '{:7.1f}%'.format(100 * rate / best_peak) \
                if best_peak and not name.startswith('cupy') else '      -'
            lines.append('{:<20} {:>14,.0f} {:>19} {:>8.1f} {}'.format(
                name, s['median'], '{:,.0f}-{:,.0f}'.format(s['min'],
                                                           s['max']),
                s['median'] / base, peak))
        lines.append('')
    lines.append('CPU peak: {} (float32 FMA in registers, all cores); % '
                 'peak counts {:,} FLOP per step'.format(
                     ', '.join('{} {:.0f} GFLOP/s'.format(k, v / 1e9)
                               for k, v in
                               result['fma_peak_flops_per_s'].items()),
                     result['flops_per_step']))
    return lines
