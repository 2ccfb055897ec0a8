"""What resumable runs cost: a checkpoint every ``checkpoint_every`` rounds at the paper profile's setting.

Usage::

    python benchmarks/checkpointing.py                      # five MLP environments (~10-20 min, one core)
    python benchmarks/checkpointing.py --envs Acrobot-v1    # some of them

Each environment runs once with the paper profile's budget keys (validation every 100 episodes,
``checkpoint_every: 5``: a segment boundary every 500 episodes per agent, portable numerics), collaborative
training of ``--agents`` agents (default 8, as the paper's largest population), for 600 episodes per agent, so
that one boundary falls, after the first and most expensive segment (the longest episodes). A checkpoint
costs in two ways, both measured in that run:

* **direct**: the wall time of the boundary itself (pickling and writing ``resume.ckpt``, making the
  training environments anew), timed around ``_Run.segment_boundary``;
* **dropped steps**: the steps of the episodes still running when the environments start anew, which
  the run never counts (their data was learned from, but the run needs as many episodes again), priced at
  the segment's own seconds per environment step.

``overhead`` = (direct + dropped steps x seconds per step) / the segment's wall time (from ``curves.csv``,
round 5). Writes ``benchmarks/results/checkpointing.{csv,md}`` after every environment; a later call
replaces the rows of the environments it measures and keeps the others (each row says when and with how
many agents it was measured).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from collab import ExperimentConfig, run_experiment
from collab import experiment as experiment_module
from collab.resume import CHECKPOINT_FILE

RESULTS = Path(__file__).parent / "results"
ENVS = ["Acrobot-v1", "Pendulum-v1", "Taxi-v4", "LunarLander-v3", "BipedalWalker-v3"]
PAPER = {"validate_every": 100, "checkpoint_every": 5, "val_episodes": 5, "eval_episodes": 10}


def measure(env_id: str, agents: int, episodes: int) -> dict:
    """One run with one segment boundary; what the boundary cost."""
    seen: dict[str, float] = {}
    run_cls = experiment_module._Run
    boundary, new_segment = run_cls.segment_boundary, run_cls.new_segment

    def timed_boundary(self) -> None:
        t0 = time.perf_counter()
        boundary(self)
        seen["direct_s"] = time.perf_counter() - t0
        path = Path(self.cfg.out_dir) / CHECKPOINT_FILE
        seen["checkpoint_mb"] = path.stat().st_size / 1e6

    def counting_new_segment(self) -> None:
        env = self.env  # steps since each environment's current episode began (its reset step)
        seen["dropped_steps"] = float(np.clip(env._calls - env._began, 0, None).sum())
        new_segment(self)

    run_cls.segment_boundary, run_cls.new_segment = timed_boundary, counting_new_segment
    try:
        with tempfile.TemporaryDirectory() as out:
            cfg = ExperimentConfig(
                env_id=env_id,
                strategy="collaborative",
                n_agents=agents,
                episodes_per_agent=episodes,
                numerics="portable",
                out_dir=out,
                **PAPER,
            )
            t0 = time.perf_counter()
            result = run_experiment(cfg, progress=False)
            total = time.perf_counter() - t0
    finally:
        run_cls.segment_boundary, run_cls.new_segment = boundary, new_segment
    at = result.curves[result.curves["round"] == PAPER["checkpoint_every"]]
    segment_s = float(at["wall_time_s"].max())
    segment_steps = float(at["env_steps"].sum())
    per_step = segment_s / segment_steps
    overhead = (seen["direct_s"] + seen["dropped_steps"] * per_step) / segment_s
    return {
        "env_id": env_id,
        "agents": agents,
        "segment_s": round(segment_s, 1),
        "segment_env_steps": int(segment_steps),
        "direct_s": round(seen["direct_s"], 3),
        "checkpoint_mb": round(seen["checkpoint_mb"], 2),
        "dropped_steps": int(seen["dropped_steps"]),
        "overhead_pct": round(100 * overhead, 2),
        "run_s": round(total, 1),
        "date": str(dt.date.today()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", nargs="+", default=ENVS)
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--episodes", type=int, default=600, help="per agent (> 500: one boundary)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    csv = RESULTS / "checkpointing.csv"
    for env_id in args.envs:
        row = measure(env_id, args.agents, args.episodes)
        print(row, flush=True)
        table = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
        if len(table):
            table = table[table["env_id"] != env_id]
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
        table["order"] = table["env_id"].map({e: i for i, e in enumerate(ENVS)})
        table = table.sort_values("order").drop(columns="order")
        table.to_csv(csv, index=False)
        md = (
            "# Checkpoint cost at the paper profile's checkpoint_every\n\n"
            f"`python benchmarks/checkpointing.py [--envs ...] [--agents N]` on "
            f"{platform.processor() or platform.machine()}, one torch thread; collaborative agents, "
            f"{args.episodes} episodes each, one boundary after round 5.\n\n"
            + table.to_markdown(index=False)
            + "\n"
        )
        (RESULTS / "checkpointing.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
