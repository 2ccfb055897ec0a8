"""What each comparison excludes: differences in units of the random-to-reference gap, verdicts
against an equivalence margin, and the seeds a margin-sized difference needs.

For every environment, measure and pair (a setup against ``independent``, the matched-compute
baseline of the 8-agent setups, and against the paper's setting ``collaborative_8``), the difference
of the two setups' mean return over seeds with Welch's 95% interval, divided by the environment's
gap between a random policy and the reference score (``collab.paper.SCORE_REFERENCES``): 0.1 is 10%
of what separates random play from the reference. The interval's ends are the largest loss and gain
the data leave possible; :func:`collab.analysis.stats.margin_verdict` reads them against the margin
(better / worse / equivalent within the margin / inconclusive), and ``tost_p`` is the two one-sided
tests' p-value of "the difference is at least the margin".

``independent_2`` and ``independent_4`` are not compared with ``independent``: their agents are
``independent``'s first 2 and 4 agents (the same seeds train them identically), so the two are not
independent samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from collab.analysis.setups import PAPER_SETTING
from collab.analysis.stats import (
    CONFIDENCE,
    MARGIN_VERDICTS,
    margin_verdict,
    seed_values,
    seeds_for_power,
    tost,
    welch_test,
)
from collab.analysis.tables import per_seed_final, population_per_run, present_envs
from collab.paper import SCORE_REFERENCES, ScoreReference

#: The default margin: 10% of the environment's random-to-reference gap.
MARGIN = 0.1
#: The baselines every setup is compared with.
BASELINES = ("independent", PAPER_SETTING)
EQUIVALENCE_COLUMNS = [
    "env_id", "setup", "baseline", "measure", "n_setup", "n_baseline", "diff", "diff_low", "diff_high",
    "margin", "verdict", "tost_p",
]  # fmt: skip
POWER_COLUMNS = ["env_id", "measure", "setups", "sd", "margin", "power", "seeds"]


def _per_run(final: pd.DataFrame, population: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    per_run = {"selected": per_seed_final(final)}
    if population is not None and len(population):
        per_run["population"] = population_per_run(population)
    return per_run


def _shares_agents(setup: str, baseline: str) -> bool:
    """Whether ``setup`` trains a subset of ``baseline``'s agents (independent_k against independent)."""
    return baseline == "independent" and setup.startswith("independent_")


def env_equivalence(
    final: pd.DataFrame,
    setups: Sequence[Mapping[str, Any]],
    population: pd.DataFrame | None = None,
    margin: float = MARGIN,
    envs: Sequence[str] | None = None,
    references: Mapping[str, ScoreReference] = SCORE_REFERENCES,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """One row per environment with a reference, measure and (setup, baseline) of :data:`BASELINES`
    where both ran (a pair once, in its first direction): ``diff`` = (mean(setup) - mean(baseline)) /
    gap with Welch's interval [diff_low, diff_high] (the largest loss and gain not excluded), the
    verdict against ``margin`` and the TOST p-value. Measures: ``selected`` (final.csv) and
    ``population`` (population_eval.csv)."""
    names = [str(s["name"]) for s in setups]
    pairs: list[tuple[str, str]] = []
    for base in BASELINES:  # a pair compared once, in its first direction
        for setup in names:
            if setup != base and not _shares_agents(setup, base) and (base, setup) not in pairs:
                pairs.append((setup, base))
    rows = []
    for measure, ps in _per_run(final, population).items():
        for env in present_envs(ps, envs):
            if env not in references:
                continue
            gap = references[env].reference - references[env].random
            d = ps[ps["env_id"] == env]
            for setup, base in pairs:
                a, b = (seed_values(d[d["setup"] == name], "mean_return") / gap for name in (setup, base))
                a, b = a[np.isfinite(a)], b[np.isfinite(b)]  # a run without a finite value is left out
                if a.size and b.size:
                    t = welch_test(a, b, confidence)
                    rows.append(
                        {
                            "env_id": env,
                            "setup": setup,
                            "baseline": base,
                            "measure": measure,
                            "n_setup": a.size,
                            "n_baseline": b.size,
                            "diff": t.estimate,
                            "diff_low": t.ci_low,
                            "diff_high": t.ci_high,
                            "margin": margin,
                            "verdict": margin_verdict(t.ci_low, t.ci_high, margin),
                            "tost_p": tost(a, b, margin),
                        }
                    )
    return pd.DataFrame(rows, columns=EQUIVALENCE_COLUMNS)


def power_table(
    final: pd.DataFrame,
    setups: Sequence[Mapping[str, Any]],
    population: pd.DataFrame | None = None,
    margin: float = MARGIN,
    power: float = 0.8,
    envs: Sequence[str] | None = None,
    references: Mapping[str, ScoreReference] = SCORE_REFERENCES,
) -> pd.DataFrame:
    """Per environment and measure: the per-seed spread in gap units (the root mean of the setups'
    variances) and the seeds per setup that give the two-sided two-sample test ``power`` against a
    true difference of ``margin`` (:func:`collab.analysis.stats.seeds_for_power`)."""
    names = {str(s["name"]) for s in setups}
    rows = []
    for measure, ps in _per_run(final, population).items():
        for env in present_envs(ps, envs):
            if env not in references:
                continue
            gap = references[env].reference - references[env].random
            d = ps[(ps["env_id"] == env) & ps["setup"].isin(names)]
            var = d.groupby("setup")["mean_return"].var(ddof=1).dropna() / gap**2
            sd = float(np.sqrt(var.mean())) if len(var) else float("nan")
            rows.append(
                {
                    "env_id": env,
                    "measure": measure,
                    "setups": len(var),
                    "sd": sd,
                    "margin": margin,
                    "power": power,
                    "seeds": seeds_for_power(sd, margin, power),
                }
            )
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


def equivalence_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per measure and baseline: how many cells got each verdict."""
    if table.empty:
        return pd.DataFrame(columns=["measure", "baseline", "cells", *MARGIN_VERDICTS])
    counts = table.groupby(["measure", "baseline"])["verdict"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=list(MARGIN_VERDICTS), fill_value=0)
    counts.insert(0, "cells", counts.sum(axis=1))
    return counts.reset_index()
