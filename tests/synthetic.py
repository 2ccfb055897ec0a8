"""A small made-up result set with the schema of ``collab.results``, for the analysis and plot tests.

The numbers mean nothing; nothing here is written under ``data/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from collab.analysis import ProfileData
from collab.paper import ENVS, SETUPS
from collab.results import frame


def paper_setup(name: str) -> dict[str, Any]:
    """{"name", "strategy", "n_agents"} of one of the paper's five setups (independent and sequential: 8)."""
    if name not in SETUPS:
        raise ValueError(f"setup {name!r} is not one of the paper's {SETUPS}: give it as a mapping")
    strategy = name.split("_")[0]
    return {"name": name, "strategy": strategy, "n_agents": int(name.split("_")[1]) if "_" in name else 8}


def synthetic_results(
    envs: Sequence[str] = ENVS,
    setups: Sequence[str | Mapping[str, Any]] = SETUPS,
    seeds: Sequence[int] = (0, 1, 2),
    rounds: int = 10,
    episodes_per_round: int = 100,
    eval_episodes: int = 10,
    rng_seed: int = 0,
) -> ProfileData:
    """A small made-up result set with the schema of ``collab.results``.

    ``setups``: the paper's setup names, or mappings {"name", "strategy", "n_agents", ...} for any
    other (strategy independent, sequential, collaborative or pbt); when any is a mapping, the result's
    ``setups`` lists them all (what ``setups.json`` would hold), else it is empty. Curves rise with a
    setup-dependent speed from a low to a high env-specific level; the collaborative and PBT runs share
    from another agent now and then (PBT: ucb columns NaN, ``lr`` and ``ent_coef`` per agent and round
    in the curves). The numbers mean nothing.
    """
    rng = np.random.default_rng(rng_seed)
    levels = {
        "Acrobot-v1": (-500, -80),
        "Pendulum-v1": (-1400, -160),
        "BipedalWalker-v3": (-110, 100),
        "LunarLander-v3": (-200, 200),
        "CarRacing-v3": (-50, 800),
        "Taxi-v4": (-700, -20),
    }
    speed = {"independent": 1.0, "sequential": 1.5, "collaborative_2": 1.2}
    speed |= {"collaborative_4": 1.6, "collaborative_8": 2.0}
    specs = [paper_setup(s) if isinstance(s, str) else dict(s) for s in setups]
    curves_rows, final_rows, share_rows = [], [], []
    for env in envs:
        lo, hi = levels.get(env, (0, 100))
        for spec in specs:
            setup, strategy, n_agents = spec["name"], spec["strategy"], int(spec["n_agents"])
            sharing = strategy in ("collaborative", "pbt")
            n_run_agents = 1 if strategy == "sequential" else n_agents
            run_rounds = rounds * n_agents if strategy == "sequential" else rounds
            key = {"env_id": env, "strategy": strategy, "n_agents": n_agents, "setup": setup}
            for seed in seeds:
                best = (-math.inf, 0, 0)
                spread = 0.25 if sharing else 0.5
                for agent in range(n_run_agents):
                    tau = run_rounds / (3 * speed.get(setup, 1.0)) * (1 + spread * rng.standard_normal() ** 2)
                    for r in range(1, run_rounds + 1):
                        ep = r * episodes_per_round
                        frac = 1 - math.exp(-r / tau)
                        val = lo + (hi - lo) * frac + 0.03 * (hi - lo) * rng.standard_normal()
                        tot = ep * (1 if strategy == "sequential" else n_run_agents)
                        hyper = (
                            {"lr": 5e-4 * 1.2 ** (agent % 3), "ent_coef": 0.01} if strategy == "pbt" else {}
                        )
                        curves_rows.append(
                            key
                            | hyper
                            | {
                                "seed": seed,
                                "agent": agent,
                                "round": r,
                                "episode": ep,
                                "total_episodes": tot,
                                "env_steps": ep * 200,
                                "wall_time_s": 0.0,
                                "train_return": val - 0.02 * (hi - lo),
                                "val_return": round(val, 3),
                                "copied_from": -1,
                            }
                        )
                        if val > best[0]:
                            best = (val, agent, r)
                        if sharing and agent > 0 and r % 3 == 0:
                            ucb = math.nan if strategy == "pbt" else None
                            share_rows.append(
                                key
                                | {
                                    "seed": seed,
                                    "round": r,
                                    "episode": ep,
                                    "source": (agent + r) % n_run_agents
                                    if (agent + r) % n_run_agents != agent
                                    else 0,
                                    "target": agent,
                                    "ucb_source": round(val + 5, 3) if ucb is None else ucb,
                                    "ucb_target": round(val, 3) if ucb is None else ucb,
                                    "mean_source": round(val + 4, 3),
                                    "mean_target": round(val - 1, 3),
                                }
                            )
                for e in range(eval_episodes):
                    final_rows.append(
                        key
                        | {
                            "seed": seed,
                            "selected_agent": best[1],
                            "selected_round": best[2],
                            "selected_val_return": round(best[0], 3),
                            "eval_episode": e,
                            "return": round(best[0] + 0.03 * (hi - lo) * rng.standard_normal(), 3),
                        }
                    )
    declared = tuple(specs) if any(not isinstance(s, str) for s in setups) else ()
    return ProfileData(
        frame("curves.csv", curves_rows),
        frame("final.csv", final_rows),
        frame("sharing.csv", share_rows),
        declared,
    )
