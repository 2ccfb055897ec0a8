"""Figures 1-3 and the share timeline as numbers: learning curves, convergence speed, variance, shares.

Figure 1: per validation round, the agent-mean validation return, mean over seeds with a t-interval
band. Figure 2: the episodes each run needs to reach 90% of its environment's reward range, measured
on the mean over a run's agents and on its best agent (runs that never reach it are censored, never
0). Figure 3: two spreads compared on equal numbers of values: within a run (between its agents) and
between seeds (of a run's result). Definitions in ``docs/analysis.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from collab.analysis.io import RUN_KEYS, check_columns, paper_order
from collab.analysis.setups import setup_order, sharing_strategies
from collab.analysis.stats import CONFIDENCE, bootstrap_ci, mean_ci, pair_spread, t_halfwidth
from collab.analysis.tables import per_seed_final
from collab.paper import CONVERGENCE_FRACTION, ENVS

#: How a run's agents are summarised per validation round: the agents' mean, or the best agent.
AGENT_MEASURES: dict[str, str] = {"agent mean": "mean", "best agent": "max"}

# --------------------------------------------------------------------------------------------
# Figure 1: learning curves


def run_curves(curves: pd.DataFrame, x: str = "episode", agent_agg: str = "mean") -> pd.DataFrame:
    """Per run and validation round: ``x`` and the val_return aggregated over the run's agents.

    Returns env_id, setup, seed, round, x, val_return (``agent_agg``: 'mean' or 'max' over agents).
    """
    check_columns(curves, "curves.csv")
    if x not in ("episode", "total_episodes", "env_steps"):
        raise ValueError(f"x={x!r} is not allowed: 'episode', 'total_episodes' or 'env_steps'")
    if agent_agg not in ("mean", "max"):
        raise ValueError(f"agent_agg={agent_agg!r} is not allowed: 'mean' or 'max'")
    g = curves.groupby([*RUN_KEYS, "round"], sort=True)
    out = g.agg(x=(x, "max"), val_return=("val_return", agent_agg)).reset_index()
    return out


def learning_curves(
    curves: pd.DataFrame,
    x: str = "episode",
    confidence: float = CONFIDENCE,
    agent_agg: str = "mean",
    setups: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Figure 1 data: per env_id, setup and validation round: mean over seeds of the agent-mean val_return.

    Per run, val_return is first averaged over agents at each validation round (``agent_agg='max'``:
    the best agent); then, per round, mean and t-interval over seeds. Seeds are matched by round,
    not by ``x``: an agent may end a round a few episodes over its target, so the same round can have
    a slightly different ``x`` in each seed; ``x`` is the mean over seeds of the round's ``x``
    (per-agent ``episode`` by default, or ``total_episodes``). Rows in env, then ``setups`` order
    (:func:`collab.analysis.io.paper_order`). Returns env_id, setup, round, x, n_seeds, mean, ci_low,
    ci_high.
    """
    rc = run_curves(curves, x, agent_agg)
    g = rc.groupby(["env_id", "setup", "round"], sort=True)
    out = g.agg(
        x=("x", "mean"), n_seeds=("val_return", "size"), mean=("val_return", "mean"), sd=("val_return", "std")
    ).reset_index()
    half = t_halfwidth(out["sd"].to_numpy(), out["n_seeds"].to_numpy(), confidence)
    out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    cols = ["env_id", "setup", "round", "x", "n_seeds", "mean", "ci_low", "ci_high"]
    return paper_order(out[cols], extra=["round"], setups=setups)


def curve_snapshot(
    curve_stats: pd.DataFrame, n_points: int = 5, setups: Sequence[str] | None = None
) -> pd.DataFrame:
    """A few evenly spaced points of each learning curve (for printing beside Figure 1)."""
    parts = []
    for _, grp in curve_stats.groupby(["env_id", "setup"], sort=False):
        grp = grp.sort_values("x")
        pos = np.unique(np.linspace(0, len(grp) - 1, min(n_points, len(grp))).round().astype(int))
        parts.append(grp.iloc[pos])
    return paper_order(pd.concat(parts), extra=["x"], setups=setups) if parts else curve_stats.iloc[0:0]


# --------------------------------------------------------------------------------------------
# Figure 2: convergence speed


def convergence_thresholds(
    curves: pd.DataFrame, x: str = "episode", fraction: float = CONVERGENCE_FRACTION, agent_agg: str = "mean"
) -> pd.DataFrame:
    """Per environment: the reward level counted as "90% of the maximum reward".

    Over the seed-mean learning curves (val_return aggregated over a run's agents by ``agent_agg``,
    mean over seeds per validation round, as :func:`learning_curves`) of *all* setups of the
    environment, up to the population setups' budget: lo = their minimum, hi = their maximum,
    threshold = lo + fraction*(hi - lo). A sequential setup's single agent (strategy 'sequential')
    trains n x k episodes; only its rounds within the longest other setup's ``x`` count, so that the
    level is one the other setups could reach in their budget (without any other setup, all of its
    rounds count).
    The same threshold applies to every setup of the environment, and it is sign-safe (0.9*max would
    be meaningless for negative rewards). Returns env_id, lo, hi, threshold.
    """
    rc = run_curves(curves, x, agent_agg)
    seed_mean = rc.groupby(["env_id", "setup", "round"]).agg(
        val_return=("val_return", "mean"), x=("x", "mean")
    )
    seed_mean = seed_mean.reset_index()
    sequential = set(curves.loc[curves["strategy"] == "sequential", "setup"]) | {"sequential"}
    parts = []
    for _, grp in seed_mean.groupby("env_id", sort=False):
        pop = grp.loc[~grp["setup"].isin(sequential), "x"]
        parts.append(grp[grp["x"] <= pop.max()] if len(pop) else grp)
    seed_mean = pd.concat(parts)
    g = seed_mean.groupby("env_id")["val_return"]
    out = pd.DataFrame({"lo": g.min(), "hi": g.max()}).reset_index()
    out["threshold"] = out["lo"] + fraction * (out["hi"] - out["lo"])
    rank = {e: i for i, e in enumerate(ENVS)}
    out = out.assign(_r=out["env_id"].map(lambda e: rank.get(e, len(rank))))
    return out.sort_values(["_r", "env_id"]).drop(columns="_r").reset_index(drop=True)


def episodes_to_threshold(
    curves: pd.DataFrame,
    thresholds: pd.DataFrame | None = None,
    x: str = "episode",
    fraction: float = CONVERGENCE_FRACTION,
    agent_agg: str = "mean",
    setups: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per run: the first ``x`` at which its agent-mean (``agent_agg='max'``: best-agent) val_return
    reaches the env's threshold (from :func:`convergence_thresholds` with the same ``agent_agg``).

    Returns env_id, setup, seed, measure ('agent mean' or 'best agent'), threshold, episodes (NaN:
    not reached — censored, never 0), reached (bool) and budget (the run's last ``x``: where the
    censoring happened).
    """
    rc = run_curves(curves, x, agent_agg)
    thr = thresholds if thresholds is not None else convergence_thresholds(curves, x, fraction, agent_agg)
    rc = rc.merge(thr[["env_id", "threshold"]], on="env_id", how="left")
    measure = {v: k for k, v in AGENT_MEASURES.items()}[agent_agg]
    rows = []
    for (env, setup, seed), grp in rc.groupby(RUN_KEYS, sort=True):
        grp = grp.sort_values("x")
        hit = grp.loc[grp["val_return"] >= grp["threshold"], "x"]
        rows.append(
            {
                "env_id": env,
                "setup": setup,
                "seed": seed,
                "measure": measure,
                "threshold": float(grp["threshold"].iloc[0]),
                "episodes": float(hit.iloc[0]) if len(hit) else math.nan,
                "reached": bool(len(hit)),
                "budget": float(grp["x"].max()),
            }
        )
    cols = ["env_id", "setup", "seed", "measure", "threshold", "episodes", "reached", "budget"]
    return paper_order(pd.DataFrame(rows, columns=cols), extra=["seed"], setups=setups)


def convergence_both(
    curves: pd.DataFrame, x: str = "episode", setups: Sequence[str] | None = None
) -> pd.DataFrame:
    """:func:`episodes_to_threshold` by the agent mean and by the best agent, one frame (``measure``)."""
    parts = [
        episodes_to_threshold(curves, x=x, agent_agg=agg, setups=setups) for agg in AGENT_MEASURES.values()
    ]
    return pd.concat(parts, ignore_index=True)


def convergence_summary(
    conv: pd.DataFrame, confidence: float = CONFIDENCE, setups: Sequence[str] | None = None
) -> pd.DataFrame:
    """Figure 2 data per env_id and setup (and ``measure``, where given), from :func:`episodes_to_threshold`.

    n_runs, n_reached, frac_reached; mean_reached with t-interval over the runs that reached the
    threshold (NaN when none did, undefined with one); restricted_mean = mean of min(episodes,
    budget) over all runs (a not-reached run counts as its budget: a lower bound on its true time)
    with its t-interval; ``censored``: some run did not reach it, so the restricted mean is only a
    lower bound.
    """
    keys = ["env_id", "setup"] + (["measure"] if "measure" in conv.columns else [])
    rows = []
    for key, grp in conv.groupby(keys, sort=False):
        reached = grp.loc[grp["reached"], "episodes"].to_numpy(float)
        restricted = grp["episodes"].fillna(grp["budget"]).to_numpy(float)
        lo, hi = mean_ci(reached, confidence=confidence)
        rlo, rhi = mean_ci(restricted, confidence=confidence)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "n_runs": len(grp),
                "n_reached": int(grp["reached"].sum()),
                "frac_reached": float(grp["reached"].mean()),
                "mean_reached": float(reached.mean()) if reached.size else math.nan,
                "ci_low": lo,
                "ci_high": hi,
                "restricted_mean": float(restricted.mean()),
                "restricted_ci_low": rlo,
                "restricted_ci_high": rhi,
                "censored": bool(not grp["reached"].all()),
            }
        )
    out = pd.DataFrame(rows)
    if "measure" in keys and not out.empty:
        rank = {m: i for i, m in enumerate(AGENT_MEASURES)}
        out = out.assign(_m=out["measure"].map(rank)).sort_values("_m", kind="stable").drop(columns="_m")
        parts = [paper_order(g, setups=setups) for _, g in out.groupby("measure", sort=False)]
        return pd.concat(parts, ignore_index=True)
    return paper_order(out, setups=setups)


# --------------------------------------------------------------------------------------------
# Figure 3: spread within a run and between seeds


def final_agent_returns(curves: pd.DataFrame) -> pd.DataFrame:
    """The final validation return of every agent of every run (its val_return at its last round).

    Returns env_id, setup, seed, agent, val_return.
    """
    check_columns(curves, "curves.csv")
    last = curves.sort_values("round").groupby([*RUN_KEYS, "agent"], sort=True).tail(1)
    return last[[*RUN_KEYS, "agent", "val_return"]].sort_values([*RUN_KEYS, "agent"]).reset_index(drop=True)


def run_spreads(curves: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    """Per run: ``within`` (:func:`pair_spread` of its agents' final validation returns; NaN for one
    agent), n_agents, and ``result`` (its Table 1 value: the selected checkpoint's mean evaluation)."""
    fa = final_agent_returns(curves)
    within = (
        fa.groupby(RUN_KEYS, sort=True)["val_return"].agg(within=pair_spread, n_agents="size").reset_index()
    )
    result = per_seed_final(final)[[*RUN_KEYS, "mean_return"]].rename(columns={"mean_return": "result"})
    return within.merge(result, on=RUN_KEYS, how="outer")


def performance_variance(
    curves: pd.DataFrame,
    final: pd.DataFrame,
    confidence: float = CONFIDENCE,
    setups: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Figure 3 data per env_id and setup: the spread within a run and between seeds, on equal numbers.

    ``within``: mean over seeds of each run's :func:`pair_spread` (the expected sd of two of its
    agents' final validation returns), with a t-interval over seeds (NaN for sequential's single
    agent). ``between``: the sample sd over seeds of a run's result (its Table 1 value), with a
    percentile bootstrap interval (scipy); every setup has one value per seed. Returns env_id, setup, n_seeds,
    n_agents, within, within_ci_low, within_ci_high, between, between_ci_low, between_ci_high.
    """
    rs = run_spreads(curves, final)
    rows = []
    for (env, setup), grp in rs.groupby(["env_id", "setup"], sort=False):
        w = grp["within"].dropna().to_numpy(float)
        r = grp["result"].dropna().to_numpy(float)
        wlo, whi = mean_ci(w, confidence=confidence)
        between = float(r.std(ddof=1)) if r.size >= 2 else math.nan
        blo, bhi = bootstrap_ci(r, stat=lambda v, axis=-1: v.std(axis=axis, ddof=1), confidence=confidence)
        rows.append(
            {
                "env_id": env,
                "setup": setup,
                "n_seeds": len(grp),
                "n_agents": int(grp["n_agents"].max()) if grp["n_agents"].notna().any() else 0,
                "within": float(w.mean()) if w.size else math.nan,
                "within_ci_low": wlo,
                "within_ci_high": whi,
                "between": between,
                "between_ci_low": blo,
                "between_ci_high": bhi,
            }
        )
    return paper_order(pd.DataFrame(rows), setups=setups)


# --------------------------------------------------------------------------------------------
# Share timeline


def share_timeline(
    sharing: pd.DataFrame, runs: pd.DataFrame | None = None, setups: Sequence[str] | None = None
) -> pd.DataFrame:
    """Who copied whom, when, for one sharing run per environment.

    The run shown is, per env, the one with the most agents, then of the first setup in ``setups``'
    order (the paper's five first), then the lowest seed among the runs that shared (or those given
    in ``runs``: env_id, setup, seed). Returns env_id, setup, n_agents, seed, round, episode, source,
    target, ucb_source, ucb_target.
    """
    check_columns(sharing, "sharing.csv")
    cols = ["env_id", "setup", "n_agents", "seed", "round", "episode", "source", "target"]
    cols += ["ucb_source", "ucb_target"]
    if sharing.empty:
        return pd.DataFrame(columns=cols)
    if runs is None:
        rank = {s: i for i, s in enumerate(setup_order(sharing["setup"], setups))}
        firsts = sharing.assign(_s=sharing["setup"].map(rank)).sort_values(
            ["env_id", "n_agents", "_s", "seed"], ascending=[True, False, True, True], kind="stable"
        )
        runs = firsts.groupby("env_id", sort=False).head(1)[RUN_KEYS]
    picked = sharing.merge(runs[RUN_KEYS].drop_duplicates(), on=RUN_KEYS)
    return paper_order(picked[cols], extra=["round", "target", "source"], setups=setups)


def share_counts(
    sharing: pd.DataFrame, final: pd.DataFrame | None = None, setups: Sequence[str] | None = None
) -> pd.DataFrame:
    """Shares per run, per env_id and setup: mean over seeds, min and max (runs of a sharing strategy,
    a sharing strategy, without shares count 0 when ``final`` lists them), and ``mean_sources``:
    the distinct agents copied from per run (mean over seeds; 1 = the same agent was the source of
    every share of the run)."""
    check_columns(sharing, "sharing.csv")
    g_run = sharing.groupby(RUN_KEYS)
    per_run = pd.concat([g_run.size().rename("shares"), g_run["source"].nunique().rename("sources")], axis=1)
    per_run = per_run.reset_index()
    if final is not None:
        runs = final.loc[
            final["strategy"].isin(sharing_strategies(final["strategy"])), RUN_KEYS
        ].drop_duplicates()
        per_run = runs.merge(per_run, on=RUN_KEYS, how="left").fillna({"shares": 0, "sources": 0})
    cols = ["env_id", "setup", "n_runs", "mean_shares", "min_shares", "max_shares", "mean_sources"]
    if per_run.empty:
        return pd.DataFrame(columns=cols)
    g = per_run.groupby(["env_id", "setup"])
    out = pd.DataFrame(
        {
            "n_runs": g.size(),
            "mean_shares": g["shares"].mean(),
            "min_shares": g["shares"].min(),
            "max_shares": g["shares"].max(),
            "mean_sources": g["sources"].mean(),
        }
    ).reset_index()
    return paper_order(out[cols], setups=setups)
