"""Statistics of a study: quartiles, paired comparisons, plateaus."""
import math

import numpy

from minibatch_hybrid.errors import SettingsError

#: A run ended on a plateau when, over its last PLATEAU_FRACTION of epochs
#: (at least PLATEAU_MIN_EPOCHS), its loss stayed within a factor
#: PLATEAU_FLATNESS and above PLATEAU_LOSS (see docs/findings.md).
PLATEAU_FRACTION = 0.2
PLATEAU_MIN_EPOCHS = 5
PLATEAU_FLATNESS = 1.05
PLATEAU_LOSS = 1e-3


def plateau(curve):
    """Tells whether a run (its per-epoch loss) ended stuck on a plateau."""
    curve = numpy.asarray(curve, numpy.float64)
    window = max(PLATEAU_MIN_EPOCHS, int(round(PLATEAU_FRACTION * len(curve))))
    tail = curve[-window:]
    return bool(tail.min() > PLATEAU_LOSS and
                tail.max() <= PLATEAU_FLATNESS * tail.min())


def quartiles(values):
    """Returns ``(q25, median, q75)`` of the values."""
    q = numpy.percentile(numpy.asarray(values, numpy.float64), [25, 50, 75])
    return float(q[0]), float(q[1]), float(q[2])


def bootstrap_median_ci(values, rng, resamples=10000, level=0.95):
    """Returns ``(low, high)``: a percentile bootstrap interval of the
    median, drawn from ``rng`` (a :class:`numpy.random.Generator`)."""
    values = numpy.asarray(values, numpy.float64)
    index = rng.integers(0, len(values), (resamples, len(values)))
    medians = numpy.median(values[index], axis=1)
    tail = 100 * (1 - level) / 2
    low, high = numpy.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def paired(a, b, rng, resamples=10000):
    """Compares two schedules' final losses seed by seed.

    Args:
        a, b (array): Final losses, one per seed, the same seeds in the
            same order.
        rng (numpy.random.Generator): For the bootstrap.

    Returns:
        dict: ``b_wins`` (the fraction of seeds where ``b`` ended lower),
        ``median_ratio`` (the median of ``a / b``) and its bootstrap 95%
        interval ``ratio_ci``.

    """
    a = numpy.asarray(a, numpy.float64)
    b = numpy.asarray(b, numpy.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise SettingsError('a paired comparison needs two equal-length, '
                            'non-empty 1-D arrays')
    ratio = a / b
    return {
        'b_wins': float(numpy.mean(b < a)),
        'median_ratio': float(numpy.median(ratio)),
        'ratio_ci': list(bootstrap_median_ci(ratio, rng, resamples)),
    }


def rate_interval(k, n, z=1.959963984540054):
    """Returns the Wilson score interval of a rate ``k / n`` (95% by
    default) as ``(low, high)``: sound near 0, where the normal
    approximation is not."""
    if n <= 0:
        raise ValueError('a rate needs n > 0, got {}'.format(n))
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # The ends are exact where the rate is: 0 at k = 0, 1 at k = n.
    return (0.0 if k == 0 else max(0.0, centre - half),
            1.0 if k == n else min(1.0, centre + half))


def freed(base, base_stuck, other, other_stuck):
    """Compares runs with a remedy (``other``) to the same runs without it
    (``base``), seed by seed.

    Returns:
        dict: ``stuck`` (runs stuck without it), ``freed`` (of those, not
        stuck with it), ``healthy`` (the rest), ``made_stuck`` (of those,
        stuck with it), ``healthy_higher`` (of those, ending higher with
        it) and ``median_ratio_healthy`` (the median of ``base / other``
        over the healthy runs; NaN without any).

    """
    base, other = numpy.asarray(base), numpy.asarray(other)
    base_stuck = numpy.asarray(base_stuck, bool)
    other_stuck = numpy.asarray(other_stuck, bool)
    healthy = ~base_stuck
    ratio = base[healthy] / other[healthy]
    return {'stuck': int(base_stuck.sum()),
            'freed': int((base_stuck & ~other_stuck).sum()),
            'healthy': int(healthy.sum()),
            'made_stuck': int((healthy & other_stuck).sum()),
            'healthy_higher': int((other[healthy] > base[healthy]).sum()),
            'median_ratio_healthy': float(numpy.median(ratio))
            if len(ratio) else float('nan')}
