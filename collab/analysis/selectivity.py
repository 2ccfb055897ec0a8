"""Selectivity of sharing: how often a sharing setup copies, from how many sources, and by how much
the source led the agent it replaced.

Per run of a strategy that copies parameters (:func:`collab.analysis.setups.sharing_strategy`), from
``sharing.csv`` (one row per share: ``source`` copied into ``target`` at the end of a round, with both
agents' recent mean training returns ``mean_source`` and ``mean_target`` at that moment) and
``curves.csv`` (the run's validation rounds, each one occasion to share):

- ``shares_per_round``: the run's shares / its rounds (its last validation round); at the paper's
  settings every agent but the leader copies it each round, n - 1 per round;
- ``copy_rate``: shares per round / n_agents, the fraction of the population replaced per round;
- ``sources``: the distinct agents copied from (1: one agent was the source of every share);
- ``gap``: the mean over the run's shares of mean_source - mean_target (return units);
- ``rel_gap``: the median over the run's shares of (mean_source - mean_target) / |mean_target|
  (shares with mean_target = 0 left out; the median because |mean_target| can be near 0 where returns
  cross it, as in Taxi).

Per environment and setup, each is the mean over runs (seeds) with its t-interval over runs; a run
without shares counts 0 shares and 0 sources, and has no gap.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from collab.analysis.io import RUN_KEYS, check_columns, paper_order
from collab.analysis.setups import sharing_strategies
from collab.analysis.stats import CONFIDENCE, mean_ci
from collab.results import atomic_write_csv, atomic_write_text, markdown_table

#: The per-run measures of :func:`selectivity`, each summarised by a mean and a t-interval over runs.
SELECTIVITY_MEASURES: tuple[str, ...] = ("shares_per_round", "copy_rate", "sources", "gap", "rel_gap")

#: The columns of :func:`run_selectivity`.
RUN_SELECTIVITY_COLUMNS: list[str] = [*RUN_KEYS, "n_agents", "rounds", "shares", *SELECTIVITY_MEASURES]


def _median_rel_gap(g: pd.DataFrame) -> float:
    """Median of (mean_source - mean_target) / |mean_target| over shares with mean_target != 0."""
    ok = g["mean_target"] != 0
    rel = (g.loc[ok, "mean_source"] - g.loc[ok, "mean_target"]) / g.loc[ok, "mean_target"].abs()
    return float(rel.median()) if rel.notna().any() else math.nan


def run_selectivity(sharing: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per run of a sharing strategy: n_agents, rounds, shares and the measures of the module docstring.

    The runs are those of ``curves`` (and ``sharing``) whose strategy shares (``sharing_strategy``);
    rounds = the run's last validation round in ``curves`` (NaN where ``curves`` lacks the run).
    """
    check_columns(sharing, "sharing.csv")
    check_columns(curves, "curves.csv")
    share_runs = sharing.loc[
        sharing["strategy"].isin(sharing_strategies(sharing["strategy"])), [*RUN_KEYS, "n_agents"]
    ]
    sc = curves[curves["strategy"].isin(sharing_strategies(curves["strategy"]))]
    rounds = sc.groupby(RUN_KEYS, sort=False).agg(n_agents=("n_agents", "first"), rounds=("round", "max"))
    runs = pd.concat([rounds.reset_index()[[*RUN_KEYS, "n_agents"]], share_runs]).drop_duplicates(RUN_KEYS)
    runs = runs.merge(rounds["rounds"].reset_index(), on=RUN_KEYS, how="left")
    if runs.empty:
        return pd.DataFrame(columns=RUN_SELECTIVITY_COLUMNS)
    sh = sharing.assign(_gap=sharing["mean_source"] - sharing["mean_target"])
    g = sh.groupby(RUN_KEYS, sort=False)
    per = pd.concat(
        [
            g.size().rename("shares"),
            g["source"].nunique().rename("sources"),
            g["_gap"].mean().rename("gap"),
            g[["mean_source", "mean_target"]].apply(_median_rel_gap).rename("rel_gap"),
        ],
        axis=1,
    ).reset_index()
    out = runs.merge(per, on=RUN_KEYS, how="left").fillna({"shares": 0, "sources": 0})
    out["shares"] = out["shares"].astype(int)
    out["sources"] = out["sources"].astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["shares_per_round"] = out["shares"] / out["rounds"]
        out["copy_rate"] = out["shares_per_round"] / out["n_agents"]
    out = out.sort_values(RUN_KEYS, kind="stable")
    return out[RUN_SELECTIVITY_COLUMNS].reset_index(drop=True)


def selectivity(
    sharing: pd.DataFrame,
    curves: pd.DataFrame,
    setups: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Selectivity of sharing per env_id and setup (env, then ``setups`` order), from :func:`run_selectivity`.

    Columns: env_id, setup, n_runs, n_agents, rounds (mean per run), n_shares (all runs), and for
    each of ``SELECTIVITY_MEASURES`` its mean over runs, ``<measure>_ci_low`` and
    ``<measure>_ci_high`` (t-interval over runs; NaN with fewer than two runs with a value).
    """
    per = run_selectivity(sharing, curves)
    cols = ["env_id", "setup", "n_runs", "n_agents", "rounds", "n_shares"]
    cols += [f"{m}{suffix}" for m in SELECTIVITY_MEASURES for suffix in ("", "_ci_low", "_ci_high")]
    rows = []
    for (env, setup), grp in per.groupby(["env_id", "setup"], sort=False):
        row: dict[str, object] = {
            "env_id": env,
            "setup": setup,
            "n_runs": len(grp),
            "n_agents": int(grp["n_agents"].max()),
            "rounds": float(grp["rounds"].mean()),
            "n_shares": int(grp["shares"].sum()),
        }
        for m in SELECTIVITY_MEASURES:
            v = grp[m].to_numpy(float)
            v = v[np.isfinite(v)]
            lo, hi = mean_ci(v, confidence=confidence)
            row |= {m: float(v.mean()) if v.size else math.nan, f"{m}_ci_low": lo, f"{m}_ci_high": hi}
        rows.append(row)
    return paper_order(pd.DataFrame(rows, columns=cols), setups=setups)


def save_selectivity(table: pd.DataFrame, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``selectivity.csv`` (full precision) and ``selectivity.md`` atomically."""
    out = Path(out_dir)
    paths = [out / "selectivity.csv", out / "selectivity.md"]
    atomic_write_csv(paths[0], table)
    atomic_write_text(paths[1], markdown_table(table, floatfmt=".2f"))
    return paths
