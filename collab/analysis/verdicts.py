"""The paper's headline claims checked against results: an estimate, its interval, a p-value and a verdict.

Each claim is estimated per environment and collaborative setup against independent training of the
same environment (``collab.paper``: ``CONVERGENCE_TARGET``, ``REWARD_TARGET``, ``VARIANCE_TARGET``,
``VARIANCE_TARGET_COMPLEX``). A cell *holds* if its whole 95% interval is at or above the paper's
value, *does not hold* if it is entirely below, else it is *inconclusive*; its p-value tests "the
true value equals the paper's" and agrees with the interval (p < 0.05 exactly when the interval
excludes it). Censored comparisons bound the truth in one direction only, so they decide at most in
that direction. Within each claim and measure, Holm's adjustment gives ``p_holm`` and
``verdict_holm``; the summary line's verdict is built from the Holm verdicts and says how many wrong
cell verdicts chance alone would give. :func:`claims` gives every cell and one summary line per claim
and measure; :func:`claims_text` says the same in sentences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from collab.analysis.curves import convergence_both, run_spreads
from collab.analysis.io import paper_order
from collab.analysis.protocol import LEFT_OUT
from collab.analysis.stats import (
    CONFIDENCE,
    RatioTest,
    holm,
    reduction_test,
    relative_gain_test,
    sd_reduction_bootstrap,
    seed_values,
    seeds_to_decide,
)
from collab.analysis.tables import per_seed_final
from collab.paper import (
    COLLAB_SETUPS,
    COMPLEX_ENVS,
    CONVERGENCE_TARGET,
    ENV_RANGES,
    ENVS,
    REWARD_TARGET,
    VARIANCE_TARGET,
    VARIANCE_TARGET_COMPLEX,
)

#: The per-cell test level (two-sided): 1 - CONFIDENCE.
ALPHA = 1 - CONFIDENCE


def verdict(lo: float, hi: float, target: float) -> str:
    """'holds' if the whole CI is >= target, 'does not hold' if it is entirely below, else 'inconclusive'.

    An undefined CI (fewer than two seeds in a group, or a baseline not clearly away from 0) is
    'inconclusive'.
    """
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if lo >= target:
        return "holds"
    if hi < target:
        return "does not hold"
    return "inconclusive"


def combine_verdicts(verdicts: Iterable[str], mode: str) -> str:
    """Combine per-cell verdicts: mode 'any' (an "up to" claim) or 'all' (a claim about every cell)."""
    v = list(verdicts)
    if not v:
        return "inconclusive"
    if mode == "any":
        if "holds" in v:
            return "holds"
        return "does not hold" if all(x == "does not hold" for x in v) else "inconclusive"
    if mode == "all":
        if "does not hold" in v:
            return "does not hold"
        return "holds" if all(x == "holds" for x in v) else "inconclusive"
    raise ValueError(f"mode={mode!r} is not allowed: 'any' or 'all'")


def relative_improvement(collab: np.ndarray, indep: np.ndarray) -> np.ndarray:
    """(mean(collab) - mean(indep)) / |mean(indep)|, row-wise over NaN-padded arrays.

    Sign-safe: positive iff the collaborative mean is higher, also when rewards are negative.
    """
    mc, mi = np.nanmean(collab, axis=1), np.nanmean(indep, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (mc - mi) / np.abs(mi)


#: The columns of a claim cell that the notebooks print.
CLAIM_COLUMNS = [
    "claim",
    "measure",
    "env_id",
    "setup",
    "estimate",
    "ci_low",
    "ci_high",
    "target",
    "p_value",
    "p_holm",
    "verdict",
    "verdict_holm",
    "seeds_needed",
]


def _row(
    claim: str,
    measure: str,
    env: str,
    setup: str,
    test: RatioTest,
    target: float,
    n: int,
    **kw: object,
) -> dict[str, object]:
    """One cell of a claim: its estimate, interval, p-value of the target, verdict and seeds to decide."""
    return {
        "claim": claim,
        "measure": measure,
        "env_id": env,
        "setup": setup,
        "estimate": test.estimate,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "target": target,
        "p_value": test.p_value,
        "verdict": verdict(test.ci_low, test.ci_high, target),
        "seeds_needed": seeds_to_decide(test.estimate, test.ci_low, test.ci_high, target, n),
        "note": "",
        **kw,
    }


def claim_convergence(
    conv: pd.DataFrame,
    target: float = CONVERGENCE_TARGET,
    setups: Sequence[str] = COLLAB_SETUPS,
    confidence: float = CONFIDENCE,
    baseline: str = "independent",
) -> pd.DataFrame:
    """Claim "up to 40% faster convergence": per env, collaborative setup (and ``measure``) vs independent.

    ``setups`` and ``baseline`` default to the paper's (its collaborative setups against independent
    training); any other names work the same way, and setups absent from ``conv`` are skipped.

    estimate = 1 - T_collab / T_indep, where T = restricted mean episodes to the env's threshold
    (:func:`episodes_to_threshold`; a not-reached run counts as its budget), with Fieller's interval
    (:func:`collab.analysis.stats.reduction_test`). Censoring: a run that did not reach the threshold
    took at least its budget, so a censored collaborative setup makes the estimate an upper bound
    (it can show "does not hold", never "holds"), a censored independent setup makes it a lower bound
    (it can show "holds", never "does not hold"), and censoring in both bounds nothing: inconclusive.
    The p-value is kept only in the direction the censoring allows. Also reports the fraction of runs
    that reached the threshold.
    """
    if "measure" not in conv.columns:
        conv = conv.assign(measure="agent mean")
    rows = []
    for (measure, env), grp in conv.groupby(["measure", "env_id"], sort=False):
        ind = grp[grp["setup"] == baseline].assign(t=lambda d: d["episodes"].fillna(d["budget"]))
        for setup in setups:
            col = grp[grp["setup"] == setup].assign(t=lambda d: d["episodes"].fillna(d["budget"]))
            if ind.empty or col.empty:
                continue
            test = reduction_test(seed_values(col, "t"), seed_values(ind, "t"), target, confidence)
            row = _row(
                f"convergence >={target:.0%} faster",
                measure,
                env,
                setup,
                test,
                target,
                min(len(col), len(ind)),
                frac_reached_setup=float(col["reached"].mean()),
                frac_reached_independent=float(ind["reached"].mean()),
            )
            cens_c, cens_i = not col["reached"].all(), not ind["reached"].all()
            reached = (
                f"reached: {int(col['reached'].sum())}/{len(col)} vs {int(ind['reached'].sum())}/{len(ind)}"
            )
            if cens_c and cens_i:
                row |= {"verdict": "inconclusive", "p_value": math.nan, "seeds_needed": math.nan}
                row["note"] = f"censored in both setups ({reached}): the estimate bounds nothing"
            elif cens_c:
                row["note"] = f"censored ({reached}): the estimate is an upper bound"
                if row["verdict"] == "holds" or test.estimate >= target:
                    row |= {"verdict": "inconclusive", "p_value": math.nan, "seeds_needed": math.nan}
            elif cens_i:
                row["note"] = f"independent censored ({reached}): the estimate is a lower bound"
                if row["verdict"] == "does not hold" or test.estimate < target:
                    row |= {"verdict": "inconclusive", "p_value": math.nan, "seeds_needed": math.nan}
            rows.append(row)
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    return pd.concat([paper_order(g) for _, g in out.groupby("measure", sort=False)], ignore_index=True)


def claim_reward(
    final: pd.DataFrame,
    target: float = REWARD_TARGET,
    envs: Sequence[str] = COMPLEX_ENVS,
    setups: Sequence[str] = COLLAB_SETUPS,
    baseline: str = "independent",
    claim: str = f"reward >={REWARD_TARGET:.0%} higher (complex)",
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Claim "cumulative reward 15% higher in complex tasks" (BipedalWalker-v3, CarRacing-v3).

    estimate = (R_collab - R_base) / |R_base| with R the Table 1 value (mean over seeds of the
    per-seed mean final evaluation return) and base the ``baseline`` setup (independent), with
    Fieller's interval (:func:`collab.analysis.stats.relative_gain_test`): sign-safe with negative
    rewards. range_gain is the same difference divided by the env's achievable range (``ENV_RANGES``
    upper - lower), for reference. With ``target=0`` and all envs it checks Table 1's ranking
    ("collaborative scores higher than the baseline"); ``claim`` names the rows.
    """
    ps = per_seed_final(final)
    rows = []
    for env in envs:
        ind = ps[(ps["env_id"] == env) & (ps["setup"] == baseline)]
        for setup in setups:
            col = ps[(ps["env_id"] == env) & (ps["setup"] == setup)]
            if ind.empty or col.empty:
                continue
            a, b = seed_values(col, "mean_return"), seed_values(ind, "mean_return")
            test = relative_gain_test(a, b, target, confidence)
            rng = ENV_RANGES.get(env)
            span = (rng.upper - rng.lower) if rng and not math.isnan(rng.lower) else math.nan
            diff = float(a.mean() - b.mean())
            n = min(a.size, b.size)
            rows.append(_row(claim, "Table 1 mean", env, setup, test, target, n, range_gain=diff / span))
    return paper_order(pd.DataFrame(rows)) if rows else pd.DataFrame()


#: The claims' measures built on each run's selected agent (its Table 1 value): left out where the
#: environment's selection was a tie-break (``claims(flagged=...)``).
SELECTED_MEASURES: tuple[str, ...] = ("Table 1 mean", "between seeds")

#: The two spreads of the variance claim (``measure``): within a run (between its agents, the paper's
#: "among agents") and between seeds (of a run's result).
VARIANCE_MEASURES: tuple[str, ...] = ("within run", "between seeds")


def claim_variance(
    curves: pd.DataFrame,
    final: pd.DataFrame,
    target: float = VARIANCE_TARGET,
    envs: Sequence[str] | None = None,
    setups: Sequence[str] = COLLAB_SETUPS,
    measures: Sequence[str] = VARIANCE_MEASURES,
    confidence: float = CONFIDENCE,
    baseline: str = "independent",
) -> pd.DataFrame:
    """Claim "performance variance 25% lower" (``target``): per env, collaborative setup and measure.

    'within run': estimate = 1 - W_collab / W_indep, W the mean over seeds of a run's pair spread of
    its agents' final validation returns (:func:`collab.analysis.curves.run_spreads`), Fieller's
    interval. 'between seeds': estimate = 1 - sd_collab / sd_indep, sd the sample sd over seeds of a
    run's Table 1 value, percentile bootstrap (the F interval undercovers badly on skewed values:
    ``benchmarks/coverage.py``). Both compare equal numbers of values per setup (pairs of agents;
    one value per seed). The paper's "over 30% in BipedalWalker and CarRacing" is the same with
    ``target=0.30`` and ``envs=COMPLEX_ENVS``. ``setups`` and ``baseline`` (independent) default to
    the paper's; setups absent from the data are skipped.
    """
    rs = run_spreads(curves, final)
    rows = []
    for env, grp in rs.groupby("env_id", sort=False):
        if envs is not None and env not in envs:
            continue
        ind = grp[grp["setup"] == baseline]
        for setup in setups:
            col = grp[grp["setup"] == setup]
            if ind.empty or col.empty:
                continue
            for measure in measures:
                if measure == "within run":
                    a, b = seed_values(col, "within"), seed_values(ind, "within")
                    test = reduction_test(a, b, target, confidence)
                elif measure == "between seeds":
                    a, b = seed_values(col, "result"), seed_values(ind, "result")
                    test = sd_reduction_bootstrap(a, b, target, confidence)
                else:
                    raise ValueError(f"measure={measure!r} is not allowed: one of {VARIANCE_MEASURES}")
                n = min(np.isfinite(a).sum(), np.isfinite(b).sum())
                rows.append(_row(f"variance >={target:.0%} lower", measure, env, setup, test, target, int(n)))
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    rank = {m: i for i, m in enumerate(VARIANCE_MEASURES)}
    out = out.assign(_m=out["measure"].map(rank)).sort_values("_m", kind="stable").drop(columns="_m")
    return pd.concat([paper_order(g) for _, g in out.groupby("measure", sort=False)], ignore_index=True)


def add_holm(detail: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Add ``p_holm`` (Holm-adjusted within each claim and measure) and ``verdict_holm``.

    A cell keeps its verdict after the adjustment when p_holm < alpha; otherwise it becomes
    inconclusive. Cells without a p-value (undefined interval, censoring) are not tests.
    """
    if detail.empty:
        return detail.assign(p_holm=pd.Series(dtype=float), verdict_holm=pd.Series(dtype=str))
    out = detail.copy()
    out["p_holm"] = math.nan
    for _, idx in out.groupby(["claim", "measure"], sort=False).groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p_value"].to_numpy(float))
    keep = (out["p_holm"] < alpha) & (out["verdict"] != "inconclusive")
    out["verdict_holm"] = out["verdict"].where(keep, "inconclusive")
    return out


def claims(
    curves: pd.DataFrame,
    final: pd.DataFrame,
    x: str = "episode",
    confidence: float = CONFIDENCE,
    flagged: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All headline claims: (per-cell detail, one line per claim and measure with a verdict).

    Summary rules: convergence "up to 40%" holds if some (env, collaborative setup) holds
    (combine 'any'), by the agent mean and by the best agent; reward +15% is judged on
    collaborative_8 in both complex envs (combine 'all'); variance -25% on collaborative_8 in every
    env (combine 'all'), and -30% on collaborative_8 in BipedalWalker and CarRacing, each within runs
    and between seeds. Section 5's reading of Table 1 ("a clear advantage for collaborative
    learning"): collaborative_8's reward above independent's, and above sequential's, in every env.
    The claims are the paper's: only its setups (by name) are judged, and only where present; a
    profile's other setups are left out of them (they still count, as every setup does, in an
    environment's convergence threshold).

    Each summary line counts the cells the claim names (the paper's six environments); a cell
    missing from the data (``missing``) counts as inconclusive, so an 'all' claim never holds on part
    of its environments. ``holds``, ``does_not_hold`` and ``inconclusive`` count the cell verdicts;
    ``tested`` the cells with a p-value; ``wrong_by_chance`` = (1 - confidence)/2 x tested, the
    expected number of wrong cell verdicts if every one of them sat on the wrong side of its target
    by a hair (an upper bound); ``holds_holm`` and ``does_not_hold_holm`` count the verdicts that
    survive Holm's adjustment, and ``verdict`` combines those.

    ``flagged``: {env_id: reason} of the environments whose selected agent is a tie-break
    (:func:`collab.analysis.tie_broken_envs`). Their cells of the measures built on the selected
    agent (:data:`SELECTED_MEASURES`) are left out: no estimate, no test, verdict inconclusive, the
    note ``left out: tie-break``; ``flagged`` counts them per summary line (they are not tested, so
    an 'all' claim cannot hold with one).
    """
    alpha = 1 - confidence
    conv = convergence_both(curves, x=x)
    c1 = claim_convergence(conv, confidence=confidence)
    c2 = claim_reward(final, confidence=confidence)
    c3 = claim_variance(curves, final, target=VARIANCE_TARGET, confidence=confidence)
    c3c = claim_variance(
        curves, final, target=VARIANCE_TARGET_COMPLEX, envs=COMPLEX_ENVS, confidence=confidence
    )
    ranking = {
        base: claim_reward(
            final,
            target=0.0,
            envs=ENVS,
            setups=("collaborative_8",),
            baseline=base,
            claim=f"8 agents score higher than {base} (Table 1)",
            confidence=confidence,
        )
        for base in ("independent", "sequential")
    }
    parts = [d for d in (c1, c2, c3, c3c, *ranking.values()) if not d.empty]
    detail = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*CLAIM_COLUMNS, "note"])
    out = detail["measure"].isin(SELECTED_MEASURES) & detail["env_id"].isin(list(flagged or {}))
    if out.any():
        numbers = [c for c in ("estimate", "ci_low", "ci_high", "p_value", "seeds_needed") if c in detail]
        detail.loc[out, numbers] = math.nan
        detail.loc[out, "verdict"] = "inconclusive"
        detail.loc[out, "note"] = LEFT_OUT
    detail = add_holm(detail, alpha)
    lead = [c for c in CLAIM_COLUMNS if c in detail.columns]
    detail = detail[lead + [c for c in detail.columns if c not in lead]]

    def pick(
        name: str, measure: str, setup: str | None = None, envs: Sequence[str] | None = None
    ) -> pd.DataFrame:
        if detail.empty:
            return detail
        m = detail["claim"].str.startswith(name) & (detail["measure"] == measure)
        if setup:
            m &= detail["setup"] == setup
        if envs is not None:
            m &= detail["env_id"].isin(envs)
        return detail[m]

    c8, cs, cx = ("collaborative_8",), COLLAB_SETUPS, COMPLEX_ENVS
    conv_name, reward_name = f"convergence >={CONVERGENCE_TARGET:.0%}", f"reward >={REWARD_TARGET:.0%}"
    var_name, var_cx_name = f"variance >={VARIANCE_TARGET:.0%}", f"variance >={VARIANCE_TARGET_COMPLEX:.0%}"
    conv_line = f"convergence up to {CONVERGENCE_TARGET:.0%} faster (any env, any collaborative setup)"
    specs = [  # (summary line, measure, cells, mode, the cells it names: envs x setups)
        (conv_line, "agent mean", pick(conv_name, "agent mean"), "any", ENVS, cs),
        (conv_line, "best agent", pick(conv_name, "best agent"), "any", ENVS, cs),
        (f"reward >={REWARD_TARGET:.0%} higher in complex tasks (8 agents)", "Table 1 mean",
         pick(reward_name, "Table 1 mean", c8[0]), "all", cx, c8),
        (f"variance >={VARIANCE_TARGET:.0%} lower (8 agents, every env)", "within run",
         pick(var_name, "within run", c8[0]), "all", ENVS, c8),
        (f"variance >={VARIANCE_TARGET:.0%} lower (8 agents, every env)", "between seeds",
         pick(var_name, "between seeds", c8[0]), "all", ENVS, c8),
        (f"variance >={VARIANCE_TARGET_COMPLEX:.0%} lower in BipedalWalker and CarRacing (8 agents)",
         "within run", pick(var_cx_name, "within run", c8[0]), "all", cx, c8),
        (f"variance >={VARIANCE_TARGET_COMPLEX:.0%} lower in BipedalWalker and CarRacing (8 agents)",
         "between seeds", pick(var_cx_name, "between seeds", c8[0]), "all", cx, c8),
        ("8 agents score higher than independent (Table 1, every env)", "Table 1 mean",
         pick("8 agents score higher than independent", "Table 1 mean"), "all", ENVS, c8),
        ("8 agents score higher than sequential (Table 1, every env)", "Table 1 mean",
         pick("8 agents score higher than sequential", "Table 1 mean"), "all", ENVS, c8),
    ]  # fmt: skip
    rows = []
    for name, measure, d, mode, envs, setups in specs:
        present = set(zip(d["env_id"], d["setup"], strict=True)) if not d.empty else set()
        missing = len({(e, st) for e in envs for st in setups} - present)
        v = (list(d["verdict"]) if not d.empty else []) + ["inconclusive"] * missing
        vh = (list(d["verdict_holm"]) if not d.empty else []) + ["inconclusive"] * missing
        tested = int(d["p_value"].notna().sum()) if not d.empty else 0
        n_flagged = int((d["note"] == LEFT_OUT).sum()) if "note" in d else 0
        best = d.loc[d["estimate"].idxmax()] if not d.empty and d["estimate"].notna().any() else None
        rows.append(
            {
                "claim": name,
                "measure": measure,
                "cells": len(v),
                "missing": missing,
                "flagged": n_flagged,
                "holds": v.count("holds"),
                "does_not_hold": v.count("does not hold"),
                "inconclusive": v.count("inconclusive"),
                "tested": tested,
                "wrong_by_chance": alpha / 2 * tested,
                "holds_holm": vh.count("holds"),
                "does_not_hold_holm": vh.count("does not hold"),
                "best_estimate": float(best["estimate"]) if best is not None else math.nan,
                "best_cell": f"{best['env_id']} {best['setup']}" if best is not None else "",
                "verdict": combine_verdicts(vh, mode),
            }
        )
    return detail, pd.DataFrame(rows)


def claims_text(summary: pd.DataFrame) -> str:
    """One plain sentence per summary line of :func:`claims` (Markdown list)."""
    lines = []
    for r in summary.itertuples(index=False):
        left_out = f" ({r.flagged} left out: a tie-break selection)" if getattr(r, "flagged", 0) else ""
        lines.append(
            f"- {r.claim}, {r.measure}: **{r.verdict}**. Of {r.cells} cells{left_out}, {r.holds} hold and "
            f"{r.does_not_hold} do not at 95% per cell; after Holm's adjustment {r.holds_holm} hold and "
            f"{r.does_not_hold_holm} do not. Wrong verdicts expected from chance alone: at most "
            f"{r.wrong_by_chance:.2f} among its {r.tested} tested cells (2.5% each)."
        )
    return "\n".join(lines) + "\n"
