"""One workflow run with and without ``compile_loss``, side by side: wall time and results.

Usage: python benchmarks/compile_run.py [--profile reduced] [--env Acrobot-v1] [--setup collaborative_8]
       [--seed 0] [--repeats 2]

Takes one cell of a workflow profile (its ``ExperimentConfig``, exactly as the workflow builds it) and
runs it through ``run_experiment`` with the default eager PPO loss and with ``compile_loss=True``,
alternating, ``--repeats`` times each, into a temporary folder. One process, torch on one thread (the
config's ``torch_threads``). Reports per variant the median wall and CPU seconds of a whole run (the
compiled one includes its compiling), the final evaluation's mean return, whether the eager runs
reproduce the committed run in ``data/<profile>/runs/...`` (every CSV apart from wall times) and
whether the runs of one variant are identical to each other. Writes
``benchmarks/results/compile_run_<env>_<setup>.{csv,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
import yaml

from collab import ExperimentConfig, run_experiment
from collab.ppo import cpp_compiler
from collab.results import SCHEMA, VOLATILE_COLUMNS, atomic_write_csv, atomic_write_text, markdown_table

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"


def cell_config(profile: str, env_id: str, setup: str, seed: int) -> tuple[ExperimentConfig, Path]:
    """The workflow's config of one grid cell, and the folder of its committed run."""
    sys.path.insert(0, str(REPO / "workflow" / "scripts"))
    from grid import load_grid  # workflow/scripts is not a package

    path = REPO / "workflow" / "config" / f"{profile}.yaml"
    if not path.exists():
        allowed = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SystemExit(f"--profile={profile!r} is not allowed: one of {', '.join(allowed)}")
    grid = load_grid(yaml.safe_load(path.read_text()), source=str(path), check_env=False)
    try:
        cell = grid.cell(env_id, setup, seed)
    except KeyError:
        raise SystemExit(
            f"(--env, --setup, --seed)=({env_id!r}, {setup!r}, {seed}) is not allowed: a cell of the "
            f"{profile} grid: envs {', '.join(grid.envs)}; setups {', '.join(grid.setups)}; "
            f"seeds {grid.seeds}"
        ) from None
    cfg = ExperimentConfig(
        env_id=cell.env_id, strategy=cell.strategy, n_agents=cell.n_agents, seed=cell.seed, **cell.params
    )
    return cfg, REPO / "data" / profile / "runs" / env_id / setup / f"seed{seed}"


def read_run(folder: Path) -> dict[str, pd.DataFrame]:
    """A run's CSVs without the columns that vary from run to run (wall times)."""
    return {f: pd.read_csv(folder / f).drop(columns=VOLATILE_COLUMNS, errors="ignore") for f in SCHEMA}


def same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> bool:
    """True when two runs wrote the same CSVs (wall times apart)."""
    return all(a[f].equals(b[f]) for f in SCHEMA)


def compare(base: ExperimentConfig, committed: Path, repeats: int) -> list[dict[str, object]]:
    """Alternating eager and compiled runs of ``base``; one row per variant."""
    out: dict[bool, list[tuple[float, float, float, dict[str, pd.DataFrame]]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for compiled in (False, True):
                cfg = dataclasses.replace(base, compile_loss=compiled, out_dir=f"{tmp}/{int(compiled)}_{r}")
                t0, c0 = time.perf_counter(), time.process_time()
                run_experiment(cfg, progress=False)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                runs = read_run(Path(cfg.out_dir))
                out[compiled].append((wall, cpu, float(runs["final.csv"]["return"].mean()), runs))
                print(f"  compile_loss={compiled} run {r + 1}/{repeats}: {wall:.1f} s", flush=True)
    reference = read_run(committed) if (committed / "config.json").exists() else None
    eager_wall = statistics.median(w for w, _, _, _ in out[False])
    rows = []
    for compiled, runs in out.items():
        wall = statistics.median(w for w, _, _, _ in runs)
        rows.append(
            {
                "compile_loss": compiled,
                "runs": len(runs),
                "wall_s (median)": wall,
                "cpu_s (median)": statistics.median(c for _, c, _, _ in runs),
                "speed-up (wall)": eager_wall / wall,
                "final eval mean return": runs[0][2],
                "runs identical to each other": (
                    all(same(runs[0][3], x[3]) for x in runs[1:]) if len(runs) > 1 else None
                ),
                "same CSVs as the committed run": None if reference is None else same(runs[0][3], reference),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="reduced")
    p.add_argument("--env", default="Acrobot-v1")
    p.add_argument("--setup", default="collaborative_8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2, help="runs per variant, alternating")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats={args.repeats} is not allowed: an integer >= 1")
    base, committed = cell_config(args.profile, args.env, args.setup, args.seed)
    if cpp_compiler() is None:
        raise SystemExit("compile_run.py: torch.compile needs a C++ compiler (g++ or $CXX); none works here")
    started, load = dt.datetime.now(dt.UTC), os.getloadavg()
    df = pd.DataFrame(compare(base, committed, args.repeats))
    name = f"compile_run_{args.env}_{args.setup}"
    md = (
        f"# A whole run with and without compile_loss: {args.env}, {args.setup}, seed {args.seed} "
        f"({args.profile} profile)\n\n"
        f"`python benchmarks/compile_run.py --profile {args.profile} --env {args.env} --setup {args.setup} "
        f"--seed {args.seed} --repeats {args.repeats}`, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} "
        f"cores, torch {torch.__version__}; load average at start {', '.join(f'{x:.2f}' for x in load)}. "
        "`run_experiment` of the workflow's config for this cell, eager and `compile_loss=True` "
        "alternating; wall and CPU seconds of a whole run (compiling included), median over the runs; "
        "the final evaluation's mean return of the first run; `same CSVs as the committed run`: every "
        f"CSV of `data/{args.profile}/runs/{args.env}/{args.setup}/seed{args.seed}/` apart from wall "
        "times.\n\n" + markdown_table(df, ".2f")
    )
    atomic_write_csv(args.out / f"{name}.csv", df)
    atomic_write_text(args.out / f"{name}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=UserWarning)
    sys.exit(main())
