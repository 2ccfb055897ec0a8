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

from collab.analysis.protocol import flag_of, flagged_rows
from collab.analysis.setups import PAPER_SETTING, shares_agents
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
    "margin", "verdict", "tost_p", "flag",
]  # fmt: skip
POWER_COLUMNS = ["env_id", "measure", "setups", "sd", "margin", "power", "seeds", "flag"]


def _per_run(final: pd.DataFrame, population: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    per_run = {"selected": per_seed_final(final)}
    if population is not None and len(population):
        per_run["population"] = population_per_run(population)
    return per_run


def env_equivalence(
    final: pd.DataFrame,
    setups: Sequence[Mapping[str, Any]],
    population: pd.DataFrame | None = None,
    margin: float = MARGIN,
    envs: Sequence[str] | None = None,
    references: Mapping[str, ScoreReference] = SCORE_REFERENCES,
    confidence: float = CONFIDENCE,
    flagged: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per environment with a reference, measure and (setup, baseline) of :data:`BASELINES`
    where both ran (a pair once, in its first direction): ``diff`` = (mean(setup) - mean(baseline)) /
    gap with Welch's interval [diff_low, diff_high] (the largest loss and gain not excluded), the
    verdict against ``margin`` and the TOST p-value. Measures: ``selected`` (final.csv) and
    ``population`` (population_eval.csv). ``flagged``: {env_id: reason} of the environments whose
    selected agent is a tie-break (:func:`collab.analysis.tie_broken_envs`); their ``selected`` rows
    carry ``flag`` = ``tie-break`` (others: empty) and are not counted by :func:`equivalence_summary`."""
    names = [str(s["name"]) for s in setups]
    pairs: list[tuple[str, str]] = []
    for base in BASELINES:  # a pair compared once, in its first direction
        for setup in names:
            if setup != base and not shares_agents(setup, base) and (base, setup) not in pairs:
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
                            "flag": flag_of(measure, env, flagged),
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
    flagged: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per environment and measure: the per-seed spread in gap units (the root mean of the setups'
    variances) and the seeds per setup that give the two-sided two-sample test ``power`` against a
    true difference of ``margin`` (:func:`collab.analysis.stats.seeds_for_power`); ``flag`` as in
    :func:`env_equivalence`."""
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
                    "flag": flag_of(measure, env, flagged),
                }
            )
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


def equivalence_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per measure and baseline: how many cells got each verdict, and ``flagged``: the flagged cells,
    left out of the counts."""
    cols = ["measure", "baseline", "cells", *MARGIN_VERDICTS, "flagged"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    is_flagged = flagged_rows(table)
    keys = ["measure", "baseline"]
    counts = table[~is_flagged].groupby(keys)["verdict"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=list(MARGIN_VERDICTS), fill_value=0)
    counts.insert(0, "cells", counts.sum(axis=1))
    n_flagged = is_flagged.groupby([table[k] for k in keys]).sum()
    counts = counts.reindex(n_flagged.index, fill_value=0)
    counts["flagged"] = n_flagged.astype(int)
    return counts.reset_index()[cols]


def _pct(v: float) -> str:
    return f"{100 * v:+.1f}%"


def equivalence_sentences(table: pd.DataFrame) -> str:
    """:func:`env_equivalence` in words, per measure and baseline (flagged cells counted apart): the
    verdicts against the margin, the cells decided either way, and the gain and loss that every
    interval excludes (beyond the highest upper and the lowest lower end), in % of the gap."""
    titles = {"selected": "selected agent", "population": "all final agents"}  # study.MEASURE_TITLES
    lines = []
    for (measure, baseline), g in table.groupby(["measure", "baseline"], sort=False):
        flagged = flagged_rows(g)
        left_out, g = g[flagged], g[~flagged]
        head = f"- **{titles.get(measure, measure)}, against {baseline}** ({len(g)} cells"
        if len(left_out):
            envs = ", ".join(dict.fromkeys(left_out["env_id"]))
            head += f"; {len(left_out)} on {envs} flagged and left out"
        head += ")"
        if g.empty:
            lines.append(head + ".")
            continue
        margin = float(g["margin"].iloc[0])
        parts = []
        counts = g["verdict"].value_counts()
        n_eq = int(counts.get("equivalent", 0))
        parts.append(f"equivalent within ±{100 * margin:.0f}% of the gap in {n_eq}")
        for word in ("better", "worse"):
            hit = g[g["verdict"] == word]
            if len(hit):
                cells = "; ".join(
                    f"{r.setup} on {r.env_id} {_pct(r.diff)} [{_pct(r.diff_low)}, {_pct(r.diff_high)}]"
                    for r in hit.itertuples()
                )
                parts.append(f"{word} in {len(hit)} ({cells})")
        parts.append(f"inconclusive in {int(counts.get('inconclusive', 0))}")
        hi, lo = g.loc[g["diff_high"].idxmax()], g.loc[g["diff_low"].idxmin()]
        parts.append(
            f"every interval excludes a gain above {_pct(hi['diff_high'])} of the gap and a loss beyond "
            f"{_pct(lo['diff_low'])} (the widest: {hi['setup']} on {hi['env_id']}, {lo['setup']} on "
            f"{lo['env_id']})"
        )
        lines.append(head + ": " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


BOUND_COLUMNS = ["measure", "baseline", "setup", "envs", "equivalent", "better", "worse", "inconclusive"]
BOUND_COLUMNS += ["gain_bound", "loss_bound"]


def equivalence_bounds(table: pd.DataFrame) -> pd.DataFrame:
    """Per measure, baseline and setup, over its environments (flagged cells left out): the verdict
    counts, ``gain_bound``, the highest upper end of its intervals (no environment's interval allows
    a larger gain), and ``loss_bound``, the lowest lower end, in units of the gap."""
    table = table[~flagged_rows(table)]
    rows = []
    for (measure, baseline, setup), g in table.groupby(["measure", "baseline", "setup"], sort=False):
        counts = g["verdict"].value_counts()
        rows.append(
            {
                "measure": measure,
                "baseline": baseline,
                "setup": setup,
                "envs": len(g),
                **{v: int(counts.get(v, 0)) for v in MARGIN_VERDICTS},
                "gain_bound": float(g["diff_high"].max()),
                "loss_bound": float(g["diff_low"].min()),
            }
        )
    return pd.DataFrame(rows, columns=BOUND_COLUMNS)
