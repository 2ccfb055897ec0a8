"""Table 1 beside the paper's, the achievability of a value, and run counts and costs.

Table 1's cell is the mean over seeds of each run's mean final evaluation return, with a 95%
t-interval over seeds; the paper's value (``collab.paper.TABLE1``) stands beside it for the paper's
five setups, flagged where the environment cannot return it (``collab.paper.ENV_RANGES``). Any other
setup a profile names gets its column, in the profile's order, without a paper value. Where runs
re-evaluated their final agents (``population_eval.csv``), a selection-free Table 1 stands beside the
best-checkpoint one.
How many seeds a given precision needs is measured from the per-seed spread (:func:`seeds_for_width`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from collab.analysis.io import RUN_KEYS, check_columns, paper_order
from collab.analysis.setups import present_setups, setup_label
from collab.analysis.stats import (
    BOOT_SEED,
    CI_METHOD,
    CONFIDENCE,
    N_BOOT,
    mean_ci,
    pair_spread,
    seeds_for_halfwidth,
)
from collab.paper import (
    ENV_RANGES,
    ENVS,
    PAPER_ENV_NAMES,
    SCORE_REFERENCES,
    SETUPS,
    TABLE1,
)
from collab.results import atomic_write_csv, atomic_write_text, markdown_table

# --------------------------------------------------------------------------------------------
# The paper's values and what the environments can return


def load_paper_table(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The paper's Table 1 (``collab.paper.TABLE1``) in long form: env_id, env_id_paper, setup, paper.

    ``root`` is not used: the numbers are part of the package.
    """
    rows = [
        {"env_id_paper": PAPER_ENV_NAMES[env], "env_id": env, **dict(zip(SETUPS, values, strict=True))}
        for env, values in TABLE1.items()
    ]
    wide = pd.DataFrame(rows)
    return paper_long(wide)


def paper_long(wide: pd.DataFrame) -> pd.DataFrame:
    """A wide paper table (env_id_paper, env_id, one column per setup) as long rows."""
    long = wide.melt(id_vars=["env_id_paper", "env_id"], value_vars=list(SETUPS), var_name="setup")
    return long.rename(columns={"value": "paper"})[["env_id", "env_id_paper", "setup", "paper"]]


def env_ranges_frame() -> pd.DataFrame:
    """ENV_RANGES as a table (env_id, lower, upper, upper_kind, source)."""
    rows = [{"env_id": env, **r._asdict()} for env, r in ENV_RANGES.items()]
    return pd.DataFrame(rows)


def achievability(values: pd.DataFrame, value_col: str = "paper") -> pd.DataFrame:
    """Flag values outside what their environment can achieve (see ``ENV_RANGES``).

    ``values`` is long: env_id, setup, ``value_col``. Returns env_id, setup, value, lower, upper,
    achievable (bool; True where the environment has no range entry or the value is NaN) and reason.
    """
    rows = []
    for rec in values.itertuples(index=False):
        env, setup, v = rec.env_id, rec.setup, float(getattr(rec, value_col))
        rng = ENV_RANGES.get(env)
        lower = rng.lower if rng else math.nan
        upper = rng.upper if rng else math.nan
        reason = ""
        if not math.isnan(v) and rng is not None:
            if v > upper:
                reason = f"above the achievable maximum {upper:g} ({rng.upper_kind})"
            elif not math.isnan(lower) and v < lower:
                reason = f"below the achievable minimum {lower:g}"
        rows.append(
            {
                "env_id": env,
                "setup": setup,
                "value": v,
                "lower": lower,
                "upper": upper,
                "achievable": reason == "",
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=["env_id", "setup", "value", "lower", "upper", "achievable", "reason"])


# --------------------------------------------------------------------------------------------
# What a profile holds


def present_envs(df: pd.DataFrame, envs: Sequence[str] | None = None) -> list[str]:
    """``envs`` (default: the paper's six, ``ENVS``, where present in ``df``), then any other env of
    ``df`` by name."""
    found = set(df["env_id"]) if "env_id" in df.columns else set()
    first = list(envs) if envs is not None else [e for e in ENVS if e in found]
    return first + sorted(found - set(first))


def run_counts(final: pd.DataFrame, setups: Sequence[str] | None = None) -> pd.DataFrame:
    """Seeds found per env_id and setup (paper env order, then ``setups``' order): env_id, setup, seeds."""
    check_columns(final, "final.csv")
    runs = final[RUN_KEYS].drop_duplicates()
    return paper_order(runs.groupby(["env_id", "setup"]).size().rename("seeds").reset_index(), setups=setups)


def run_costs(curves: pd.DataFrame, setups: Sequence[str] | None = None) -> pd.DataFrame:
    """Compute cost per env_id and setup (env, then ``setups`` order), from each run's last ``wall_time_s``.

    Columns: env_id, setup, runs, mean_s (mean wall time of one run), total_s (sum over runs),
    env_steps (mean agent steps of one run, summed over its agents). One row ``setup == "all"`` per
    environment totals its grid. Wall times are as measured: runs that shared cores took longer.
    """
    check_columns(curves, "curves.csv")
    last = curves[curves["round"] == curves.groupby(RUN_KEYS)["round"].transform("max")]
    per_run = last.groupby(RUN_KEYS, sort=False).agg(wall=("wall_time_s", "max"), steps=("env_steps", "sum"))
    per_run = per_run.reset_index()
    rows = per_run.groupby(["env_id", "setup"]).agg(
        runs=("wall", "size"), mean_s=("wall", "mean"), total_s=("wall", "sum"), env_steps=("steps", "mean")
    )
    out = paper_order(rows.reset_index(), setups=setups)
    totals = (
        out.groupby("env_id", sort=False).agg(runs=("runs", "sum"), total_s=("total_s", "sum")).reset_index()
    )
    totals["setup"] = "all"
    parts = []
    for env, g in out.groupby("env_id", sort=False):
        parts += [g, totals[totals["env_id"] == env]]
    return pd.concat(parts, ignore_index=True)[["env_id", "setup", "runs", "mean_s", "total_s", "env_steps"]]


# --------------------------------------------------------------------------------------------
# Table 1


def per_seed_final(final: pd.DataFrame) -> pd.DataFrame:
    """Per run (env_id, setup, seed): the mean of its final evaluation episodes (column ``return``)."""
    check_columns(final, "final.csv")
    out = final.groupby(RUN_KEYS, sort=True)["return"].agg(["mean", "size"]).reset_index()
    return out.rename(columns={"mean": "mean_return", "size": "n_episodes"})


def first_episodes(final: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The rows of each run's first ``k`` final evaluation episodes (``eval_episode < k``): with more
    evaluation episodes than the paper's 10, the paper's protocol (episode i is seeded the same
    whatever the count, so these are the episodes a 10-episode evaluation plays)."""
    check_columns(final, "final.csv")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k={k!r} is not allowed: an integer >= 1")
    return final[final["eval_episode"] < k]


def table1(
    final: pd.DataFrame,
    paper: pd.DataFrame | None = None,
    envs: Sequence[str] | None = None,
    setups: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
    method: str = CI_METHOD,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Table 1 in long form, one row per (env_id, setup) of ``envs`` x ``setups`` (plus extra envs found).

    ``envs``: default the paper's environments present in ``final``, in the paper's order;
    ``setups``: default the setups present (the paper's five in its order, then the others; a
    profile's order is ``ProfileData.order``). mean = mean over seeds of the per-seed mean final
    evaluation return (10 episodes per seed); sd = sample sd over seeds; ci_low/ci_high = interval
    of the mean over seeds by ``method`` ('t', the default; 'percentile' or 'bca': scipy's bootstrap
    with ``n_boot`` resamples and ``seed``; NaN with fewer than 2 seeds); n_seeds = seeds found (0:
    setup missing from the data). With ``paper`` (long, from :func:`load_paper_table`), adds the
    paper's value (NaN for a setup or env the paper does not have) and its achievability flag.
    """
    ps = per_seed_final(final)
    envs = present_envs(ps, envs)
    setups = list(setups) if setups is not None else present_setups(final)
    return _table_of_means(ps, "mean_return", paper, envs, setups, confidence, method, n_boot, seed)


def _table_of_means(
    ps: pd.DataFrame,
    value: str,
    paper: pd.DataFrame | None,
    envs: Sequence[str],
    setups: Sequence[str],
    confidence: float,
    method: str = CI_METHOD,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Per (env_id, setup): n_seeds, mean, sd and interval of the per-seed ``value`` column of ``ps``."""
    all_envs = list(envs) + sorted(set(ps["env_id"]) - set(envs))
    rows = []
    for env in all_envs:
        for setup in setups:
            vals = ps.loc[(ps["env_id"] == env) & (ps["setup"] == setup), value].to_numpy(float)
            lo, hi = mean_ci(vals, method=method, confidence=confidence, n_boot=n_boot, seed=seed)
            rows.append(
                {
                    "env_id": env,
                    "env_id_paper": PAPER_ENV_NAMES.get(env, env),
                    "setup": setup,
                    "n_seeds": int(vals.size),
                    "mean": float(vals.mean()) if vals.size else math.nan,
                    "sd": float(vals.std(ddof=1)) if vals.size > 1 else math.nan,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    out = pd.DataFrame(rows)
    if paper is not None:
        out = out.merge(paper[["env_id", "setup", "paper"]], on=["env_id", "setup"], how="left")
        flags = achievability(out, "paper")
        out["paper_achievable"] = flags["achievable"].to_numpy()
    return out


def _fmt(v: float, decimals: int = 2) -> str:
    """A number with ``decimals`` decimals; 'n/a' for None or NaN."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{decimals}f}"


def format_cell(row: pd.Series, decimals: int = 2) -> str:
    """'mean [lo, hi]' ('mean [CI n/a, 1 seed]' with one seed, '—' with none)."""
    if row["n_seeds"] == 0:
        return "—"
    m = _fmt(row["mean"], decimals)
    if row["n_seeds"] < 2:
        return f"{m} [CI n/a, 1 seed]"
    return f"{m} [{_fmt(row['ci_low'], decimals)}, {_fmt(row['ci_high'], decimals)}]"


def _env_name(env: str) -> str:
    paper = PAPER_ENV_NAMES.get(env, env)
    return env if paper == env else f"{env} (paper: {paper})"


def table1_wide(table: pd.DataFrame, decimals: int = 2, with_paper: bool = True) -> pd.DataFrame:
    """Table 1 for display: rows = environments, columns = setup labels, cells as strings.

    Each cell is ``ours [95% CI] / paper`` where the paper has a value (marked ``†`` if outside the
    achievable range), else ``ours [95% CI]``. Columns in the table's setup order. Rows carry the
    environment we ran, with the paper's name where it differs: ``Taxi-v4 (paper: Taxi-v1)``.
    """
    envs = list(dict.fromkeys(table["env_id"]))
    setups = list(dict.fromkeys(table["setup"]))
    data: dict[str, list[str]] = {"Environment": [_env_name(e) for e in envs]}
    for setup in setups:
        col = []
        for env in envs:
            row = table[(table["env_id"] == env) & (table["setup"] == setup)].iloc[0]
            cell = format_cell(row, decimals)
            if with_paper and "paper" in table.columns and pd.notna(row["paper"]):
                mark = "" if row.get("paper_achievable", True) else "†"
                cell += f" / {_fmt(float(row['paper']), decimals)}{mark}"
            col.append(cell)
        data[setup_label(setup)] = col
    return pd.DataFrame(data)


def table1_markdown(table: pd.DataFrame, decimals: int = 2) -> str:
    """Table 1 as a Markdown table with a caption line."""
    wide = table1_wide(table, decimals)
    caption = (
        "Cells: our mean final evaluation return over seeds [95% t-interval over seeds]"
        " / the paper's value; † = the paper's value is outside what the environment can achieve."
    )
    return markdown_table(wide) + "\n" + caption + "\n"


def table1_latex(table: pd.DataFrame, decimals: int = 2) -> str:
    """Table 1 as a LaTeX tabular (booktabs rules)."""
    wide = table1_wide(table, decimals)

    def esc(s: str) -> str:
        return (
            s.replace("_", r"\_").replace("†", r"$^\dagger$").replace("—", "--").replace("[", "{[}")
        ).replace("]", "{]}")

    lines = [
        r"\begin{tabular}{l" + "r" * (len(wide.columns) - 1) + "}",
        r"\toprule",
        " & ".join(esc(c) for c in wide.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(esc(str(v)) for v in r) + r" \\" for r in wide.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def save_table1(table: pd.DataFrame, out_dir: str | os.PathLike, decimals: int = 2) -> list[Path]:
    """Write ``table1.csv`` (long, full precision), ``table1.md`` and ``table1.tex`` atomically."""
    out = Path(out_dir)
    paths = [out / "table1.csv", out / "table1.md", out / "table1.tex"]
    atomic_write_csv(paths[0], table)
    atomic_write_text(paths[1], table1_markdown(table, decimals))
    atomic_write_text(paths[2], table1_latex(table, decimals))
    return paths


# --------------------------------------------------------------------------------------------
# Precision: seeds needed for a given width


def seeds_for_width(table: pd.DataFrame, widths: Sequence[float] = (0.05, 0.10)) -> pd.DataFrame:
    """How many seeds each Table 1 cell needs for a given precision, from its spread over seeds.

    ``table`` is :func:`table1`. Per cell: n_seeds, sd, ``half_width`` (of its 95% t-interval), the
    same as a fraction of the env's normalisation span (``SCORE_REFERENCES``: reference - random),
    and for each ``w`` in ``widths`` ``seeds_for_<w>``: the fewest seeds whose t-interval half-width
    is at most w of that span, if the per-seed sd stays as measured.
    """
    rows = []
    for rec in table.itertuples(index=False):
        ref = SCORE_REFERENCES.get(rec.env_id)
        span = (ref.reference - ref.random) if ref else math.nan
        half = (rec.ci_high - rec.ci_low) / 2
        row = {
            "env_id": rec.env_id,
            "setup": rec.setup,
            "n_seeds": rec.n_seeds,
            "sd": rec.sd,
            "half_width": half,
            "half_width_score": half / span,
        }
        for w in widths:
            row[f"seeds_for_{w:g}"] = seeds_for_halfwidth(rec.sd, w * span)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Selection-free Table 1 (where runs re-evaluated their final agents)


def population_per_run(pop: pd.DataFrame, spread: bool = False) -> pd.DataFrame:
    """Per run (env_id, setup, seed) of ``population_eval.csv`` rows: ``mean_return``, the mean over
    its final agents (agent >= 0) of each agent's mean return; with ``spread``, also ``spread``
    (:func:`collab.analysis.stats.pair_spread` of its agents' means)."""
    cols = [*RUN_KEYS, "mean_return", *(["spread"] if spread else [])]
    pop = pop[pop["agent"] >= 0] if len(pop) else pop
    if pop.empty:
        return pd.DataFrame(columns=cols)
    per_agent = pop.groupby([*RUN_KEYS, "agent"], sort=True)["return"].mean()
    g = per_agent.groupby(RUN_KEYS, sort=True)
    parts = [g.mean().rename("mean_return")] + ([g.agg(pair_spread).rename("spread")] if spread else [])
    return pd.concat(parts, axis=1).reset_index()[cols]


def table1_population(
    pop: pd.DataFrame,
    envs: Sequence[str] = ENVS,
    setups: Sequence[str] | None = None,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Table 1 without selection: per run, the mean return of *all* its final agents.

    ``pop`` is :func:`collab.analysis.load_population_eval` (env_id, setup, seed, agent, episode,
    return; rows with a negative agent index are not final agents and are left out). Per run: the
    mean over its agents of each agent's mean return, and its agents' spread
    (:func:`collab.analysis.stats.pair_spread`: the expected sd of two of its agents). Per cell: as
    :func:`table1` (t-interval over seeds), plus the mean agent_spread. ``setups``: their order
    (default: those present, the paper's five first). Empty when ``pop`` has no rows.
    """
    cols = ["env_id", "env_id_paper", "setup", "n_seeds", "mean", "sd", "ci_low", "ci_high", "agent_spread"]
    per_run = population_per_run(pop, spread=True)
    if per_run.empty:
        return pd.DataFrame(columns=cols)
    found = [e for e in envs if e in set(per_run["env_id"])]
    order = present_setups(per_run, setups)
    out = _table_of_means(per_run, "mean_return", None, found, order, confidence)
    out = out[out["n_seeds"] > 0]
    spread = per_run.groupby(["env_id", "setup"])["spread"].mean().rename("agent_spread").reset_index()
    return out.merge(spread, on=["env_id", "setup"], how="left")[cols].reset_index(drop=True)


def table1_beside(
    best: pd.DataFrame, population: pd.DataFrame, decimals: int = 2, setups: Sequence[str] | None = None
) -> pd.DataFrame:
    """The best-checkpoint Table 1 and the selection-free one, cell by cell (cells as strings).

    Columns: env_id, setup, best_checkpoint, all_final_agents ('mean [lo, hi]'), difference (all
    agents - best checkpoint), agent_spread. Only the cells present in ``population``.
    """
    cols = ["env_id", "setup", "best_checkpoint", "all_final_agents", "difference", "agent_spread"]
    if population.empty:
        return pd.DataFrame(columns=cols)
    m = population.merge(best, on=["env_id", "setup"], suffixes=("_pop", ""), how="left")
    rows = []
    for rec in m.itertuples(index=False):
        r = rec._asdict()
        rows.append(
            {
                "env_id": r["env_id"],
                "setup": r["setup"],
                "best_checkpoint": format_cell(pd.Series(r), decimals),
                "all_final_agents": format_cell(
                    pd.Series(
                        {
                            "n_seeds": r["n_seeds_pop"],
                            "mean": r["mean_pop"],
                            "ci_low": r["ci_low_pop"],
                            "ci_high": r["ci_high_pop"],
                        }
                    ),
                    decimals,
                ),
                "difference": r["mean_pop"] - r["mean"],
                "agent_spread": r["agent_spread"],
            }
        )
    return paper_order(pd.DataFrame(rows, columns=cols), setups=setups)
