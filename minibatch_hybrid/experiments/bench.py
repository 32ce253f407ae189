"""Benchmark of the real workload: the study's ensembles in late training
(subnormal Adam moments and all), and from fresh weights, in model-steps
(mini-batch updates of one model) per second: ``docs/performance.md``.
"""
import contextlib
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
#: The post's settings, those of the replicas here.
_POST = Settings()


def flops_per_step(n_units=_POST.n_units, batchsize=_POST.batchsize):
    """FLOP of one MyChain step: the products, forward and backward, and
    Adam's (about 10 per parameter)."""
    n, b = n_units, batchsize
    forward = 2 * b * n * (1 + n + 1)
    backward = 2 * b * n * (1 + n + 1) + 2 * b * n * (n + 1)
    return forward + backward + 10 * n_params(n)


def fma_peak(kernel_set, seconds=0.3):
    """The float32 FMA rate of a kernel set on all cores (FLOP/s)."""
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
    """The study's runs, interleaved: ``(seed, schedule text)`` per
    replica."""
    texts = default_schedules(epochs)
    return [(k // 2, texts[k % 2]) for k in range(replicas)]


class LateState(object):
    """The replicas' state after ``warmup`` epochs of their schedules
    (IEEE semantics): ``params``, ``m``, ``v`` (Chainer's names to
    ``(K, ...)`` arrays), Adam's step count ``t``, the next ``epoch``."""

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
            for epoch in range(warmup):
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
        """Loads the ``replicas`` (a slice) into an engine; returns it."""
        for which in ('params', 'm', 'v'):
            engine.load(which, {name: a[replicas] for name, a in
                                getattr(self, which).items()})
        engine.t = self.t
        return engine


def _contenders(state, replicas, singles, window, device='@numpy'):
    """Returns ``{name: (setup, run, model_steps)}`` for one window."""
    steps = window * -(-len(state.dataset) // state.batchsize)
    x64, y64 = reference.get_dataset(len(state.dataset))
    device = get_device(device)

    def post_chain(k):
        model = reference.MyChain(state.n_units)
        optimizer = chainer.optimizers.Adam()
        optimizer.setup(model)
        return model, optimizer

    def package_chain(k):
        model = state.model(k)
        return model, FusedAdam().setup(model)

    def singles_setup(chain, feed):
        def setup():
            runs = []
            for k in singles:
                model, optimizer = chain(k)
                state.load_into(ChainerEngine(model, optimizer),
                                slice(k, k + 1))
                runs.append((model, optimizer, feed(state.orders(k, window))))
            return runs
        return setup

    def post_run(runs):
        for model, optimizer, feed in runs:
            reference.normal_loop(model, optimizer, x64, y64, window,
                                  state.batchsize,
                                  lambda n, feed=feed: next(feed))

    def package_run(runs):
        for model, optimizer, schedule in runs:
            train(model, optimizer, state.dataset, schedule, window,
                  state.batchsize, train_loss='never')

    def ensemble_setup(engine, on, kernel_set=None):
        def setup():
            ensemble = make_ensemble(
                engine, [state.model(k) for k in range(replicas)], on)
            return (state.load_into(ensemble, slice(0, replicas)),
                    [Replay(state.orders(k, window))
                     for k in range(replicas)], kernel_set)
        return setup

    def ensemble_run(work):
        ensemble, schedules, kernel_set = work
        with kernels.using_kernels(kernel_set) if kernel_set else \
                contextlib.nullcontext():
            train(ensemble, None, state.dataset, schedules, window,
                  state.batchsize, train_loss='never')
        if not kernel_set and device.xp is not numpy:  # wait for the GPU
            device.device.synchronize()

    numpy_name = '{} K={}'.format(
        'numpy' if device.xp is numpy else 'cupy', replicas)
    contenders = {
        "post's loop": (singles_setup(post_chain, iter), post_run,
                        len(singles) * steps),
        'package loop': (singles_setup(package_chain, Replay), package_run,
                         len(singles) * steps),
        numpy_name: (ensemble_setup('numpy', device), ensemble_run,
                     replicas * steps)}
    for kernel_set in (kernels.supported_kernels() if kernels.available()
                       else []):
        contenders['native-{} K={}'.format(kernel_set, replicas)] = (
            ensemble_setup('native', None, kernel_set), ensemble_run,
            replicas * steps)
    return contenders


def measure(state, replicas, singles, window, repeat, device='@numpy',
            log=print):
    """Times the contenders in turns; returns ``{contender: {'median',
    'min', 'max'}}`` model-steps/s."""
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
    """Refuses settings the benchmark cannot run: the window must lie in
    the study's epochs (``settings``: the post's), the ensembles fit."""
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

    ``replicas`` are the ensemble sizes, ``warmup`` the epochs before the
    timed ``window`` (0, or no compiled kernels: fresh weights only),
    ``singles`` the replicas of the single-model loops, ``device`` the
    numpy engine's (the rest runs on the CPU).
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
