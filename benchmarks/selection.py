"""How much the selection overfits, what re-selecting among the top candidates corrects, and what a
precise evaluation costs and buys.

Runs study cells (the study's budgets and setups) on seeds held apart from the study's (10 and up), in
portable numerics, with the precise protocol: ``eval_episodes`` 100, ``reeval_episodes`` 30 and
``reselect_top`` 5 on ``reselect_episodes`` 20. One run answers both selection rules without bias:

* the paper's pick is candidate 0 (best validation); its re-validation on fresh episodes estimates
  its true return, so ``paper_gap`` = re-validation - validation is its winner's curse;
* the re-selected pick's final evaluation (100 fresh episodes) estimates its true return, so
  ``gain`` = evaluation(re-selected) - re-validation(paper's pick) is what re-selection buys, and
  ``reselect_gap`` = evaluation - re-validation(pick) is the curse left among 5 candidates;
* evaluation noise: across runs, the correlation of two disjoint 10-episode means of the same
  checkpoint (episodes 0-9 and 10-19; the paper's evaluation), and of two 50-episode halves, with
  Spearman-Brown's projection to 100 episodes;
* cost: the seconds after training (re-selection, evaluation, re-evaluation, checkpoints) as a share
  of the run.

    python benchmarks/selection.py                        # Acrobot, Pendulum x 4 setups x seeds 10-14
    python benchmarks/selection.py --envs Acrobot-v1 --seeds 10 11 --jobs 2

Writes ``benchmarks/results/selection.{csv,md}`` (one row per run; the summary by environment and setup).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
BUDGETS = {
    "Acrobot-v1": {"episodes_per_agent": 500, "validate_every": 10},
    "Pendulum-v1": {"episodes_per_agent": 500, "validate_every": 10},
    "Taxi-v4": {"episodes_per_agent": 1500, "validate_every": 30},
}
SETUPS = {
    "independent_2": {"strategy": "independent", "n_agents": 2},
    "independent_4": {"strategy": "independent", "n_agents": 4},
    "independent": {"strategy": "independent", "n_agents": 8},
    "collaborative_8": {"strategy": "collaborative", "n_agents": 8},
}
PROTOCOL = {
    "val_episodes": 5,
    "eval_episodes": 100,
    "reeval_episodes": 30,
    "reselect_top": 5,
    "reselect_episodes": 20,
    "numerics": "portable",
}
CHILD = """
import json, sys, time
from collab import ExperimentConfig, run_experiment
cfg = ExperimentConfig(**json.loads(sys.argv[1]))
t0 = time.perf_counter()
res = run_experiment(cfg, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "trained_s": float(res.curves["wall_time_s"].max())}))
"""


def run_cell(env_id: str, setup: str, seed: int, tmp: str) -> dict:
    """Train one cell in a fresh process and summarise its selection and evaluation."""
    out = Path(tmp) / f"{env_id}-{setup}-{seed}"
    cfg = {"env_id": env_id, "seed": seed, "setup": setup, "out_dir": str(out)}
    cfg |= BUDGETS[env_id] | SETUPS[setup] | PROTOCOL
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CHILD, json.dumps(cfg)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{env_id} {setup} seed {seed} failed:\n{proc.stderr[-3000:]}")
    timing = json.loads(proc.stdout.strip().splitlines()[-1])
    res = pd.read_csv(out / "reselection.csv")
    ev = pd.read_csv(out / "final.csv")["return"].to_numpy()
    paper, pick = res.iloc[0], res[res["selected"]].iloc[0]
    return {
        "env_id": env_id,
        "setup": setup,
        "seed": seed,
        "paper_val": paper["val_return"],
        "paper_reval": paper["reselect_return"],
        "pick_candidate": int(pick["candidate"]),
        "pick_reval": pick["reselect_return"],
        "eval_mean": ev.mean(),
        "eval_first10": ev[:10].mean(),
        "eval_second10": ev[10:20].mean(),
        "eval_half1": ev[:50].mean(),
        "eval_half2": ev[50:].mean(),
        "seconds": timing["seconds"],
        "after_training_s": timing["seconds"] - timing["trained_s"],
    }


def spearman_brown(r: float, factor: float) -> float:
    """The reliability of a mean over ``factor`` times as many episodes, from that of one part."""
    return factor * r / (1 + (factor - 1) * r)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per environment and setup: the gaps, the gain and its interval (t, over seeds), the cost share."""
    df = df.assign(
        paper_gap=df["paper_reval"] - df["paper_val"],
        reselect_gap=df["eval_mean"] - df["pick_reval"],
        gain=df["eval_mean"] - df["paper_reval"],
        cost_share=df["after_training_s"] / df["seconds"],
    )
    rows = []
    for (env_id, setup), g in df.groupby(["env_id", "setup"], sort=False):
        n = len(g)
        half = float(stats.t.ppf(0.975, n - 1)) if n > 1 else np.nan
        se = g["gain"].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        rows.append(
            {
                "env_id": env_id,
                "setup": setup,
                "runs": n,
                "paper_gap": g["paper_gap"].mean(),
                "reselect_gap": g["reselect_gap"].mean(),
                "gain": g["gain"].mean(),
                "gain_low": g["gain"].mean() - half * se,
                "gain_high": g["gain"].mean() + half * se,
                "picks_other": int((g["pick_candidate"] != 0).sum()),
                "after_training_share": g["cost_share"].median(),
            }
        )
    return pd.DataFrame(rows)


def noise(df: pd.DataFrame) -> pd.DataFrame:
    """Per environment: correlation across runs of two disjoint evaluations of the same checkpoint."""
    rows = []
    for env_id, g in df.groupby("env_id", sort=False):
        if len(g) < 3:
            continue
        r10 = float(np.corrcoef(g["eval_first10"], g["eval_second10"])[0, 1])
        r50 = float(np.corrcoef(g["eval_half1"], g["eval_half2"])[0, 1])
        rows.append(
            {
                "env_id": env_id,
                "runs": len(g),
                "r_10_episodes": r10,
                "r_50_episodes": r50,
                "r_100_projected": spearman_brown(r50, 2.0),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", nargs="+", default=["Acrobot-v1", "Pendulum-v1"], choices=list(BUDGETS))
    ap.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[10, 11, 12, 13, 14])
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs at a time")
    ap.add_argument("--resume", type=Path, help="this script's printed rows of an interrupted run: not rerun")
    args = ap.parse_args(argv)
    if any(s < 10 for s in args.seeds):
        raise SystemExit(f"--seeds {args.seeds} is not allowed: seeds >= 10 (0-9 are the study's)")
    cells = [(e, s, k) for e in args.envs for s in args.setups for k in args.seeds]
    lines = args.resume.read_text().splitlines() if args.resume else []
    done = {
        (r["env_id"], r["setup"], r["seed"]): r for r in (json.loads(x) for x in lines if x.startswith("{"))
    }
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        rows = [done[c] for c in cells if c in done]  # the same code and seeds: the same rows
        for row in pool.map(lambda c: run_cell(*c, tmp), [c for c in cells if c not in done]):
            rows.append(row)
            print(json.dumps(row), flush=True)
    df = pd.DataFrame(rows)
    summary, corr = summarise(df), noise(df)
    given = argv if argv is not None else sys.argv[1:]
    shown = " ".join(a for i, a in enumerate(given) if "--resume" not in (a, given[i - 1] if i else ""))
    OUT.mkdir(parents=True, exist_ok=True)
    tmp_csv = OUT / "selection.csv.tmp"
    df.to_csv(tmp_csv, index=False)
    tmp_csv.replace(OUT / "selection.csv")
    md = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `python benchmarks/selection.py {shown}` "
        f"({args.jobs} runs at a time{'; rows of an interrupted run reused' if done else ''}). Protocol: "
        + ", ".join(f"{k} {v}" for k, v in PROTOCOL.items())
        + ".",
        "",
        "Selection (means over seeds; gain: evaluation of the re-selected pick minus re-validation of "
        "the paper's pick, with a t interval over seeds; picks_other: runs where re-selection chose "
        "another checkpoint than the paper's):",
        "",
        summary.round(3).to_markdown(index=False),
        "",
        "Evaluation noise (correlation across runs of two disjoint evaluations of the selected checkpoint):",
        "",
        corr.round(3).to_markdown(index=False),
    ]
    tmp_md = OUT / "selection.md.tmp"
    tmp_md.write_text("\n".join(md) + "\n")
    tmp_md.replace(OUT / "selection.md")
    print("\n".join(md))


if __name__ == "__main__":
    main()
