"""collab.analysis.stats: intervals, tests, Holm's adjustment and seeds needed, with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from collab import analysis as A

# ---------------------------------------------------------------- bootstrap


def test_bootstrap_constant_values_zero_width():
    assert A.bootstrap_ci([5.0, 5.0, 5.0]) == (5.0, 5.0)


def test_bootstrap_one_value_undefined_and_deterministic():
    lo, hi = A.bootstrap_ci([3.0])
    assert math.isnan(lo) and math.isnan(hi)
    assert A.bootstrap_ci([1.0, 2.0, 4.0]) == A.bootstrap_ci([1.0, 2.0, 4.0])
    lo, hi = A.bootstrap_ci([1.0, 2.0, 4.0])
    assert 1.0 <= lo < 7 / 3 < hi <= 4.0


# ---------------------------------------------------------------- intervals, tests, Holm


def test_pair_spread_known_answers():
    # pairs of (0, 10, 20, 30): differences 10, 20, 30, 10, 20, 10 -> mean 100/6, over sqrt(2)
    assert A.pair_spread([0, 10, 20, 30]) == pytest.approx(100 / 6 / math.sqrt(2))
    assert A.pair_spread([3.0, 7.0]) == pytest.approx(np.std([3.0, 7.0], ddof=1))  # two values: their sd
    assert A.pair_spread([1.0, 1.0, 1.0]) == 0.0
    assert math.isnan(A.pair_spread([5.0]))


def test_t_interval_matches_scipy_and_degenerate_cases():
    x = [1.0, 2.0, 4.0, 7.0]
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    assert A.t_interval(x) == pytest.approx((ci.low, ci.high))
    assert A.mean_ci([5.0, 5.0]) == (5.0, 5.0)
    assert all(math.isnan(v) for v in A.mean_ci([5.0]))
    with pytest.raises(ValueError, match="method"):
        A.mean_ci(x, method="normal")


def test_ratio_test_fieller_known_answer_and_consistency():
    a, b = np.array([12.0, 14.0, 16.0]), np.array([9.0, 10.0, 11.0])
    r = A.ratio_test(a, b)
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3  # 4/3 and 1/3
    est = 14 / 10
    df = (va + est**2 * vb) ** 2 / (va**2 / 2 + est**4 * vb**2 / 2)
    q = stats.t.ppf(0.975, df)
    # Fieller: the roots of (14 - theta 10)^2 = q^2 (va + theta^2 vb)
    roots = np.sort(np.roots([100 - q**2 * vb, -280, 196 - q**2 * va]))
    assert (r.estimate, r.ci_low, r.ci_high, r.df) == pytest.approx((est, *roots, df))
    # the p-value of a bound is the test level, inside it is larger, outside smaller
    assert A.ratio_test(a, b, theta0=r.ci_low).p_value == pytest.approx(0.05)
    assert A.ratio_test(a, b, theta0=1.4).p_value == pytest.approx(1.0)
    assert A.ratio_test(a, b, theta0=r.ci_high * 1.01).p_value < 0.05
    # a baseline not clearly away from 0: the set is unbounded, the interval undefined
    assert math.isnan(A.ratio_test(a, np.array([-1.0, 0.5, 1.0])).ci_low)


def test_relative_gain_and_reduction_map_the_ratio():
    a, b = np.array([-80.0, -85.0, -78.0]), np.array([-100.0, -110.0, -95.0])
    g = A.relative_gain_test(a, b, target=0.15)  # negative rewards: gain = 1 - ratio
    r = A.ratio_test(a, b, theta0=0.85)
    assert (g.estimate, g.ci_low, g.ci_high, g.p_value) == pytest.approx(
        (1 - r.estimate, 1 - r.ci_high, 1 - r.ci_low, r.p_value)
    )
    assert g.estimate == pytest.approx((-81 + 305 / 3) / (305 / 3))
    red = A.reduction_test([200.0, 200.0], [500.0, 500.0], target=0.4)
    assert (red.estimate, red.ci_low, red.ci_high, red.p_value) == (0.6, 0.6, 0.6, 0.0)
    w = A.welch_test([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    ref = stats.ttest_ind([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0], equal_var=False)
    assert (w.p_value, w.df) == pytest.approx((ref.pvalue, ref.df))


def test_spread_reduction_bootstrap_and_f_interval():
    a, b = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    boot = A.sd_reduction_bootstrap(a, b, target=0.25, n_boot=2000)
    assert boot.estimate == pytest.approx(0.5) and boot.ci_low < 0.5 < boot.ci_high
    assert boot == A.sd_reduction_bootstrap(a, b, target=0.25, n_boot=2000)  # seeded
    f = A.sd_reduction_test(a, b, target=0.25)
    lo = 1 - 0.5 / math.sqrt(stats.f.ppf(0.025, 4, 4))
    assert f.estimate == pytest.approx(0.5) and f.ci_low == pytest.approx(lo)
    assert math.isnan(A.sd_reduction_bootstrap(a, [3.0, 3.0, 3.0]).ci_low)  # baseline without spread
    assert A.mad_reduction_test(a, b).estimate == pytest.approx(0.5)  # a scale factor of 2


def test_holm_known_answer():
    # m = 4 tests: 0.01 x 4, 0.03 x 3, 0.04 x 2 (raised to 0.09: monotone), 0.5 x 1
    got = A.holm([0.01, 0.04, math.nan, 0.03, 0.5])
    assert got[[0, 1, 3, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5]) and math.isnan(got[2])
    assert A.holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # capped at 1
    assert np.isnan(A.holm([math.nan])).all()


def test_seeds_needed():
    assert A.seeds_for_halfwidth(10.0, 5.0) == 18  # t(17) 10 / sqrt(18) = 4.97 <= 5 < t(16) 10 / sqrt(17)
    assert stats.t.ppf(0.975, 16) * 10 / math.sqrt(17) > 5
    assert A.seeds_for_halfwidth(0.0, 1.0) == 2
    # an interval that already excludes the target needs no more seeds; the estimate on it, infinitely many
    assert A.seeds_to_decide(0.5, 0.3, 0.7, 0.2, 5) == 5
    assert A.seeds_to_decide(0.2, 0.0, 0.4, 0.2, 5) == math.inf
    m = A.seeds_to_decide(0.1, -0.05, 0.25, 0.25, 5)  # half-width 0.15, gap 0.15: just not enough
    half = lambda k: stats.t.ppf(0.975, k - 1) * (0.15 / stats.t.ppf(0.975, 4) * math.sqrt(5)) / math.sqrt(k)  # noqa: E731
    assert half(m) < 0.15 <= half(m - 1)


# ---------------------------------------------------------------- coverage (benchmarks/coverage.py, small)


def test_coverage_t_beats_the_percentile_bootstrap_at_five_seeds(root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("coverage_bench", root / "benchmarks" / "coverage.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(7)
    rows = pd.DataFrame(bench.one_mean(300, 300, rng) + bench.relative_gain(200, 300, rng))
    cov = rows.set_index(["quantity", "method", "distribution", "n_seeds"])["coverage"]
    assert 0.91 <= cov["mean", "t", "normal", 5] <= 0.99
    for family in ("normal", "lognormal"):
        assert cov["mean", "t", family, 5] > cov["mean", "bootstrap percentile", family, 5] + 0.04
    assert cov["relative gain", "Fieller (Welch df)", "normal", 5] >= 0.91
    assert (
        cov["relative gain", "Fieller (Welch df)", "normal", 5]
        > cov["relative gain", "bootstrap percentile", "normal", 5]
    )
