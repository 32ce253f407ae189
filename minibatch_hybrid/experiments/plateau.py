"""The plateau: which function the stuck hybrids compute, and its loss.

A stuck hybrid's second hidden layer has no unit active beyond some x = c
(its coverage), so it fits sin(x) on [0, c] and a constant, the mean of
sin, on (c, 2π].  Continuity puts c at the root c* ≈ 3.95 of
``sin c = tail_mean(c)``, where the loss L* ≈ 0.03044 stands still in c:
a plateau.  ``docs/findings.md`` derives it and sets it beside the runs.
"""
import math

import numpy

from minibatch_hybrid.core.data import make_sin_dataset
from minibatch_hybrid.core.diagnosis import mychain_layers
from minibatch_hybrid.core.loop import train
from minibatch_hybrid.engines.native import NativeEnsemble
from minibatch_hybrid.schedules import parse_schedule

TWO_PI = 2 * math.pi


def tail_mean(c):
    """Returns the mean of sin over (c, 2π]."""
    return (math.cos(c) - 1) / (TWO_PI - c)


def plateau_boundary(tol=1e-13):
    """Returns c*, the root of ``sin c = tail_mean(c)`` in (π, 2π)."""
    def gap(c):
        return math.sin(c) - tail_mean(c)
    lo, hi = math.pi + 1e-9, 3 * math.pi / 2
    assert gap(lo) * gap(hi) < 0
    while hi - lo > tol:  # bisection: the sign changes once there
        mid = (lo + hi) / 2
        if gap(lo) * gap(mid) <= 0:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def plateau_loss(c=None, x=None):
    """Returns the loss of sin fitted exactly on [0, c] (by default c*)
    and by its best constant on (c, 2π]: the mean over the points ``x``
    if given, else the integral over [0, 2π]."""
    c = plateau_boundary() if c is None else c
    if x is None:
        m = tail_mean(c)
        # ∫ (sin x - m)^2 = ∫ sin^2 - 2 m ∫ sin + m^2 (2π - c)
        width = TWO_PI - c
        sin2 = width / 2 - (math.sin(2 * TWO_PI) - math.sin(2 * c)) / 4
        sin1 = math.cos(c) - 1
        return (sin2 - 2 * m * sin1 + m * m * width) / TWO_PI
    x = numpy.asarray(x, numpy.float64).reshape(-1)
    tail = numpy.sin(x[x > c])
    return float(((tail - tail.mean()) ** 2).sum() / len(x))


def coverage_history(seeds, schedule='fixed:250+random:250', epochs=None,
                     n_units=100):
    """Trains one schedule from each seed with the native engine; returns
    ``(ensemble, result, coverage)``: the coverage ``(epochs + 1, K, 2)``
    of both hidden layers before training and after each epoch."""
    dataset = make_sin_dataset()
    schedules = [parse_schedule(schedule, seed) for seed in seeds]
    epochs = schedules[0].epochs if epochs is None else epochs
    ensemble = NativeEnsemble.from_seeds(seeds, n_units)
    coverage = [ensemble.activity(dataset.x).coverage()]

    def record(entry):
        coverage.append(ensemble.activity(dataset.x).coverage())
    result = train(ensemble, None, dataset, schedules, epochs,
                   train_loss='last', callback=record)
    return ensemble, result, numpy.stack(coverage)


def replica_functions(engine, x):
    """Returns what each replica of an engine computes at ``x`` ``(N,)``:
    ``(K, N)`` float64."""
    return mychain_layers(engine.arrays('params'), x, numpy.float64)[2]
