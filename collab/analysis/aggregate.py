"""Aggregate metrics across environments: normalised scores, IQM, mean, median, optimality gap,
probability of improvement and performance profiles, with stratified-bootstrap intervals.

The definitions are those of Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS), as implemented by its ``rliable`` library:

- a run's **normalised score** is (R - R_random) / (R_reference - R_random), R its Table 1 value (the
  mean of its final evaluation episodes), with the random-policy and reference returns of
  ``collab.paper.SCORE_REFERENCES``: 0 = a uniform random policy, 1 = the reference score;
- **IQM**: the mean of the middle 50% of all runs' scores, pooled over tasks (25% trimmed at each end,
  ``scipy.stats.trim_mean``); **mean** and **median**: of the per-task mean scores;
- **optimality gap**: gamma - mean(min(score, gamma)), gamma = 1: how far below the reference the
  runs fall on average (lower is better);
- **probability of improvement** of X over Y: per task, P(X > Y) + 0.5 P(X = Y) over all pairs of a
  run of X and a run of Y (the Mann-Whitney U / (n m)); then the mean over tasks;
- **performance profile**: for each threshold tau, the fraction of runs with score > tau (the mean over
  tasks of the per-task fraction).

Beside the paper's baselines (independent and sequential training), :func:`compare_setups` compares
any setup with another by the probability of improvement and the differences of IQM and mean, and
:func:`matched_comparison` applies it to each setup against its matched-compute independent baseline
(the independent setup with as many agents) and against the paper's setting (``collaborative_8``).
An environment without a normalisation reference (``collab.paper.SCORE_REFERENCES``) has no scores and
is left out of every aggregate.

Intervals: stratified bootstrap: the runs of each task (and, for two setups, of each setup within each
task) are resampled separately, through ``scipy.stats.bootstrap`` with one sample per stratum and a
fixed generator seed; percentile intervals by default, whose coverage at 5-10 runs per task is
measured in ``benchmarks/coverage.py``. ``rliable`` itself is not a dependency: its bootstrap needs
``arch`` < 8, which does not import with the pinned pandas; the formulas are checked against its
published ones in ``tests/test_analysis_aggregate.py``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from collab.analysis.io import paper_order
from collab.analysis.setups import (
    PAPER_SETTING,
    matched_baselines,
    present_setups,
    setup_names,
    shares_agents,
)
from collab.analysis.stats import BOOT_SEED, CONFIDENCE, N_BOOT
from collab.analysis.tables import per_seed_final, population_per_run, present_envs
from collab.paper import SCORE_REFERENCES, ScoreReference

#: The aggregate metrics of :func:`aggregate_metrics`, in order.
AGGREGATE_METRICS: tuple[str, ...] = ("IQM", "mean", "median", "optimality gap")
#: The baselines :func:`improvement` compares every other setup with.
BASELINES: tuple[str, ...] = ("independent", "sequential")
#: Default thresholds of the performance profiles (normalised score).
PROFILE_TAUS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(25))  # 0, 0.05, ..., 1.2
#: Interval method of the stratified bootstrap ('percentile' or 'bca').
AGG_METHOD = "percentile"


def normalised_scores(
    final: pd.DataFrame, references: dict[str, ScoreReference] = SCORE_REFERENCES
) -> pd.DataFrame:
    """Per run: its Table 1 value and normalised score (NaN for an env without a reference).

    Returns env_id, setup, seed, mean_return, score.
    """
    ps = per_seed_final(final)
    rnd = ps["env_id"].map({e: r.random for e, r in references.items()})
    ref = ps["env_id"].map({e: r.reference for e, r in references.items()})
    ps["score"] = (ps["mean_return"] - rnd) / (ref - rnd)
    return ps[["env_id", "setup", "seed", "mean_return", "score"]]


def population_scores(
    population: pd.DataFrame, references: dict[str, ScoreReference] = SCORE_REFERENCES
) -> pd.DataFrame:
    """:func:`normalised_scores` of the selection-free measure: per run, the mean return of all its
    final agents re-evaluated (``population_eval.csv``, :func:`collab.analysis.population_per_run`)
    and its normalised score; the same columns, so every aggregate and comparison takes either."""
    ps = population_per_run(population)
    rnd = ps["env_id"].map({e: r.random for e, r in references.items()})
    ref = ps["env_id"].map({e: r.reference for e, r in references.items()})
    ps["score"] = (ps["mean_return"] - rnd) / (ref - rnd)
    return ps[["env_id", "setup", "seed", "mean_return", "score"]]


def references_frame(references: dict[str, ScoreReference] = SCORE_REFERENCES) -> pd.DataFrame:
    """SCORE_REFERENCES as a table: env_id, random, reference, source."""
    return pd.DataFrame([{"env_id": e, **r._asdict()} for e, r in references.items()])


# --------------------------------------------------------------------------------------------
# The metrics, on per-task arrays (each of shape (..., n_runs)), vectorised over leading axes


def _pool(tasks: Sequence[np.ndarray]) -> np.ndarray:
    """The runs of all tasks side by side (leading axes broadcast): shape (..., total runs)."""
    arrays = [np.asarray(t, dtype=float) for t in tasks]
    lead = np.broadcast_shapes(*(a.shape[:-1] for a in arrays))
    return np.concatenate([np.broadcast_to(a, lead + a.shape[-1:]) for a in arrays], axis=-1)


def _task_means(tasks: Sequence[np.ndarray]) -> np.ndarray:
    """Per-task mean scores stacked on the first axis: shape (n_tasks, ...)."""
    return np.stack(np.broadcast_arrays(*(np.asarray(t, dtype=float).mean(axis=-1) for t in tasks)))


def iqm(*tasks: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean of all runs of all tasks: the 25%-trimmed mean of the pooled scores."""
    return stats.trim_mean(_pool(tasks), 0.25, axis=-1)


def mean_score(*tasks: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over tasks of the per-task mean score."""
    return _task_means(tasks).mean(axis=0)


def median_score(*tasks: np.ndarray, axis: int = -1) -> np.ndarray:
    """Median over tasks of the per-task mean score."""
    return np.median(_task_means(tasks), axis=0)


def optimality_gap(*tasks: np.ndarray, axis: int = -1, gamma: float = 1.0) -> np.ndarray:
    """gamma minus the mean of all runs' scores clipped at gamma (runs pooled over tasks)."""
    return gamma - np.minimum(_pool(tasks), gamma).mean(axis=-1)


_METRICS: dict[str, Callable[..., np.ndarray]] = {
    "IQM": iqm,
    "mean": mean_score,
    "median": median_score,
    "optimality gap": optimality_gap,
}


def probability_of_improvement(x_tasks: Sequence[np.ndarray], y_tasks: Sequence[np.ndarray]) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) per task over all pairs of runs, averaged over tasks.

    ``x_tasks[k]`` and ``y_tasks[k]`` are the runs of X and Y on task k (shape (..., n) and (..., m)).
    """
    per_task = []
    for x, y in zip(x_tasks, y_tasks, strict=True):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
        eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
        per_task.append(gt + 0.5 * eq)
    return np.stack(np.broadcast_arrays(*per_task)).mean(axis=0)


def performance_profile_values(*tasks: np.ndarray, taus: Sequence[float], axis: int = -1) -> np.ndarray:
    """Fraction of runs with score > tau, mean over tasks; shape (len(taus), ...)."""
    t = np.asarray(taus, dtype=float)
    fracs = [(np.asarray(x, dtype=float)[..., None] > t).mean(axis=-2) for x in tasks]
    return np.moveaxis(np.stack(np.broadcast_arrays(*fracs)).mean(axis=0), -1, 0)


# --------------------------------------------------------------------------------------------
# Stratified bootstrap


def _task_arrays(scores: pd.DataFrame, setup: str, envs: Sequence[str]) -> list[np.ndarray]:
    """The finite scores of ``setup`` in each of ``envs``, sorted by seed (tasks with no run skipped)."""
    out = []
    for env in envs:
        d = scores[(scores["env_id"] == env) & (scores["setup"] == setup)].sort_values("seed")
        v = d["score"].to_numpy(float)
        out.append(v[np.isfinite(v)])
    return out


def stratified_bootstrap(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    method: str = AGG_METHOD,
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and interval of ``statistic(*samples)``, each sample resampled on its own.

    ``scipy.stats.bootstrap`` with one sample per stratum (vectorised ``statistic(*samples, axis)``).
    Every sample needs two or more values, else the interval is NaN. Returns (estimate, lo, hi),
    each shaped like the statistic.
    """
    samples = [np.asarray(s, dtype=float) for s in samples]
    point = np.asarray(statistic(*samples, axis=-1), dtype=float)
    if not samples or any(s.size < 2 for s in samples):
        nan = np.full(point.shape, math.nan)
        return point, nan, nan
    if all(np.all(s == s[0]) for s in samples):  # no spread at all: every resample is the point
        return point, point.copy(), point.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            samples,
            statistic,
            n_resamples=n_boot,
            confidence_level=confidence,
            method="BCa" if method.lower() == "bca" else method,
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    lo, hi = res.confidence_interval
    return point, np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)


def _common_tasks(scores: pd.DataFrame, setups: Sequence[str], envs: Sequence[str]) -> list[str]:
    """The envs where every one of ``setups`` has at least two finite scores."""
    ok = []
    for env in envs:
        d = scores[(scores["env_id"] == env) & np.isfinite(scores["score"])]
        counts = d.groupby("setup").size()
        if all(counts.get(s, 0) >= 2 for s in setups):
            ok.append(env)
    return ok


def aggregate_metrics(
    scores: pd.DataFrame,
    setups: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
    metrics: Sequence[str] = AGGREGATE_METRICS,
    method: str = AGG_METHOD,
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Aggregate metrics of each setup over the environments, with stratified-bootstrap intervals.

    ``scores`` is :func:`normalised_scores`; ``setups`` (their order) and ``envs`` default to those
    present. Only the environments where every setup present has two or more runs count, so all
    setups are aggregated over the same tasks. Returns setup, metric, estimate, ci_low, ci_high,
    n_tasks, n_runs.
    """
    present = present_setups(scores, setups)
    tasks = _common_tasks(scores, present, present_envs(scores, envs))
    rows = []
    for setup in present:
        arrays = _task_arrays(scores, setup, tasks)
        for metric in metrics:
            if not arrays:
                est = lo = hi = np.array(math.nan)
            else:
                est, lo, hi = stratified_bootstrap(arrays, _METRICS[metric], method, confidence, n_boot, seed)
            rows.append(
                {
                    "setup": setup,
                    "metric": metric,
                    "estimate": float(est),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "n_tasks": len(tasks),
                    "n_runs": int(sum(a.size for a in arrays)),
                }
            )
    cols = ["setup", "metric", "estimate", "ci_low", "ci_high", "n_tasks", "n_runs"]
    return pd.DataFrame(rows, columns=cols)


def improvement(
    scores: pd.DataFrame,
    baselines: Sequence[str] = BASELINES,
    setups: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
    method: str = AGG_METHOD,
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Probability of improvement of each setup over each baseline, with a stratified-bootstrap interval.

    Over the environments where both have two or more runs; the runs of each setup within each
    environment are resampled separately. 0.5 = no tendency either way; above 0.5 the setup tends to
    score higher than the baseline. ``setups`` (their order) and ``envs`` default to those present;
    absent baselines are skipped, and so are setups that train a subset of the baseline's agents
    (:func:`collab.analysis.setups.shares_agents`: not independent samples). Returns setup, baseline,
    metric, estimate, ci_low, ci_high, n_tasks.
    """
    present = present_setups(scores, setups)
    envs = present_envs(scores, envs)
    rows = []
    for base in baselines:
        if base not in present:
            continue
        for setup in present:
            if setup == base or shares_agents(setup, base):
                continue
            tasks = _common_tasks(scores, (setup, base), envs)
            x, y = _task_arrays(scores, setup, tasks), _task_arrays(scores, base, tasks)
            k = len(tasks)

            def stat(*s: np.ndarray, axis: int = -1, k: int = k) -> np.ndarray:
                return probability_of_improvement(s[:k], s[k:])

            if k:
                est, lo, hi = stratified_bootstrap([*x, *y], stat, method, confidence, n_boot, seed)
            else:
                est = lo = hi = np.array(math.nan)
            rows.append(
                {
                    "setup": setup,
                    "baseline": base,
                    "metric": "probability of improvement",
                    "estimate": float(est),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "n_tasks": k,
                }
            )
    cols = ["setup", "baseline", "metric", "estimate", "ci_low", "ci_high", "n_tasks"]
    return pd.DataFrame(rows, columns=cols)


def performance_profiles(
    scores: pd.DataFrame,
    taus: Sequence[float] = PROFILE_TAUS,
    setups: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
    method: str = AGG_METHOD,
    confidence: float = CONFIDENCE,
    n_boot: int = 2000,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Performance profile of each setup: fraction of runs scoring above each tau, with bands.

    Over the same environments as :func:`aggregate_metrics`. Returns setup, tau, estimate, ci_low,
    ci_high.
    """
    present = present_setups(scores, setups)
    tasks = _common_tasks(scores, present, present_envs(scores, envs))
    rows = []
    for setup in present:
        arrays = _task_arrays(scores, setup, tasks)
        if not arrays:
            continue

        def stat(*s: np.ndarray, axis: int = -1) -> np.ndarray:
            return performance_profile_values(*s, taus=taus)

        est, lo, hi = stratified_bootstrap(arrays, stat, method, confidence, n_boot, seed)
        for i, tau in enumerate(taus):
            rows.append(
                {
                    "setup": setup,
                    "tau": float(tau),
                    "estimate": float(est[i]),
                    "ci_low": float(lo[i]),
                    "ci_high": float(hi[i]),
                }
            )
    return pd.DataFrame(rows, columns=["setup", "tau", "estimate", "ci_low", "ci_high"])


def scores_by_env(scores: pd.DataFrame, setups: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean normalised score per env_id and setup (env, then ``setups`` order): env_id, setup, n_runs,
    mean_score."""
    g = scores.groupby(["env_id", "setup"])["score"].agg(n_runs="size", mean_score="mean").reset_index()
    return paper_order(g, setups=setups)


# --------------------------------------------------------------------------------------------
# Any setup against another: matched compute and the paper's setting

#: The comparisons of :func:`compare_setups`: the probability of improvement, and the differences
#: (setup minus baseline) of the two aggregates.
COMPARISON_METRICS: tuple[str, ...] = ("probability of improvement", "IQM difference", "mean difference")
#: The two kinds of :func:`baseline_pairs`.
MATCHED_COMPUTE = "matched compute"
PAPER_SETTING_COMPARISON = f"vs {PAPER_SETTING}"


def baseline_pairs(
    setups: Sequence[Mapping[str, Any]], reference: str | None = PAPER_SETTING
) -> list[tuple[str, str, str]]:
    """(comparison, setup, baseline) for every setup against its matched-compute independent baseline
    (:func:`collab.analysis.setups.matched_baselines`; setups without one are left out), then every
    other setup against ``reference`` (the paper's setting) where it is one of ``setups``."""
    names = setup_names(setups)
    pairs = [(MATCHED_COMPUTE, s, b) for s, b in matched_baselines(setups).items() if b is not None]
    if reference is not None and reference in names:
        label = f"vs {reference}"
        pairs += [(label, s, reference) for s in names if s != reference]
    return pairs


def compare_setups(
    scores: pd.DataFrame,
    pairs: Sequence[tuple[str, str, str]],
    envs: Sequence[str] | None = None,
    method: str = AGG_METHOD,
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Each (comparison, setup, baseline) of ``pairs``: probability of improvement, IQM difference and
    mean difference of the normalised scores, with stratified-bootstrap intervals.

    Over the environments where both have two or more finite scores (an env without a reference has
    none); the runs of each setup in each environment are resampled separately. ``setup_value`` and
    ``baseline_value``: the two setups' IQM (or mean) over the same environments (NaN for the
    probability of improvement). Pairs with a setup missing from ``scores`` are left out. Returns
    comparison, setup, baseline, metric, estimate, ci_low, ci_high, setup_value, baseline_value, n_tasks.
    """
    present = set(scores["setup"])
    envs = present_envs(scores, envs)
    stats_of: dict[str, Callable[..., np.ndarray]] = {"IQM difference": iqm, "mean difference": mean_score}
    rows = []
    for comparison, setup, base in pairs:
        if setup not in present or base not in present or setup == base:
            continue
        tasks = _common_tasks(scores, (setup, base), envs)
        x, y = _task_arrays(scores, setup, tasks), _task_arrays(scores, base, tasks)
        k = len(tasks)
        for metric in COMPARISON_METRICS:
            one = stats_of.get(metric)

            def stat(*s: np.ndarray, axis: int = -1, k: int = k, one: Callable | None = one) -> np.ndarray:
                if one is None:
                    return probability_of_improvement(s[:k], s[k:])
                return one(*s[:k]) - one(*s[k:])

            if k:
                est, lo, hi = stratified_bootstrap([*x, *y], stat, method, confidence, n_boot, seed)
            else:
                est = lo = hi = np.array(math.nan)
            values = (float(one(*x)), float(one(*y))) if one is not None and k else (math.nan, math.nan)
            rows.append(
                {
                    "comparison": comparison,
                    "setup": setup,
                    "baseline": base,
                    "metric": metric,
                    "estimate": float(est),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "setup_value": values[0],
                    "baseline_value": values[1],
                    "n_tasks": k,
                }
            )
    cols = ["comparison", "setup", "baseline", "metric", "estimate", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=[*cols, "setup_value", "baseline_value", "n_tasks"])


def matched_comparison(
    scores: pd.DataFrame,
    setups: Sequence[Mapping[str, Any]],
    reference: str | None = PAPER_SETTING,
    envs: Sequence[str] | None = None,
    method: str = AGG_METHOD,
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """:func:`compare_setups` of every setup against its matched-compute independent baseline and
    against ``reference`` (``collaborative_8``, the paper's setting, where present): see
    :func:`baseline_pairs`. ``setups`` is a profile's setups (``ProfileData.setup_info``)."""
    pairs = baseline_pairs(setups, reference)
    return compare_setups(scores, pairs, envs, method, confidence, n_boot, seed)


def key_setups(setups: Sequence[Mapping[str, Any]], scores: pd.DataFrame) -> list[str]:
    """The setups a short figure shows, where the profile has them: ``independent``, the paper's
    setting ``collaborative_8``, the sign-robust setup (``rule: sign_robust``) whose runs have the
    highest IQM of ``scores`` over the environments (chosen after the runs, for display only), and
    the first PBT setup. Empty when the profile has no sign-robust setup."""
    names = [str(s["name"]) for s in setups]
    robust = [str(s["name"]) for s in setups if s.get("rule") == "sign_robust"]
    if not robust:
        return []
    tasks = _common_tasks(scores, robust, present_envs(scores))
    iqms = {n: float(iqm(*_task_arrays(scores, n, tasks))) if tasks else -math.inf for n in robust}
    best = max(robust, key=lambda n: (iqms[n], -robust.index(n)))
    pbt = [str(s["name"]) for s in setups if s.get("strategy") == "pbt"]
    wanted = ["independent", PAPER_SETTING, best, *pbt[:1]]
    return [n for n in wanted if n in names]
