"""Where the time of one agent step goes at n=8, and what train/raw >= 0.5 would require.

Usage: python benchmarks/update_cost.py
Reads benchmarks/results/throughput.csv (benchmarks/throughput.py) and, for the MLP environments,
splits the measured time per agent step at n=8 into env.step, the PPO update and the rest (rollout
forward, sampling, buffers). The update's arithmetic is counted from the networks' weight shapes:
forward multiply-adds per sample = the number of weights of actor and critic; backward ~ 2x forward;
``update_epochs`` passes over every sample. Writes benchmarks/results/update_cost.{csv,md}.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from collab.config import ppo_config_for
from collab.envs import env_spec
from collab.networks import PopulationActorCritic
from collab.results import atomic_write_csv, atomic_write_text, markdown_table

RESULTS = Path(__file__).parent / "results"
MLP_ENVS = ("Acrobot-v1", "LunarLander-v3", "BipedalWalker-v3")


def forward_macs(env_id: str) -> int:
    """Multiply-adds of one forward pass of actor + critic for one sample (= their weight count)."""
    cfg = ppo_config_for(env_id)
    net = PopulationActorCritic(env_spec(env_id), 1, [torch.Generator().manual_seed(0)], cfg.hidden)
    return sum(p[0].numel() for name, p in net.named_parameters() if name.endswith("weight"))


def table(throughput: pd.DataFrame, n: int = 8) -> pd.DataFrame:
    """One row per MLP environment: time split per agent step, update rate, rate needed for 0.5."""
    rows = []
    for env_id in MLP_ENVS:
        t = throughput[(throughput["env_id"] == env_id) & (throughput["n"] == n)]
        ours = t[t["kind"] == "ours"].iloc[0]
        raw = t[t["kind"] == "raw_population"].iloc[0]
        us = 1e6 / ours["sps_median"]
        raw_us = 1e6 / raw["sps_median"]
        env_us, upd_us = us * ours["env_step_share"], us * ours["update_share"]
        cfg = ppo_config_for(env_id)
        macs = 3 * forward_macs(env_id) * cfg.update_epochs  # per agent step, in the update
        # train/raw = 0.5 means at most 2 raw steps' time per step; with env.step as measured and
        # nothing else but the update, the update may take 2*raw - env
        budget = 2 * raw_us - env_us
        rows.append(
            {
                "env_id": env_id,
                "us_per_step": us,
                "env_step_us": env_us,
                "update_us": upd_us,
                "other_us": us - env_us - upd_us,
                "raw_us": raw_us,
                "update_MMAC_per_step": macs / 1e6,
                "update_GMAC_per_s": macs / upd_us / 1e3,
                "update_budget_us_for_0.5": budget,
                "GMAC_per_s_needed_for_0.5": macs / budget / 1e3 if budget > 0 else float("inf"),
            }
        )
    return pd.DataFrame(rows)


def main() -> str:
    """Compute, save and return the table as Markdown."""
    df = table(pd.read_csv(RESULTS / "throughput.csv"))
    atomic_write_csv(RESULTS / "update_cost.csv", df)
    md = markdown_table(df, floatfmt=".2f")
    atomic_write_text(RESULTS / "update_cost.md", md + "\n")
    return md


if __name__ == "__main__":
    print(main())
