"""Single-agent learning check at a full budget: train one PPO agent, report what it reaches.

Usage: python benchmarks/learning.py ENV_ID EPISODES VALIDATE_EVERY [THRESHOLD] [ppo.FIELD=VALUE ...]
Writes benchmarks/results/learning_<ENV_ID>[_<FIELD>-<VALUE>...].{csv,md} (the curve; overrides
of the environment's PPO settings, e.g. ``ppo.mask_actions=false``, name the files) and prints a
one-line summary:
best validation return, the env steps at which it first reached THRESHOLD, and the final
evaluation (10 episodes) of the best checkpoint.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from collab import ExperimentConfig, run_experiment
from collab.config import ConfigError, parse_overrides, ppo_config_for
from collab.results import atomic_write_csv, atomic_write_text, markdown_table


def main(
    env_id: str,
    episodes: int,
    validate_every: int,
    threshold: float | None = None,
    overrides: dict[str, object] | None = None,
) -> str:
    """Run the check and return the summary line; ``overrides`` replace PPO settings of ``env_id``."""
    overrides = overrides or {}
    ppo = ppo_config_for(env_id, overrides)
    suffix = "".join(f"_{k}-{v}" for k, v in overrides.items())
    label = "".join(f" {k}={v}" for k, v in overrides.items())
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ExperimentConfig(
            env_id=env_id,
            strategy="independent",
            n_agents=1,
            seed=0,
            episodes_per_agent=episodes,
            validate_every=validate_every,
            val_episodes=10,
            eval_episodes=10,
            out_dir=tmp,
            ppo=ppo,
        )
        res = run_experiment(cfg, progress=True)
    c = res.curves[["episode", "env_steps", "wall_time_s", "train_return", "val_return"]]
    out = Path(__file__).parent / "results"
    atomic_write_csv(out / f"learning_{env_id}{suffix}.csv", c)
    reached = c[c["val_return"] >= threshold] if threshold is not None else c.iloc[:0]
    first = int(reached["env_steps"].iloc[0]) if len(reached) else None
    final = res.final["return"]
    line = (
        f"| {env_id}{label} | {int(c['env_steps'].iloc[-1]):,} | {c['wall_time_s'].iloc[-1]:.0f} | "
        f"{c['val_return'].max():.1f} | {threshold if threshold is not None else '-'} | "
        f"{f'{first:,}' if first else 'not reached'} | {final.mean():.1f} +- {final.std(ddof=0):.1f} "
        f"(checkpoint at {int(c['env_steps'].iloc[int(np.argmax(c['val_return']))]):,} steps) |"
    )
    header = (
        "| env | env steps | wall s | best val (10 ep) | threshold | first reached at step | "
        "final eval of best checkpoint |\n|---|---|---|---|---|---|---|\n"
    )
    atomic_write_text(out / f"learning_{env_id}{suffix}.md", header + line + "\n\n" + markdown_table(c))
    return line


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=UserWarning)
    pos = [x for x in sys.argv[1:] if "=" not in x]
    try:
        over = parse_overrides([x for x in sys.argv[1:] if "=" in x], prefix="ppo.")
    except ConfigError as e:
        sys.exit(str(e))
    print(main(pos[0], int(pos[1]), int(pos[2]), float(pos[3]) if len(pos) > 3 else None, over))
