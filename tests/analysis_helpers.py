"""Frames shared by the test_analysis_*.py files: final.csv and curves.csv rows built from a few numbers."""

from __future__ import annotations

import pandas as pd

from collab.results import frame


def _keys(env: str, setup: str, seed: int) -> dict[str, object]:
    """A run's key columns; strategy and n_agents from a paper setup name (``collaborative_<n>``, else 8)."""
    strategy = setup.split("_")[0]
    n = int(setup.split("_")[1]) if strategy == "collaborative" else 8
    return {"env_id": env, "strategy": strategy, "n_agents": n, "seed": seed, "setup": setup}


def _final(rows: list[tuple[str, str, int, list[float]]]) -> pd.DataFrame:
    """final.csv rows: (env_id, setup, seed, episode returns)."""
    out = []
    for env, setup, seed, returns in rows:
        for e, r in enumerate(returns):
            out.append(
                {
                    **_keys(env, setup, seed),
                    "selected_agent": 0,
                    "selected_round": 1,
                    "selected_val_return": 0.0,
                    "eval_episode": e,
                    "return": r,
                }
            )
    return frame("final.csv", out)


def _curves(runs: dict[tuple[str, str, int], list[list[float]]], per_round: int = 100) -> pd.DataFrame:
    """curves.csv rows: {(env, setup, seed): [agent0 val_returns per round, agent1 ..., ...]}."""
    out = []
    for (env, setup, seed), agents in runs.items():
        for a, vals in enumerate(agents):
            for r, v in enumerate(vals, start=1):
                out.append(
                    {
                        **_keys(env, setup, seed),
                        "agent": a,
                        "round": r,
                        "episode": r * per_round,
                        "total_episodes": r * per_round * len(agents),
                        "env_steps": r * 1000,
                        "wall_time_s": 0.0,
                        "train_return": v,
                        "val_return": v,
                        "copied_from": -1,
                    }
                )
    return frame("curves.csv", out)


def _conv_curves() -> pd.DataFrame:
    env = "Pendulum-v1"  # negative rewards
    return _curves(
        {
            # independent: seed 0 reaches the threshold at round 4; seed 1 never does
            (env, "independent", 0): [[-1000, -800, -500, -190, -150], [-1000, -900, -700, -300, -200]],
            (env, "independent", 1): [[-1000, -900, -800, -700, -600], [-1000, -900, -800, -700, -600]],
            # collaborative: both seeds reach it at round 2
            (env, "collaborative_2", 0): [[-1000, -100, -100, -100, -100], [-1000, -100, -100, -100, -100]],
            (env, "collaborative_2", 1): [[-1000, -100, -100, -100, -100], [-1000, -100, -100, -100, -100]],
        }
    )


def _final_from_curves(curves: pd.DataFrame, values: dict[tuple[str, int], float]) -> pd.DataFrame:
    """final.csv with one evaluation episode per run: {(setup, seed): its return}."""
    env = curves["env_id"].iloc[0]
    return _final([(env, st, sd, [v]) for (st, sd), v in values.items()])
