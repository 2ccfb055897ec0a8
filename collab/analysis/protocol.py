"""The evaluation protocol, measured: how each run's selected checkpoint was chosen, when that choice
is only a tie-break, and how precisely one evaluation scores a run.

- :func:`selection_check`: the winner's curse. The selected checkpoint is the best of many (agents x
  rounds) on a few validation episodes, so its validation return overestimates its evaluation; with
  re-selection (``reselect_top``: ``reselection.csv``), also what the fresh episodes said of it.
- :func:`selection_ties`, :func:`tie_broken_envs`: where a run's best validation return is shared by
  more checkpoints than selection compares on fresh episodes (1 without re-selection), the choice among
  them is a tie-break (the earliest wins), not a measurement. An environment where that is so in most
  runs (Taxi: 5 fixed validation start states and integer returns) has its selected-agent measure
  *flagged*: its cells are reported with the flag and left out of the aggregate metrics, the Holm
  families and the check of the paper's claims (:func:`without_flagged`); its selection-free measure
  (all final agents) is not affected.
- :func:`evaluation_noise`: how well two evaluations of the same runs agree, across the runs of an
  environment: two evaluations of the paper's 10 episodes, two halves of the whole evaluation, and the
  whole evaluation's reliability projected from its halves (Spearman-Brown).
- :func:`table1_episodes`: Table 1 by the paper's 10 episodes (the first 10: episode i is seeded the
  same whatever the count) beside the whole evaluation and all final agents re-evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from collab.analysis.io import RUN_KEYS, check_columns, paper_order
from collab.analysis.tables import first_episodes, present_envs, table1, table1_population
from collab.paper import FAILURE_RETURNS

#: The flag of an environment whose selected checkpoint is a tie-break (:func:`tie_broken_envs`).
TIE_BREAK = "tie-break"
#: The note of a claim cell left out because its environment's selection was a tie-break.
LEFT_OUT = f"left out: {TIE_BREAK}"
#: The paper's number of final evaluation episodes.
PAPER_EPISODES = 10

TIE_COLUMNS = ["env_id", "runs", "tie_broken", "median_tied", "candidates", "flagged", "reason"]
NOISE_COLUMNS = ["env_id", "measure", "runs", "n_episodes", "r_10", "r_half", "reliability"]
EPISODES_COLUMNS = [
    "env_id", "setup", "n_seeds", "n_episodes", "first_mean", "first_ci_low", "first_ci_high", "all_mean",
    "all_ci_low", "all_ci_high", "population_episodes", "population_mean", "population_ci_low",
    "population_ci_high",
]  # fmt: skip


def _reselected(reselection: pd.DataFrame) -> pd.DataFrame:
    """Per run: the selected candidate's index and fresh-episode return, and the candidates compared."""
    r = reselection.assign(selected=reselection["selected"].astype(str).str.lower() == "true")
    g = r.groupby(RUN_KEYS, sort=False)
    chosen = r[r["selected"]].groupby(RUN_KEYS, sort=False).first()
    out = pd.DataFrame({"candidates": g.size()})
    out["chosen"] = chosen["candidate"]
    out["reselect_return"] = chosen["reselect_return"]
    return out.reset_index()


def selection_check(
    final: pd.DataFrame,
    curves: pd.DataFrame | None = None,
    setups: Sequence[str] | None = None,
    reselection: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """How well the selected checkpoints' validation returns predicted their final evaluation.

    Per env_id and setup (env, then ``setups`` order): n_seeds, ``val_selected`` (mean over seeds of
    the selected checkpoint's validation return), ``eval`` (mean over seeds of its mean evaluation
    return, as Table 1), ``gap`` = eval - val_selected, ``seeds_below`` (seeds whose evaluation mean
    is below their selected validation return), ``worst_episode`` (the lowest single evaluation
    episode), and where the environment has a failure return (``FAILURE_RETURNS``: Acrobot, Taxi)
    ``failed_episodes`` (evaluation episodes at or below it, over all seeds) and ``eval_others`` (the
    mean of the other episodes); elsewhere 0 and ``eval``. With ``curves``, ``tied``: checkpoints
    per run whose validation return equals the selected one (mean over seeds; selection takes the
    earliest of them). With ``reselection`` (:func:`collab.analysis.load_reselection`, non-empty):
    ``reselect_return`` (mean over seeds of the chosen candidate's return on the fresh episodes),
    ``gap_reselect`` = eval - reselect_return (the curse left after re-selection) and ``changed``
    (runs where re-selection chose another checkpoint than the best validated one).
    """
    check_columns(final, "final.csv")
    fail_at = final["env_id"].map(FAILURE_RETURNS)
    failed = final["return"] <= fail_at  # NaN threshold: never failed
    final = final.assign(_failed=failed, _other=final["return"].where(~failed))
    per_seed = final.groupby(RUN_KEYS, sort=False).agg(
        val=("selected_val_return", "first"),
        ev=("return", "mean"),
        worst=("return", "min"),
        failed=("_failed", "sum"),
        other_sum=("_other", "sum"),
        other_n=("_other", "count"),
    )
    per_seed = per_seed.reset_index()
    per_seed["below"] = per_seed["ev"] < per_seed["val"]
    rows = per_seed.groupby(["env_id", "setup"], sort=False).agg(
        n_seeds=("seed", "size"),
        val_selected=("val", "mean"),
        eval=("ev", "mean"),
        seeds_below=("below", "sum"),
        worst_episode=("worst", "min"),
        failed_episodes=("failed", "sum"),
        other_sum=("other_sum", "sum"),
        other_n=("other_n", "sum"),
    )
    rows = rows.reset_index()
    rows["gap"] = rows["eval"] - rows["val_selected"]
    rows["seeds_below"] = rows["seeds_below"].astype(int)
    rows["failed_episodes"] = rows["failed_episodes"].astype(int)
    rows["eval_others"] = rows["other_sum"] / rows["other_n"].where(rows["other_n"] > 0)
    cols = ["env_id", "setup", "n_seeds", "val_selected", "eval", "gap", "seeds_below", "worst_episode"]
    cols += ["failed_episodes", "eval_others"]
    if curves is not None:
        ties = selection_ties(curves)
        tied = ties.groupby(["env_id", "setup"], sort=False)["tied"].mean()
        rows = rows.merge(tied.reset_index(), on=["env_id", "setup"], how="left")
        cols.append("tied")
    if reselection is not None and len(reselection):
        r = per_seed[[*RUN_KEYS, "ev"]].merge(_reselected(reselection), on=RUN_KEYS, how="inner")
        r["changed"] = r["chosen"] != 0
        agg = r.groupby(["env_id", "setup"], sort=False).agg(
            reselect_return=("reselect_return", "mean"), changed=("changed", "sum")
        )
        rows = rows.merge(agg.reset_index(), on=["env_id", "setup"], how="left")
        rows["gap_reselect"] = rows["eval"] - rows["reselect_return"]
        rows["changed"] = rows["changed"].fillna(0).astype(int)
        cols += ["reselect_return", "gap_reselect", "changed"]
    return paper_order(rows[cols], setups=setups)


def selection_ties(curves: pd.DataFrame, reselection: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per run (env_id, setup, seed): ``tied``, the checkpoints (agent x validation round) whose
    validation return equals the run's best; ``candidates``, the checkpoints selection compared on
    fresh episodes (its ``reselection.csv`` rows; 1 where it has none); ``tie_broken``: tied >
    candidates (the choice among the tied ones was the earliest, not a measurement)."""
    check_columns(curves, "curves.csv")
    keys = [curves[k] for k in RUN_KEYS]
    best = curves.groupby(RUN_KEYS, sort=False)["val_return"].transform("max")
    tied = (curves["val_return"] == best).groupby(keys, sort=False).sum().rename("tied").reset_index()
    if reselection is not None and len(reselection):
        n = _reselected(reselection)[[*RUN_KEYS, "candidates"]]
        tied = tied.merge(n, on=RUN_KEYS, how="left")
        tied["candidates"] = tied["candidates"].fillna(1).astype(int)
    else:
        tied["candidates"] = 1
    tied["tied"] = tied["tied"].astype(int)
    tied["tie_broken"] = tied["tied"] > tied["candidates"]
    return tied[[*RUN_KEYS, "tied", "candidates", "tie_broken"]]


def tie_broken_envs(curves: pd.DataFrame, reselection: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per environment: ``runs``, ``tie_broken`` (runs whose selection was a tie-break,
    :func:`selection_ties`), ``median_tied`` and ``candidates`` (median over runs), ``flagged``: more
    than half its runs were tie-broken, so its selected-agent measure scores the tie-break rather than
    the training; ``reason``: that, in words (empty where not flagged)."""
    ties = selection_ties(curves, reselection)
    rows = []
    for env in present_envs(ties):
        d = ties[ties["env_id"] == env]
        broken = int(d["tie_broken"].sum())
        median_tied, candidates = float(d["tied"].median()), float(d["candidates"].median())
        flagged = broken > len(d) / 2
        reason = (
            f"{env}: in {broken} of {len(d)} runs the best validation return is shared by more checkpoints "
            f"(median {median_tied:g}) than selection compares on fresh episodes ({candidates:g}); the "
            "earliest of them is selected, so the selected agent measures a tie-break"
            if flagged
            else ""
        )
        rows.append(
            {
                "env_id": env,
                "runs": len(d),
                "tie_broken": broken,
                "median_tied": median_tied,
                "candidates": candidates,
                "flagged": flagged,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=TIE_COLUMNS)


def flags(ties: pd.DataFrame) -> dict[str, str]:
    """{env_id: reason} of the flagged environments of :func:`tie_broken_envs`."""
    d = ties[ties["flagged"]]
    return dict(zip(d["env_id"], d["reason"], strict=True))


def flag_of(measure: str, env: str, flagged: Mapping[str, str] | None) -> str:
    """A cell's flag: :data:`TIE_BREAK` for the ``selected`` measure of a flagged environment, else ""."""
    return TIE_BREAK if measure == "selected" and env in (flagged or {}) else ""


def flagged_rows(table: pd.DataFrame) -> pd.Series:
    """The rows of a verdict or equivalence table that carry a flag (none where it has no ``flag``)."""
    if "flag" not in table.columns:
        return pd.Series(False, index=table.index)
    return table["flag"].fillna("").astype(str) != ""


def without_flagged(final: pd.DataFrame, flagged: Mapping[str, str] | Sequence[str]) -> pd.DataFrame:
    """``final`` without the rows of the flagged environments (the selected-agent measure's input to
    the aggregates and the claims check)."""
    return final[~final["env_id"].isin(list(flagged))]


def _halves(values: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per run, the mean of episodes [0, k) and of [k, 2k) (``values``: RUN_KEYS, ep, return)."""
    a = values[values["ep"] < k].groupby(RUN_KEYS)["return"].mean()
    b = values[(values["ep"] >= k) & (values["ep"] < 2 * k)].groupby(RUN_KEYS)["return"].mean()
    a, b = a.align(b, join="inner")
    return a.to_numpy(float), b.to_numpy(float)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman_brown(r: float, factor: float) -> float:
    """The reliability of a mean over ``factor`` times as many episodes as one whose two independent
    evaluations correlate ``r``: factor r / (1 + (factor - 1) r) (NaN where r is NaN or <= 0)."""
    if not np.isfinite(r) or r <= 0:
        return float("nan")
    return factor * r / (1 + (factor - 1) * r)


def evaluation_noise(final: pd.DataFrame, population: pd.DataFrame | None = None) -> pd.DataFrame:
    """How well two evaluations of the same runs agree, per environment and measure.

    ``selected``: each run's selected agent (final.csv's episodes); ``population``: the mean over each
    run's final agents (population_eval.csv, agent >= 0), split the same way for every agent. Across
    the runs of an environment (every setup): ``r_10``, the correlation of two disjoint evaluations of
    10 episodes (episodes 0-9 and 10-19: two evaluations by the paper's protocol; NaN with fewer than
    20 episodes); ``r_half``, of the two halves of the whole evaluation (``n_episodes``: episodes per
    run and agent, the fewest of any run); ``reliability``, the correlation the whole n-episode
    evaluation would have with a second one, projected from ``r_half`` (:func:`spearman_brown`).
    Fewer than 3 runs, or no spread: NaN."""
    check_columns(final, "final.csv")
    selected = final[[*RUN_KEYS, "eval_episode", "return"]].rename(columns={"eval_episode": "ep"})
    parts = [("selected", selected)]
    if population is not None and len(population):
        pop = population[population["agent"] >= 0]
        # episode e of every agent: the run's mean over its agents, so each half is a population mean
        per_ep = pop.groupby([*RUN_KEYS, "episode"], sort=False)["return"].mean().reset_index()
        parts.append(("population", per_ep.rename(columns={"episode": "ep"})))
    rows = []
    for measure, values in parts:
        for env in present_envs(values):
            d = values[values["env_id"] == env]
            n = int(d.groupby(RUN_KEYS)["ep"].count().min())
            r10 = _correlation(*_halves(d, PAPER_EPISODES)) if n >= 2 * PAPER_EPISODES else float("nan")
            r_half = _correlation(*_halves(d, n // 2)) if n >= 2 else float("nan")
            rows.append(
                {
                    "env_id": env,
                    "measure": measure,
                    "runs": int(d[RUN_KEYS].drop_duplicates().shape[0]),
                    "n_episodes": n,
                    "r_10": r10,
                    "r_half": r_half,
                    "reliability": spearman_brown(r_half, n / (n // 2)) if n >= 2 else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=NOISE_COLUMNS)


def table1_episodes(
    final: pd.DataFrame, population: pd.DataFrame | None = None, setups: Sequence[str] | None = None
) -> pd.DataFrame:
    """Table 1 three ways, per env_id and setup: ``first_*``, the paper's protocol (each run's first
    10 evaluation episodes); ``all_*``, every evaluation episode (``n_episodes``: the fewest of any
    run of the cell); ``population_*``, all final agents re-evaluated (``population_episodes`` per
    agent; NaN without ``population``). Means over seeds with 95% t-intervals."""
    first = table1(first_episodes(final, PAPER_EPISODES), setups=setups)
    whole = table1(final, setups=setups)
    keys = ["env_id", "setup"]
    out = first[[*keys, "n_seeds", "mean", "ci_low", "ci_high"]].rename(
        columns={"mean": "first_mean", "ci_low": "first_ci_low", "ci_high": "first_ci_high"}
    )
    out = out.merge(
        whole[[*keys, "mean", "ci_low", "ci_high"]].rename(
            columns={"mean": "all_mean", "ci_low": "all_ci_low", "ci_high": "all_ci_high"}
        ),
        on=keys,
    )
    episodes = final.groupby([*RUN_KEYS])["eval_episode"].count().groupby(keys).min().rename("n_episodes")
    out = out[out["n_seeds"] > 0].merge(episodes.reset_index(), on=keys, how="left")
    pop_cols = {"mean": "population_mean", "ci_low": "population_ci_low", "ci_high": "population_ci_high"}
    if population is not None and len(population):
        pop = table1_population(population, setups=setups)[[*keys, *pop_cols]].rename(columns=pop_cols)
        final_agents = population[population["agent"] >= 0]
        per_agent = final_agents.groupby([*RUN_KEYS, "agent"])["episode"].count()
        n_pop = per_agent.groupby(keys).min().rename("population_episodes").reset_index()
        out = out.merge(pop, on=keys, how="left").merge(n_pop, on=keys, how="left")
    else:
        out = out.assign(population_episodes=np.nan, **{c: np.nan for c in pop_cols.values()})
    return paper_order(out[EPISODES_COLUMNS], setups=setups)


REEVAL_COLUMNS = [
    "env_id", "setup", "n_seeds", "eval_episodes", "eval_mean", "eval_ci_low", "eval_ci_high",
    "reeval_episodes", "reeval_mean", "reeval_ci_low", "reeval_ci_high", "difference",
]  # fmt: skip


def reeval_beside(
    final: pd.DataFrame, reeval: pd.DataFrame, setups: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per env_id and setup of ``reeval`` (a final.csv-shaped re-evaluation of the runs' selected
    agents on fresh episodes, ``workflow/scripts/reevaluate.py``): Table 1 by the runs' own final
    evaluation (``eval_*``, the same runs only) beside Table 1 by the re-evaluation (``reeval_*``),
    means over seeds with 95% t-intervals, and ``difference`` = reeval_mean - eval_mean."""
    check_columns(reeval, "final.csv")
    runs = reeval[RUN_KEYS].drop_duplicates()
    own = final.merge(runs, on=RUN_KEYS, how="inner")
    keys = ["env_id", "setup"]
    parts = []
    for name, df in (("eval", own), ("reeval", reeval)):
        t = table1(df, setups=setups)
        t = t[t["n_seeds"] > 0][[*keys, "n_seeds", "mean", "ci_low", "ci_high"]]
        n = df.groupby(RUN_KEYS)["eval_episode"].count().groupby(keys).min().rename(f"{name}_episodes")
        t = t.merge(n.reset_index(), on=keys, how="left")
        parts.append(t.rename(columns={c: f"{name}_{c}" for c in ("mean", "ci_low", "ci_high")}))
    out = parts[0].merge(parts[1].drop(columns="n_seeds"), on=keys, how="inner")
    out["difference"] = out["reeval_mean"] - out["eval_mean"]
    return paper_order(out[REEVAL_COLUMNS], setups=setups)
