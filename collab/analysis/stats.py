"""Intervals and tests over seeds, chosen by their measured coverage, and Holm's correction.

The resampling or sampling unit is always a seed (one whole run). The methods, and the coverage
each has at 5 and 10 seeds (``benchmarks/coverage.py``; ``docs/analysis.md``):

- one mean (Table 1, learning curves, convergence): the t-interval (:func:`mean_ci`, default);
  scipy's percentile and BCa bootstraps are available for comparison;
- the ratio of two independent means (the claims' relative gains and reductions): Fieller's interval
  with a Welch-Satterthwaite df (:func:`ratio_test`), which also gives the p-value of any value of
  the ratio, consistent with the interval;
- "a scores higher than b": Welch's t-test and interval of the difference (:func:`welch_test`);
- the ratio of two standard deviations (spread between seeds): the percentile bootstrap
  (:func:`sd_reduction_bootstrap`); the F interval (:func:`sd_ratio_test`, exact only for normal
  values) and a robust Fieller interval on absolute deviations (:func:`mad_reduction_test`) are kept
  for comparison;
- many cells at once: Holm's step-down adjustment (:func:`holm`); the seeds a decision or a precision
  would take (:func:`seeds_to_decide`, :func:`seeds_for_halfwidth`);
- what a comparison excludes: the verdict of a difference's interval against an equivalence margin
  (:func:`margin_verdict`), the two one-sided tests' p-value (:func:`tost`), and the seeds that give
  a test 80% power against a difference of the margin (:func:`seeds_for_power`).

Bootstraps go through ``scipy.stats.bootstrap`` with a fixed generator seed, so every number is
identical from run to run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

#: Two-sided confidence level of every interval, and the per-cell test level 1 - CONFIDENCE.
CONFIDENCE = 0.95
#: Bootstrap resamples and generator seed (scipy.stats.bootstrap).
N_BOOT = 10_000
BOOT_SEED = 0
#: Interval methods for one mean; "t" is the default (best measured coverage at 5-10 seeds).
CI_METHODS: tuple[str, ...] = ("t", "percentile", "bca")
CI_METHOD = "t"


def _clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """A float array without NaNs."""
    x = np.asarray(values, dtype=float).ravel()
    return x[~np.isnan(x)]


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean (NaNs dropped; (nan, nan) with fewer than two values).

    Zero spread gives the zero-width interval (mean, mean).
    """
    x = _clean(values)
    if x.size < 2:
        return (math.nan, math.nan)
    m, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * se
    return (m - half, m + half)


def t_halfwidth(sd: np.ndarray, n: np.ndarray, confidence: float = CONFIDENCE) -> np.ndarray:
    """Half-width of the t-interval of a mean from its sample sd and size, elementwise (NaN for n < 2)."""
    sd, n = np.asarray(sd, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = stats.t.ppf(0.5 + confidence / 2, np.where(n >= 2, n - 1, np.nan))
        return np.where(n >= 2, q * sd / np.sqrt(n), np.nan)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[..., np.ndarray] | None = None,
    method: str = "percentile",
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> tuple[float, float]:
    """Seeded bootstrap interval (``scipy.stats.bootstrap``) of ``stat`` (default: the mean).

    ``stat(x, axis)`` must be vectorised. ``method``: 'percentile' or 'bca'. NaNs are dropped; with
    fewer than two values, or a degenerate BCa (e.g. all values equal), the interval is (nan, nan)
    except that identical values give the zero-width interval.
    """
    x = _clean(values)
    if x.size < 2:
        return (math.nan, math.nan)
    if np.all(x == x[0]):
        v = float(stat(x, axis=-1)) if stat is not None else float(x[0])
        return (v, v)
    res = stats.bootstrap(
        (x,),
        stat if stat is not None else np.mean,
        n_resamples=n_boot,
        confidence_level=confidence,
        method="BCa" if method.lower() == "bca" else method,
        rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return (float(lo), float(hi))


def mean_ci(
    values: Sequence[float] | np.ndarray,
    method: str = CI_METHOD,
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> tuple[float, float]:
    """Interval of the mean of ``values`` by ``method`` ('t', 'percentile' or 'bca')."""
    if method == "t":
        return t_interval(values, confidence)
    if method in ("percentile", "bca"):
        return bootstrap_ci(values, method=method, confidence=confidence, n_boot=n_boot, seed=seed)
    raise ValueError(f"method={method!r} is not allowed: one of {CI_METHODS}")


def pair_spread(values: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Mean over all pairs of values of the two-value sample sd, |x_i - x_j| / sqrt(2).

    The expected sd of two members drawn from a group (e.g. two agents of a run): comparable between
    groups of any size, where the plain sd of n values depends on n. NaN with fewer than two values.
    """
    v = _clean(values)
    if v.size < 2:
        return math.nan
    diffs = np.abs(v[:, None] - v[None, :])[np.triu_indices(v.size, 1)]
    return float(diffs.mean() / math.sqrt(2))


# --------------------------------------------------------------------------------------------
# Two groups


class RatioTest(NamedTuple):
    """The ratio of two means (or standard deviations), its interval, and a test of one value."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    """Two-sided p-value of ``ratio == theta0``: below 1 - confidence exactly when theta0 is outside
    the interval."""
    df: float


NAN_RATIO = RatioTest(math.nan, math.nan, math.nan, math.nan, math.nan)


def ratio_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    theta0: float = 1.0,
    confidence: float = CONFIDENCE,
) -> RatioTest:
    """mean(a) / mean(b) for independent groups: Fieller's interval and the test of ``theta0``.

    With standard errors va, vb of the two means, a value theta is inside the interval when
    |mean(a) - theta mean(b)| <= q sqrt(va + theta^2 vb), q the t quantile at the Welch-Satterthwaite
    df of that contrast, evaluated at the estimate (one df for the interval and every p-value, so the
    two agree). The interval is undefined (NaN) when mean(b) is not clearly away from 0 (the set is
    unbounded) or a group has fewer than two values; zero spread in both gives a zero-width interval.
    """
    a, b = _clean(a), _clean(b)
    if a.size == 0 or b.size == 0:
        return NAN_RATIO
    ma, mb = float(a.mean()), float(b.mean())
    est = ma / mb if mb != 0 else math.nan
    if a.size < 2 or b.size < 2 or mb == 0:
        return RatioTest(est, math.nan, math.nan, math.nan, math.nan)
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    num = (va + est**2 * vb) ** 2
    den = va**2 / (a.size - 1) + est**4 * vb**2 / (b.size - 1)
    df = num / den if den > 0 else float(a.size + b.size - 2)
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    qa, qb = q * q * va, q * q * vb
    coef = mb * mb - qb
    if coef <= 0:  # mean(b) indistinguishable from 0: unbounded
        lo = hi = math.nan
    else:
        disc = max((ma * mb) ** 2 - coef * (ma * ma - qa), 0.0)
        lo, hi = (ma * mb - math.sqrt(disc)) / coef, (ma * mb + math.sqrt(disc)) / coef
    se = math.sqrt(va + theta0**2 * vb)
    diff = ma - theta0 * mb
    if se > 0:
        p = float(2 * stats.t.sf(abs(diff) / se, df))
    else:
        p = 1.0 if diff == 0 else 0.0
    return RatioTest(est, lo, hi, p, df)


def welch_test(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE
) -> RatioTest:
    """mean(a) - mean(b): Welch's interval and the two-sided p-value of "no difference"
    (``scipy.stats.ttest_ind(equal_var=False)``); zero spread in both gives a zero-width interval."""
    a, b = _clean(a), _clean(b)
    if a.size == 0 or b.size == 0:
        return NAN_RATIO
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return RatioTest(diff, math.nan, math.nan, math.nan, math.nan)
    if a.var() == 0 and b.var() == 0:
        return RatioTest(diff, diff, diff, 1.0 if diff == 0 else 0.0, float(a.size + b.size - 2))
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(confidence)
    return RatioTest(diff, float(ci.low), float(ci.high), float(res.pvalue), float(res.df))


def relative_gain_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    target: float = 0.0,
    confidence: float = CONFIDENCE,
) -> RatioTest:
    """(mean(a) - mean(b)) / |mean(b)| with its interval and the p-value of ``target``.

    Sign-safe: positive iff mean(a) is higher, also for negative rewards. For ``target != 0`` built
    on :func:`ratio_test` (Fieller): with mean(b) > 0 the gain is ratio - 1, with mean(b) < 0 it is
    1 - ratio. For ``target == 0`` the question is only whether a scores higher than b, so the
    interval is Welch's interval of the difference (:func:`welch_test`) divided by |mean(b)|, and the
    p-value is Welch's: defined even where mean(b) is close to 0.
    """
    b_clean = _clean(b)
    sign = float(np.sign(b_clean.mean())) if b_clean.size else math.nan
    if not sign or math.isnan(sign):
        return NAN_RATIO
    if target == 0:
        w, scale = welch_test(a, b, confidence), abs(float(b_clean.mean()))
        return RatioTest(w.estimate / scale, w.ci_low / scale, w.ci_high / scale, w.p_value, w.df)
    r = ratio_test(a, b, theta0=1.0 + sign * target, confidence=confidence)
    if sign > 0:
        return RatioTest(r.estimate - 1, r.ci_low - 1, r.ci_high - 1, r.p_value, r.df)
    return RatioTest(1 - r.estimate, 1 - r.ci_high, 1 - r.ci_low, r.p_value, r.df)


def reduction_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    target: float = 0.0,
    confidence: float = CONFIDENCE,
) -> RatioTest:
    """1 - mean(a) / mean(b) (b positive: times, spreads) with its interval and the p-value of ``target``."""
    r = ratio_test(a, b, theta0=1.0 - target, confidence=confidence)
    return RatioTest(1 - r.estimate, 1 - r.ci_high, 1 - r.ci_low, r.p_value, r.df)


def sd_ratio_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    rho0: float = 1.0,
    confidence: float = CONFIDENCE,
) -> RatioTest:
    """sd(a) / sd(b) (sample sds, ddof 1): the F interval and the F test of ``rho0`` (normal theory)."""
    a, b = _clean(a), _clean(b)
    if a.size < 2 or b.size < 2:
        return NAN_RATIO
    sa, sb = float(a.std(ddof=1)), float(b.std(ddof=1))
    if sb == 0:
        return RatioTest(math.nan if sa == 0 else math.inf, math.nan, math.nan, math.nan, math.nan)
    rho = sa / sb
    d1, d2 = a.size - 1, b.size - 1
    alpha = 1 - confidence
    lo = rho / math.sqrt(stats.f.ppf(1 - alpha / 2, d1, d2))
    hi = rho / math.sqrt(stats.f.ppf(alpha / 2, d1, d2))
    f = rho**2 / rho0**2
    p = float(min(1.0, 2 * min(stats.f.cdf(f, d1, d2), stats.f.sf(f, d1, d2))))
    return RatioTest(rho, lo, hi, p, float(d1))


def abs_deviations(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """|x - median(x)| of each value: the per-seed spread that Brown and Forsythe's test compares."""
    x = _clean(values)
    return np.abs(x - np.median(x)) if x.size else x


def mad_reduction_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    target: float = 0.0,
    confidence: float = CONFIDENCE,
) -> RatioTest:
    """1 - D(a) / D(b), D the mean absolute deviation from the median, with Fieller's interval.

    The robust counterpart of :func:`sd_reduction_test` (Brown-Forsythe): for groups that differ
    by a scale factor the ratio of D equals the ratio of standard deviations, and one outlying value
    makes D's interval wide instead of deciding the verdict.
    """
    return reduction_test(abs_deviations(a), abs_deviations(b), target, confidence)


def sd_reduction_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    target: float = 0.0,
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> RatioTest:
    """1 - sd(a) / sd(b) with a percentile bootstrap interval (the groups resampled separately).

    ``scipy.stats.bootstrap``; the p-value of ``target`` is twice the smaller share of resampled
    estimates on either side of it (below 1 - confidence about when the interval excludes it). When
    more than 5% of the resamples are undefined (a resample of b with no spread), so is the interval.
    """
    a, b = _clean(a), _clean(b)
    if a.size < 2 or b.size < 2:
        return NAN_RATIO
    sa, sb = float(a.std(ddof=1)), float(b.std(ddof=1))
    if sb == 0:
        return NAN_RATIO
    est = 1 - sa / sb

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1 - x.std(axis=-1, ddof=1) / y.std(axis=-1, ddof=1)

    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # no spread in b: handled below
        res = stats.bootstrap(
            (a, b),
            stat,
            n_resamples=n_boot,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    dist = np.asarray(res.bootstrap_distribution, dtype=float)
    finite = np.isfinite(dist)
    if finite.mean() < 0.95:
        return RatioTest(est, math.nan, math.nan, math.nan, math.nan)
    dist = dist[finite]
    alpha = 1 - confidence
    lo, hi = (float(v) for v in np.quantile(dist, [alpha / 2, 1 - alpha / 2]))
    p = float(min(1.0, 2 * min(np.mean(dist <= target), np.mean(dist >= target))))
    return RatioTest(est, lo, hi, p, math.nan)


def sd_reduction_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    target: float = 0.0,
    confidence: float = CONFIDENCE,
) -> RatioTest:
    """1 - sd(a) / sd(b) with its F interval and the p-value of ``target``."""
    r = sd_ratio_test(a, b, rho0=1.0 - target, confidence=confidence)
    return RatioTest(1 - r.estimate, 1 - r.ci_high, 1 - r.ci_low, r.p_value, r.df)


# --------------------------------------------------------------------------------------------
# Many cells


def holm(p_values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error); NaN entries are not tests and stay NaN.

    The k-th smallest of m p-values becomes max over j <= k of min(1, (m - j + 1) p_(j)).
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(~np.isnan(p))
    if idx.size == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    m = idx.size
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def seeds_to_decide(
    estimate: float, ci_low: float, ci_high: float, target: float, n: int, confidence: float = CONFIDENCE
) -> float:
    """Seeds per setup at which the interval would no longer contain ``target``.

    Assumes the same estimate and per-seed spread: the half-width shrinks as t(n' - 1) sqrt(n / n') from
    its present value. Returns n itself when the interval already excludes the target, inf when the
    estimate equals it, NaN when the interval is undefined.
    """
    if any(math.isnan(v) for v in (estimate, ci_low, ci_high)) or n < 2:
        return math.nan
    gap = abs(estimate - target)
    if gap == 0:
        return math.inf
    half = (estimate - ci_low) if target < estimate else (ci_high - estimate)
    if half < gap:
        return float(n)
    q_n = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    sd_scale = half / q_n * math.sqrt(n)  # the half-width is q(n-1) * sd_scale / sqrt(n)
    return _first_n(sd_scale, gap, n + 1, confidence, strict=True)


def _first_n(sd: float, width: float, start: int, confidence: float, strict: bool) -> float:
    """Fewest m >= start (up to 100,000) with t(m-1) sd / sqrt(m) below ``width`` (or equal, not strict)."""
    m = np.arange(start, 100_001, dtype=float)
    half = stats.t.ppf(0.5 + confidence / 2, m - 1) * sd / np.sqrt(m)
    ok = half < width if strict else half <= width
    return float(m[np.argmax(ok)]) if ok.any() else math.inf


def seeds_for_halfwidth(sd: float, half_width: float, confidence: float = CONFIDENCE) -> float:
    """Fewest seeds whose t-interval of a mean with sample sd ``sd`` has half-width <= ``half_width``."""
    if math.isnan(sd) or math.isnan(half_width) or half_width <= 0:
        return math.nan
    if sd == 0:
        return 2.0
    return _first_n(sd, half_width, 2, confidence, strict=False)


def seed_values(df: pd.DataFrame, value: str) -> np.ndarray:
    """The ``value`` column of ``df`` ordered by seed (one value per seed)."""
    return df.sort_values("seed")[value].to_numpy(float)


#: The verdicts of :func:`margin_verdict`.
MARGIN_VERDICTS = ("better", "worse", "equivalent", "inconclusive")


def margin_verdict(lo: float, hi: float, margin: float) -> str:
    """The verdict of a difference's interval [lo, hi] against an equivalence margin ``margin`` > 0:
    ``better`` (lo > 0), ``worse`` (hi < 0), ``equivalent`` (inside (-margin, margin): no gain or
    loss of the margin or more), else ``inconclusive``; NaN bounds are inconclusive."""
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    if -margin < lo and hi < margin:
        return "equivalent"
    return "inconclusive"


def tost(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, margin: float) -> float:
    """Two one-sided Welch tests of |mean(a) - mean(b)| >= ``margin``: the larger of the two p-values
    (small: the difference lies within the margin). At level alpha it agrees with the (1 - 2 alpha)
    Welch interval lying inside (-margin, margin). NaN with fewer than two values on a side."""
    a, b = _clean(a), _clean(b)
    if a.size < 2 or b.size < 2:
        return math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff, se = float(a.mean() - b.mean()), math.sqrt(va + vb)
    if se == 0:
        return 0.0 if abs(diff) < margin else 1.0
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    p_low = float(stats.t.sf((diff + margin) / se, df))  # H0: diff <= -margin
    p_high = float(stats.t.cdf((diff - margin) / se, df))  # H0: diff >= margin
    return max(p_low, p_high)


def power_two_sample(n: int, sd: float, effect: float, alpha: float = 1 - CONFIDENCE) -> float:
    """Power of the two-sided two-sample t-test with ``n`` seeds per setup and per-seed spread ``sd``
    against a true difference ``effect`` (noncentral t, equal spreads)."""
    if n < 2 or sd <= 0:
        return math.nan
    df = 2 * n - 2
    ncp = effect / (sd * math.sqrt(2.0 / n))
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


def seeds_for_power(
    sd: float, effect: float, power: float = 0.8, alpha: float = 1 - CONFIDENCE, limit: int = 100_000
) -> float:
    """Fewest seeds per setup with which :func:`power_two_sample` reaches ``power`` against ``effect``
    (inf beyond ``limit``, NaN for a NaN or non-positive spread or effect)."""
    if math.isnan(sd) or math.isnan(effect) or sd <= 0 or effect == 0:
        return math.nan
    lo, hi = 2, 2
    while power_two_sample(hi, sd, abs(effect), alpha) < power:
        if hi >= limit:
            return math.inf
        lo, hi = hi, min(2 * hi, limit)
    while lo < hi:  # power grows with n: bisect for the first n that reaches it
        mid = (lo + hi) // 2
        if power_two_sample(mid, sd, abs(effect), alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return float(hi)
