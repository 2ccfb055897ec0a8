"""Per-environment verdicts: each setup against its baselines, by the selected agent and by all agents.

For every environment and every pair (comparison, setup, baseline) of :func:`study_pairs` (the
matched-compute independent baseline, the paper's setting ``collaborative_8``, and, for collaborative
setups, the first PBT setup), the difference of the two setups' mean return over seeds with Welch's
95% interval and p-value (the test's level measured at 5 and 10 seeds in ``benchmarks/coverage.py``),
Holm's adjustment in two families, stated because they can disagree: all cells of one measure
(every question the study asks of it) and the cells of one measure and comparison (one question, e.g.
matched compute), a verdict (``better``, ``worse``, ``inconclusive``)
and the seeds per setup that would decide an inconclusive cell if its difference and spread stayed
as measured (:func:`collab.analysis.stats.seeds_to_decide`).

Two measures of a run: ``selected``, the mean final evaluation return of its selected agent (Table
1's per-seed value), and ``population``, the mean return of all its final agents re-evaluated
(``population_eval.csv``; selection-free). :func:`extreme_runs` names the runs whose selected agent
scored highest and lowest per environment (the agents ``agent_gifs: best_worst`` records). Where an
environment's selection was a tie-break (:func:`collab.analysis.tie_broken_envs`: Taxi), its
selected-agent cells are flagged and kept out of the Holm families and the counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from collab.analysis.aggregate import baseline_pairs
from collab.analysis.protocol import TIE_BREAK, flagged_rows
from collab.analysis.setups import PAPER_SETTING, sharing_strategy
from collab.analysis.stats import CONFIDENCE, holm, seed_values, seeds_to_decide, welch_test
from collab.analysis.tables import per_seed_final, population_per_run, present_envs
from collab.strategies import role

#: The two measures of a run the verdicts compare.
MEASURES = ("selected", "population")
#: How the tables and sentences name the measures.
MEASURE_TITLES = {"selected": "selected agent", "population": "all final agents"}
SUMMARY_COLUMNS = [
    "measure", "comparison", "cells", "better", "worse", "inconclusive", "better_holm", "worse_holm",
    "flagged",
]  # fmt: skip
VERDICT_COLUMNS = [
    "measure", "env_id", "comparison", "setup", "baseline", "n_setup", "n_baseline", "setup_mean",
    "baseline_mean", "difference", "ci_low", "ci_high", "p", "p_holm", "verdict", "verdict_holm",
    "p_holm_comparison", "verdict_holm_comparison", "seeds_to_decide", "flag",
]  # fmt: skip


def study_pairs(
    setups: Sequence[Mapping[str, Any]], reference: str | None = PAPER_SETTING
) -> list[tuple[str, str, str]]:
    """:func:`collab.analysis.aggregate.baseline_pairs` (matched compute, then ``vs <reference>``),
    then every other sharing setup against the first setup whose strategy has the role
    ``sharing_baseline`` (PBT; ``vs <it>``), where there is one; a pair already listed the other way
    round is left out."""
    pairs = baseline_pairs(setups, reference)
    baselines = [str(s["name"]) for s in setups if role(str(s.get("strategy"))) == "sharing_baseline"]
    if baselines:
        methods = [
            str(s["name"])
            for s in setups
            if sharing_strategy(s.get("strategy")) and str(s["name"]) not in baselines
        ]
        pairs += [(f"vs {baselines[0]}", name, baselines[0]) for name in methods]
    out: list[tuple[str, str, str]] = []
    seen: set[frozenset[str]] = set()
    for comparison, setup, base in pairs:  # a pair compared once, in its first direction
        if frozenset((setup, base)) not in seen:
            seen.add(frozenset((setup, base)))
            out.append((comparison, setup, base))
    return out


def _verdict(lo: float, hi: float) -> str:
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "inconclusive"


def env_verdicts(
    final: pd.DataFrame,
    setups: Sequence[Mapping[str, Any]],
    population: pd.DataFrame | None = None,
    envs: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
    flagged: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per measure, environment and pair of :func:`study_pairs` whose two setups both ran there.

    ``final``: final.csv rows; ``setups``: the profile's setups (``ProfileData.setup_info``);
    ``population``: :func:`collab.analysis.load_population_eval` (None or empty: no ``population``
    rows). ``difference`` = setup_mean - baseline_mean with Welch's interval [ci_low, ci_high] and
    p-value; ``p_holm``: Holm's adjustment over the rows of the same measure that have a p-value (the
    family: every question the study asks of that measure); ``p_holm_comparison``: over the rows of
    the same measure and comparison (the family: one question, e.g. the matched-compute cells);
    ``verdict``: better / worse where the interval excludes 0, else inconclusive (also with fewer than
    two seeds on a side); ``verdict_holm``, ``verdict_holm_comparison``: the same at an adjusted
    p < 1 - confidence; ``seeds_to_decide``:
    seeds per setup at which the interval would exclude 0 (the present count where it already does).
    ``flagged``: {env_id: reason} of the environments whose selected agent is a tie-break
    (:func:`collab.analysis.tie_broken_envs`): their ``selected`` rows get ``flag`` =
    :data:`collab.analysis.protocol.TIE_BREAK` and stay out of both Holm families (p_holm NaN,
    verdict_holm ``flagged``); every other row has an empty ``flag``.
    """
    per_run = {"selected": per_seed_final(final)}
    if population is not None and len(population):
        per_run["population"] = population_per_run(population)
    pairs = study_pairs(setups)
    parts = []
    for measure, ps in per_run.items():
        rows = []
        for env in present_envs(ps, envs):
            d = ps[ps["env_id"] == env]
            for comparison, setup, base in pairs:
                a = seed_values(d[d["setup"] == setup], "mean_return")
                b = seed_values(d[d["setup"] == base], "mean_return")
                a, b = a[np.isfinite(a)], b[np.isfinite(b)]  # a run without a finite value is left out
                if a.size == 0 or b.size == 0:
                    continue
                t = welch_test(a, b, confidence)
                n = min(a.size, b.size)
                decide = seeds_to_decide(t.estimate, t.ci_low, t.ci_high, 0.0, n, confidence)
                rows.append(
                    {
                        "measure": measure,
                        "env_id": env,
                        "comparison": comparison,
                        "setup": setup,
                        "baseline": base,
                        "n_setup": a.size,
                        "n_baseline": b.size,
                        "setup_mean": float(a.mean()),
                        "baseline_mean": float(b.mean()),
                        "difference": t.estimate,
                        "ci_low": t.ci_low,
                        "ci_high": t.ci_high,
                        "p": t.p_value,
                        "seeds_to_decide": decide,
                    }
                )
        if not rows:
            continue
        df = pd.DataFrame(rows)
        flagged_envs = list(flagged or {}) if measure == "selected" else []
        df["flag"] = np.where(df["env_id"].isin(flagged_envs), TIE_BREAK, "")
        kept = df["flag"] == ""
        df["p_holm"] = np.nan
        df.loc[kept, "p_holm"] = holm(df.loc[kept, "p"])
        df["p_holm_comparison"] = np.nan
        by_comparison = df[kept].groupby("comparison", sort=False)["p"]
        df.loc[kept, "p_holm_comparison"] = by_comparison.transform(lambda p: holm(p))
        df["verdict"] = [_verdict(lo, hi) for lo, hi in zip(df["ci_low"], df["ci_high"], strict=True)]
        for col, adjusted in (("verdict_holm", "p_holm"), ("verdict_holm_comparison", "p_holm_comparison")):
            sig = df[adjusted] < 1 - confidence
            word = np.where(sig, np.where(df["difference"] > 0, "better", "worse"), "inconclusive")
            df[col] = np.where(kept, word, "flagged")
        parts.append(df)
    if not parts:
        return pd.DataFrame(columns=VERDICT_COLUMNS)
    return pd.concat(parts, ignore_index=True)[VERDICT_COLUMNS]


def _cell(row: pd.Series) -> str:
    if math.isnan(row["ci_low"]):
        return f"{row['difference']:+.1f} [n/a]"
    word = {"better": " **better**", "worse": " **worse**"}.get(row["verdict"], "")
    holm_mark = "†" if row["verdict_holm"] in ("better", "worse") else ""
    flag = f" ({row['flag']})" if row.get("flag", "") else ""
    return f"{row['difference']:+.1f} [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]{word}{holm_mark}{flag}"


def verdict_matrix(table: pd.DataFrame, measure: str = "selected") -> pd.DataFrame:
    """:func:`env_verdicts` of one measure as a matrix: a row per (comparison, setup), a column per
    environment, cells 'difference [ci_low, ci_high]' with **better** / **worse** where the interval
    excludes 0, † where the verdict survives Holm's adjustment and the flag of a flagged cell
    (``(tie-break)``: not in the Holm families)."""
    d = table[table["measure"] == measure]
    if d.empty:
        return pd.DataFrame(columns=["comparison", "setup"])
    envs = list(dict.fromkeys(d["env_id"]))
    rows = []
    for (comparison, setup), g in d.groupby(["comparison", "setup"], sort=False):
        row = {"comparison": comparison, "setup": setup}
        for env in envs:
            e = g[g["env_id"] == env]
            row[env] = _cell(e.iloc[0]) if len(e) else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=["comparison", "setup", *envs])


def verdict_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Counts per measure and comparison: cells, better, worse, inconclusive (at 95% per cell and after
    Holm), and ``flagged``: cells left out of all these counts (a flagged environment's selected
    agent). The forward-looking number is the power table's (:func:`collab.analysis.power_table`),
    not the seeds an observed difference would take (``seeds_to_decide`` stays in the cell table)."""
    rows = []
    for (measure, comparison), g in table.groupby(["measure", "comparison"], sort=False):
        n_flagged = int(flagged_rows(g).sum())
        g = g[~flagged_rows(g)]
        rows.append(
            {
                "measure": measure,
                "comparison": comparison,
                "cells": len(g),
                "better": int((g["verdict"] == "better").sum()),
                "worse": int((g["verdict"] == "worse").sum()),
                "inconclusive": int((g["verdict"] == "inconclusive").sum()),
                "better_holm": int((g["verdict_holm"] == "better").sum()),
                "worse_holm": int((g["verdict_holm"] == "worse").sum()),
                "flagged": n_flagged,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def holm_disagreements(table: pd.DataFrame) -> pd.DataFrame:
    """The cells of :func:`env_verdicts` whose verdict differs between the two Holm families (all
    cells of the measure, ``p_holm``; the cells of its comparison, ``p_holm_comparison``): measure,
    env_id, comparison, setup, baseline, difference, p, both adjusted p-values and both verdicts."""
    cols = ["measure", "env_id", "comparison", "setup", "baseline", "difference", "p", "p_holm"]
    cols += ["verdict_holm", "p_holm_comparison", "verdict_holm_comparison"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    d = table[table["verdict_holm"] != table["verdict_holm_comparison"]]
    return d[cols].reset_index(drop=True)


def _cells(g: pd.DataFrame) -> str:
    return "; ".join(
        f"{r.setup} vs {r.baseline} on {r.env_id} ({r.difference:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}])"
        for r in g.itertuples()
    )


def verdict_sentences(table: pd.DataFrame) -> str:
    """:func:`env_verdicts` in words: per measure and comparison, the cells decided either way (with
    difference and interval), how many are not, and which decisions survive Holm's adjustment;
    flagged cells are counted apart and left out."""
    lines = []
    for (measure, comparison), g in table.groupby(["measure", "comparison"], sort=False):
        left_out = g[flagged_rows(g)]
        g = g[~flagged_rows(g)]
        head = f"- **{MEASURE_TITLES.get(measure, measure)}, {comparison}** ({len(g)} cells"
        if len(left_out):
            envs = ", ".join(dict.fromkeys(left_out["env_id"]))
            head += f"; {len(left_out)} more on {envs} left out, flagged as a tie-break"
        head += "):"
        parts = []
        for word in ("better", "worse"):
            hit = g[g["verdict"] == word]
            if len(hit):
                parts.append(f"{word} in {len(hit)}: {_cells(hit)}")
        open_cells = g[g["verdict"] == "inconclusive"]
        if len(open_cells):
            parts.append(f"{len(open_cells)} inconclusive")
        holm_hits = g[g["verdict_holm"] != "inconclusive"]
        holm = (
            "after Holm's adjustment: " + _cells(holm_hits) + " remain"
            if len(holm_hits)
            else "none survives Holm's adjustment"
        )
        if len(g) > len(open_cells):
            parts.append(holm)
        lines.append(head + " " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def extreme_runs(final: pd.DataFrame, envs: Sequence[str] | None = None) -> pd.DataFrame:
    """Per environment, the runs whose selected agent had the highest (``best``) and the lowest
    (``worst``) mean final evaluation return (ties: the first by setup name, then seed). Environments
    without a finite value are left out. Returns env_id, which, setup, seed, mean_return."""
    ps = per_seed_final(final)
    ps = ps[np.isfinite(ps["mean_return"])]
    rows = []
    for env in present_envs(ps, envs):
        d = ps[ps["env_id"] == env].reset_index(drop=True)
        if d.empty:
            continue
        for which, i in (("best", d["mean_return"].idxmax()), ("worst", d["mean_return"].idxmin())):
            r = d.loc[i]
            rows.append({"env_id": env, "which": which, "setup": r["setup"], "seed": int(r["seed"]),
                         "mean_return": float(r["mean_return"])})  # fmt: skip
    return pd.DataFrame(rows, columns=["env_id", "which", "setup", "seed", "mean_return"])
