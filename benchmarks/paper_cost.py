"""What the paper profile's runs cost: measured where ``data/paper`` has runs, projected elsewhere.

Usage::

    python benchmarks/paper_cost.py        # seconds, reads the committed CSVs only

Projection, per environment and setup, from the reduced grid's runs (``data/reduced/curves.csv``): a run
at the paper's budget takes the reduced run's agent steps, plus the episodes it lacks (5000 per agent
instead of k; sequential: 8 x 5000) at the *late* episode length of the reduced run (agent steps per
episode over its last fifth of rounds, where the policies are the best they became), at the reduced
run's seconds per agent step. Acrobot and Taxi episodes shorten as agents learn, so the paper budget
costs far less than 5000 / k times the reduced one; where agents are still learning at the end of the
reduced budget (LunarLander, BipedalWalker, CarRacing) the projection is rougher. The reduced runs shared
two cores with one to three others, as do the measured paper runs: both are upper bounds for a run with
a core to itself. Writes ``benchmarks/results/paper_cost.{csv,md}``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
PAPER_K = 5000
SEEDS = 5


def per_run(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run: wall time, agent steps, episodes per trained agent, and late agent steps per episode."""
    rows = []
    for (env, setup, seed), run in curves.groupby(["env_id", "setup", "seed"]):
        last = int(run["round"].max())
        early = max(1, int(last * 0.8))
        at_last = run[run["round"] == last]
        at_early = run[run["round"] == early]
        steps = float(at_last["env_steps"].sum())
        late_steps = steps - float(at_early["env_steps"].sum())
        late_eps = float(at_last["episode"].sum() - at_early["episode"].sum())
        rows.append(
            {
                "env_id": env,
                "setup": setup,
                "seed": seed,
                "agents": len(at_last),
                "n_agents": int(at_last["n_agents"].iloc[0]),
                "k": int(at_last["episode"].max()),
                "wall_s": float(at_last["wall_time_s"].max()),
                "steps": steps,
                "late_len": late_steps / late_eps,
            }
        )
    return pd.DataFrame(rows)


def project(reduced: pd.DataFrame) -> pd.DataFrame:
    """Projected agent steps and seconds of each paper run (median over the reduced seeds)."""
    r = reduced.copy()
    target = PAPER_K * r["n_agents"].where(r["setup"] == "sequential", 1)  # sequential: one agent, n x k
    r["paper_steps"] = r["steps"] + r["agents"] * (target - r["k"]).clip(lower=0) * r["late_len"]
    r["paper_s"] = r["paper_steps"] * r["wall_s"] / r["steps"]
    return r.groupby(["env_id", "setup"])[["paper_steps", "paper_s"]].median()


def measured(paper: pd.DataFrame) -> pd.DataFrame:
    m = per_run(paper)
    return m.groupby(["env_id", "setup"]).agg(
        runs=("seed", "count"), steps=("steps", "median"), s=("wall_s", "median")
    )


def main() -> None:
    reduced = per_run(pd.read_csv(ROOT / "data" / "reduced" / "curves.csv"))
    table = project(reduced)
    runs = sorted((ROOT / "data" / "paper" / "runs").glob("*/*/seed*/curves.csv"))
    if runs:
        paper = pd.concat([pd.read_csv(p) for p in runs if (p.parent / "config.json").is_file()])
        table = table.join(measured(paper), how="left")
    else:
        table = table.assign(runs=0, steps=float("nan"), s=float("nan"))
    table = table.reset_index()
    out = pd.DataFrame(
        {
            "env_id": table["env_id"],
            "setup": table["setup"],
            "projected_agent_steps_M": (table["paper_steps"] / 1e6).round(2),
            "projected_h": (table["paper_s"] / 3600).round(2),
            "measured_runs": table["runs"].fillna(0).astype(int),
            "measured_agent_steps_M": (table["steps"] / 1e6).round(2),
            "measured_h": (table["s"] / 3600).round(3),
        }
    )
    per_env = out.groupby("env_id").agg(
        projected_grid_h=("projected_h", "sum"), measured_runs=("measured_runs", "sum")
    )
    per_env["projected_grid_h"] = (per_env["projected_grid_h"] * SEEDS).round(1)
    RESULTS.mkdir(exist_ok=True)
    out.to_csv(RESULTS / "paper_cost.csv", index=False)
    md = (
        f"# Paper profile: cost per run, projected and measured ({dt.date.today()})\n\n"
        "`python benchmarks/paper_cost.py` (from `data/reduced` and `data/paper`). Hours of one core per run "
        "(medians over seeds); runs shared two cores with others, so these are upper bounds.\n\n"
        + out.to_markdown(index=False)
        + "\n\nPer environment, the projected grid (5 setups x 5 seeds, hours of one core):\n\n"
        + per_env.reset_index().to_markdown(index=False)
        + "\n"
    )
    (RESULTS / "paper_cost.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
