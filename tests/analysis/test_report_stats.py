"""The report's statistics on fixed numbers: Wilson intervals, exact McNemar, Student t, and the verdict wording."""

import math

import pytest

from libkd_keras.analysis.report import stats


def test_mcnemar_exact_p_on_known_counts():
    # Issue 35: 109 images only the distilled student got right, 77 only the baseline: p = 0.023.
    assert stats.mcnemar(109, 77) == pytest.approx(0.022768, abs=1e-6)
    assert stats.mcnemar(77, 109) == stats.mcnemar(109, 77)  # two-sided
    assert stats.mcnemar(5, 0) == pytest.approx(2 / 2**5)  # all 5 discordant images one way: 2 * (1/2)^5
    assert stats.mcnemar(3, 3) == 1.0 and stats.mcnemar(0, 0) == 1.0
    # Exact binomial, by hand: 2 * P(X <= 2) for X ~ Bin(10, 1/2) = 2 * (1 + 10 + 45) / 1024.
    assert stats.binomial_two_sided(2, 10) == pytest.approx(2 * 56 / 1024)
    assert stats.discordant([True, True, False, False, True], [True, False, True, False, False]) == (2, 1)
    with pytest.raises(ValueError, match="same images"):
        stats.discordant([True], [True, False])


def test_wilson_interval_on_known_values():
    low, high = stats.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # the textbook 0/10 upper bound
    assert stats.wilson_interval(480, 1000) == pytest.approx((0.4492, 0.5110), abs=1e-4)
    low, high = stats.wilson_interval(30, 40)
    assert (1 - high, 1 - low) == pytest.approx(stats.wilson_interval(10, 40))  # symmetric in right and wrong
    # Wilson's centre is pulled towards 1/2: (p + z²/2n) / (1 + z²/n).
    z2 = stats.Z**2
    assert (low + high) / 2 == pytest.approx((0.75 + z2 / 80) / (1 + z2 / 40))
    assert stats.wilson_interval(0, 0) is None and stats.accuracy_interval(0.5, None) is None
    assert stats.accuracy_interval(0.4825, 400) == stats.wilson_interval(193, 400)
    with pytest.raises(ValueError, match="correct"):
        stats.wilson_interval(11, 10)


@pytest.mark.parametrize(
    "df, quantile",  # two-sided 95% quantiles from a t table
    [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (9, 2.262), (29, 2.045), (100, 1.984)],
)
def test_t_quantile_matches_the_table(df, quantile):
    assert stats.t_quantile(df) == pytest.approx(quantile, abs=1e-3)


def test_t_quantile_refuses_non_integer_degrees_of_freedom():
    for df in (0, 2.5, -1):
        with pytest.raises(ValueError, match="degrees of freedom"):
            stats.t_quantile(df)


def test_t_interval_of_a_mean():
    mean, low, high = stats.t_interval([0.02, 0.03, 0.04])  # mean 0.03, std 0.01, 2 degrees of freedom
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert mean == pytest.approx(0.03) and (low, high) == pytest.approx((0.03 - half, 0.03 + half), abs=1e-7)
    assert stats.t_interval([0.02]) is None and stats.t_interval([0.02, None]) is None


def test_verdict_wording_follows_from_the_interval_or_the_test_alone():
    assert stats.verdict_from_interval((0.001, 0.02)) == "holds"
    assert stats.verdict_from_interval((-0.02, -0.001)) == "does not hold"
    assert stats.verdict_from_interval((-0.001, 0.02)) == "cannot tell at this n"
    assert stats.verdict_from_interval((0.0, 0.02)) == "cannot tell at this n"  # 0 inside: no difference possible
    assert stats.verdict_from_interval(None) == "cannot tell at this n"
    assert stats.verdict_from_test(0.023, +0.032) == "holds"
    assert stats.verdict_from_test(0.023, -0.032) == "does not hold"
    assert stats.verdict_from_test(0.06, +0.05) == "cannot tell at this n"  # a large gain, not significant
    assert stats.verdict_from_test(None, 0.05) == "cannot tell at this n"
    assert stats.VERDICTS == ("holds", "does not hold", "cannot tell at this n")
