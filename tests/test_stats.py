import numpy
import pytest

from minibatch_hybrid.experiments import stats


def test_plateau_flags_a_flat_high_tail_only():
    rng = numpy.random.default_rng(0)
    healthy = 10 ** rng.uniform(-4.5, -3.2, 500)  # jumps by factors
    stuck = numpy.concatenate([10 ** rng.uniform(-3, -1, 250),
                               0.0307 * (1 + 1e-3 * rng.standard_normal(250))])
    converged = numpy.full(500, 1e-5)  # flat but low: not stuck
    assert not stats.plateau(healthy)
    assert stats.plateau(stuck)
    assert not stats.plateau(converged)
    # The window is the last 20%: a plateau left before it does not count.
    recovered = numpy.concatenate([numpy.full(300, 0.03),
                                   10 ** rng.uniform(-4.5, -3.2, 200)])
    assert not stats.plateau(recovered)


def test_quartiles():
    assert stats.quartiles([1, 2, 3, 4, 5]) == (2.0, 3.0, 4.0)


def test_paired_counts_wins_and_ratio():
    a = numpy.array([1.0, 1.0, 1.0, 1.0])
    b = numpy.array([0.1, 0.5, 2.0, 0.25])
    result = stats.paired(a, b, numpy.random.default_rng(0), resamples=2000)
    assert result['b_wins'] == 0.75
    assert result['median_ratio'] == pytest.approx(numpy.median(a / b))
    low, high = result['ratio_ci']
    assert low <= result['median_ratio'] <= high
    assert low >= (a / b).min() and high <= (a / b).max()


def test_bootstrap_is_seeded_and_narrows_with_more_seeds():
    rng = numpy.random.default_rng(1)
    few = rng.lognormal(size=8)
    many = rng.lognormal(size=800)
    ci = stats.bootstrap_median_ci(few, numpy.random.default_rng(2))
    assert ci == stats.bootstrap_median_ci(few, numpy.random.default_rng(2))
    wide = ci[1] - ci[0]
    narrow = numpy.subtract(*stats.bootstrap_median_ci(
        many, numpy.random.default_rng(2))[::-1])
    assert narrow < wide


def test_paired_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match='equal-length'):
        stats.paired([1.0, 2.0], [1.0], numpy.random.default_rng(0))


def test_rate_interval_of_no_stuck_runs():
    # Was a doctest of stats.rate_interval.
    low, high = stats.rate_interval(0, 64)
    assert (low, round(high, 4)) == (0.0, 0.0566)
