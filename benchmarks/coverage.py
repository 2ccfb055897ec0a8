"""Coverage of the analysis's interval methods at the package's seed counts, by simulation.

Usage: python benchmarks/coverage.py [--sims N] [--boot N] [--agg-sims N]

How often a nominal 95% interval contains the true value, with 5 seeds per setup (the reduced grid)
and 10 (a study), for three shapes of per-seed values: normal, lognormal (sigma 1: skewed), and a
mixture in which 20% of the values are failures (0 against successes around 1: the Acrobot/Taxi
pattern, where a few runs or episodes time out). Quantities and the methods compared:

- the mean of one setup (Table 1's cell): t-interval, scipy's percentile and BCa bootstraps;
- the relative gain of one setup over another, mean(A)/mean(B) - 1 with a true gain of 0.15 (the
  reward and convergence claims): Fieller's interval with Welch df, percentile and BCa bootstraps
  (the two groups resampled separately);
- the reduction of spread 1 - sd(A)/sd(B) with a true reduction of 0.25 (between-seed variance):
  the F interval, the robust Fieller interval on mean absolute deviations (Brown-Forsythe), and the
  percentile bootstrap;
- the level of the tests of "no difference" between two setups with equal distributions: Welch's
  t-test and the exact permutation test of the difference of means;
- aggregate metrics over 6 tasks (scores of task k are the family scaled by 0.5 + 0.1 k): IQM and
  mean, and the probability of improvement of A (scaled by 1.1) over B, with stratified percentile
  and BCa bootstraps.

An undefined interval (Fieller's when the baseline's mean is not clearly away from 0) gives an
inconclusive verdict, so it counts as covering; ``undefined`` reports how often it happened. Writes
``benchmarks/results/coverage.{csv,md}`` and prints the table. Default: 2000 simulations per row
(Monte Carlo standard error about 0.5 points at 95%), 2000 bootstrap resamples, 500 aggregate
simulations; a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from collab.analysis import aggregate as G
from collab.analysis import stats as S
from collab.results import atomic_write_csv, atomic_write_text, markdown_table

RESULTS = Path(__file__).parent / "results"
SEED_COUNTS = (5, 10)
CONFIDENCE = 0.95


# --------------------------------------------------------------------------------------------
# The three shapes of per-seed values, each a scale family with mean 1


def draw(family: str, rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    """Values with mean 1: 'normal' N(1, 0.2), 'lognormal' exp(N(0, 1)) / e^0.5, or 'mixture'
    (0 with probability 0.2, else N(1.25, 0.125))."""
    if family == "normal":
        return rng.normal(1.0, 0.2, size)
    if family == "lognormal":
        return rng.lognormal(0.0, 1.0, size) / math.exp(0.5)
    if family == "mixture":
        fail = rng.random(size) < 0.2
        return np.where(fail, 0.0, rng.normal(1.25, 0.125, size))
    raise ValueError(family)


FAMILIES = ("normal", "lognormal", "mixture")


def true_sd(family: str) -> float:
    """The standard deviation of ``draw(family)`` (closed form)."""
    if family == "normal":
        return 0.2
    if family == "lognormal":
        return math.sqrt((math.e - 1) * math.e) / math.exp(0.5)
    return math.sqrt(0.8 * (0.125**2 + 1.25**2) - 1.0)  # E[X^2] - 1


# --------------------------------------------------------------------------------------------
# Helpers


def _row(
    quantity: str, method: str, family: str, n: int, lo: np.ndarray, hi: np.ndarray, truth: float
) -> dict:
    """Coverage of the intervals (lo, hi) of one setting; undefined intervals count as covering."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    undefined = ~np.isfinite(lo) | ~np.isfinite(hi)  # NaN or unbounded
    covered = undefined | ((lo <= truth) & (truth <= hi))
    width = (hi - lo)[~undefined]
    cov = float(covered.mean())
    return {
        "quantity": quantity,
        "method": method,
        "distribution": family,
        "n_seeds": n,
        "sims": lo.size,
        "coverage": cov,
        "mc_se": math.sqrt(cov * (1 - cov) / lo.size),
        "undefined": float(undefined.mean()),
        "median_width": float(np.median(width)) if width.size else math.nan,
    }


def _boot(samples: list[np.ndarray], stat: Callable, method: str, n_boot: int, seed: int) -> tuple:
    """scipy's bootstrap of many simulated data sets at once (the simulations on the leading axis).

    Degenerate data sets (e.g. a baseline whose resamples are all failures) give unbounded or NaN
    intervals, reported as undefined."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            samples,
            stat,
            n_resamples=n_boot,
            confidence_level=CONFIDENCE,
            method=method,
            vectorized=True,
            axis=-1,
            rng=np.random.default_rng(seed),
            batch=200,
        )
    return res.confidence_interval.low, res.confidence_interval.high


# --------------------------------------------------------------------------------------------
# The quantities


def one_mean(sims: int, n_boot: int, rng: np.random.Generator) -> list[dict]:
    """Coverage of the mean of one setup."""
    rows = []
    for family in FAMILIES:
        for n in SEED_COUNTS:
            x = draw(family, rng, (sims, n))
            t = np.array([S.t_interval(v, CONFIDENCE) for v in x])
            rows.append(_row("mean", "t", family, n, t[:, 0], t[:, 1], 1.0))
            for method in ("percentile", "BCa"):
                lo, hi = _boot([x], np.mean, method, n_boot, 0)
                rows.append(_row("mean", f"bootstrap {method}", family, n, lo, hi, 1.0))
    return rows


def relative_gain(sims: int, n_boot: int, rng: np.random.Generator, gain: float = 0.15) -> list[dict]:
    """Coverage of mean(A)/mean(B) - 1 with A = (1 + gain) x B's family."""
    rows = []

    def stat(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return a.mean(axis=-1) / b.mean(axis=-1) - 1

    for family in FAMILIES:
        for n in SEED_COUNTS:
            a = (1 + gain) * draw(family, rng, (sims, n))
            b = draw(family, rng, (sims, n))
            f = np.array(
                [S.relative_gain_test(x, y, gain, CONFIDENCE)[1:3] for x, y in zip(a, b, strict=True)]
            )
            rows.append(_row("relative gain", "Fieller (Welch df)", family, n, f[:, 0], f[:, 1], gain))
            for method in ("percentile", "BCa"):
                lo, hi = _boot([a, b], stat, method, n_boot, 0)
                rows.append(_row("relative gain", f"bootstrap {method}", family, n, lo, hi, gain))
    return rows


def spread_reduction(sims: int, n_boot: int, rng: np.random.Generator, reduction: float = 0.25) -> list[dict]:
    """Coverage of 1 - sd(A)/sd(B) with A = (1 - reduction) x B's family."""
    rows = []
    for family in FAMILIES:
        for n in SEED_COUNTS:
            a = (1 - reduction) * draw(family, rng, (sims, n))
            b = draw(family, rng, (sims, n))
            pairs = list(zip(a, b, strict=True))
            f = np.array([S.sd_reduction_test(x, y, reduction, CONFIDENCE)[1:3] for x, y in pairs])
            rows.append(_row("spread reduction", "F interval (sd)", family, n, f[:, 0], f[:, 1], reduction))
            m = np.array([S.mad_reduction_test(x, y, reduction, CONFIDENCE)[1:3] for x, y in pairs])
            rows.append(
                _row(
                    "spread reduction",
                    "Fieller (mean abs. deviation)",
                    family,
                    n,
                    m[:, 0],
                    m[:, 1],
                    reduction,
                )
            )
            boot = np.array(
                [S.sd_reduction_bootstrap(x, y, reduction, CONFIDENCE, n_boot)[1:3] for x, y in pairs]
            )
            name = "bootstrap percentile (sd)"
            rows.append(_row("spread reduction", name, family, n, boot[:, 0], boot[:, 1], reduction))
    return rows


def test_level(sims: int, rng: np.random.Generator) -> list[dict]:
    """Rejection rate at 5% of "no difference" when both setups have the same distribution.

    Reported in the coverage column as 1 - rejection rate (the coverage of the value 0)."""
    rows = []
    for family in FAMILIES:
        for n in SEED_COUNTS:
            a, b = draw(family, rng, (sims, n)), draw(family, rng, (sims, n))
            p_w = np.array([S.welch_test(x, y, CONFIDENCE).p_value for x, y in zip(a, b, strict=True)])
            p_w = np.where(np.isnan(p_w), 1.0, p_w)  # two constant samples: no test, no rejection
            n_perm = 2000 if n > 5 else np.inf  # 5 + 5 seeds: all 252 splits (exact)
            res = stats.permutation_test(
                (a, b),
                lambda x, y, axis=-1: x.mean(axis=-1) - y.mean(axis=-1),
                permutation_type="independent",
                vectorized=True,
                n_resamples=n_perm,
                axis=-1,
                rng=np.random.default_rng(0),
            )
            p_p = np.asarray(res.pvalue)
            for method, p in (("Welch t-test", p_w), ("permutation test of means", p_p)):
                keep = p >= 1 - CONFIDENCE
                lo = np.where(keep, -1.0, 1.0)  # an interval containing 0 iff not rejected
                rows.append(_row("no difference (level)", method, family, n, lo, np.ones_like(lo), 0.0))
    return rows


def _tasks(family: str, rng: np.random.Generator, sims: int, n: int, scale: float = 1.0) -> list[np.ndarray]:
    """Six tasks' scores, task k scaled by 0.5 + 0.1 k (and by ``scale``)."""
    return [scale * (0.5 + 0.1 * k) * draw(family, rng, (sims, n)) for k in range(6)]


def aggregates(sims: int, n_boot: int, rng: np.random.Generator) -> list[dict]:
    """Coverage of the stratified bootstrap for IQM, mean and the probability of improvement."""
    rows = []
    big = np.random.default_rng(12345)
    for family in FAMILIES:
        pop = _tasks(family, big, 1, 400_000)
        true = {"IQM": float(G.iqm(*pop)[0]), "mean": float(G.mean_score(*pop)[0])}
        x_big = _tasks(family, big, 1, 3000, scale=1.1)
        y_big = _tasks(family, big, 1, 3000)
        true_poi = float(G.probability_of_improvement(x_big, y_big)[0])
        for n in SEED_COUNTS:
            tasks = _tasks(family, rng, sims, n)
            for metric, fn in (("IQM", G.iqm), ("mean", G.mean_score)):
                for method in ("percentile", "BCa"):
                    lo, hi = _boot(tasks, fn, method, n_boot, 0)
                    name = f"stratified bootstrap {method}"
                    rows.append(_row(f"aggregate {metric}", name, family, n, lo, hi, true[metric]))
            xs, ys = _tasks(family, rng, sims, n, scale=1.1), _tasks(family, rng, sims, n)

            def poi(*s: np.ndarray, axis: int = -1) -> np.ndarray:
                return G.probability_of_improvement(s[:6], s[6:])

            lo, hi = _boot([*xs, *ys], poi, "percentile", n_boot, 0)
            name = "stratified bootstrap percentile"
            rows.append(_row("probability of improvement", name, family, n, lo, hi, true_poi))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every simulation, write the csv and md, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=2000, help="simulations per row (default 2000)")
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ap.add_argument("--agg-sims", type=int, default=500, help="simulations per aggregate row (default 500)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for coverage.csv and coverage.md")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(2021)
    start = time.perf_counter()
    rows = one_mean(args.sims, args.boot, rng)
    rows += relative_gain(args.sims, args.boot, rng)
    rows += spread_reduction(args.sims, args.boot, rng)
    rows += test_level(args.sims, rng)
    rows += aggregates(args.agg_sims, args.boot, rng)
    table = pd.DataFrame(rows)
    atomic_write_csv(args.out / "coverage.csv", table)
    header = (
        "# Coverage of the interval methods\n\n"
        f"`python benchmarks/coverage.py` (seed 2021; {args.sims} simulations per row, {args.agg_sims} for "
        f"the aggregates; {args.boot} bootstrap resamples). `coverage`: the fraction of nominal 95% "
        "intervals that contain the true value (`mc_se`: its Monte Carlo standard error); for the "
        "rows `no difference (level)`, 1 minus the rejection rate of a 5% test when both setups have the "
        "same distribution. `undefined`: intervals that were unbounded (counted as covering: their "
        "verdict is inconclusive). `median_width` in the quantity's units (values have mean 1).\n\n"
    )
    atomic_write_text(args.out / "coverage.md", header + markdown_table(table, floatfmt=".3f"))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\n{time.perf_counter() - start:.0f} s; wrote {args.out / 'coverage.csv'} and coverage.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
