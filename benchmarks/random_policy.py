"""Returns of a uniform random policy per environment: the floor that learning is judged against.

Usage: python benchmarks/random_policy.py [ENV_ID ...] [--episodes N]
       python benchmarks/random_policy.py --taxi-delivery [--delivery-episodes N]

Each environment is built as training builds it (``PopulationEnv`` with the environment's PPO
preprocessing: CarRacing's frame skip 2; Taxi's action masks), and every episode runs to its end
(termination or the default time limit) under uniformly random actions: uniform in the Box bounds,
uniform over the actions (Taxi: also uniform over the legal actions only, the masked agents' choice
set). Episodes are seeded apart from training, validation and evaluation (purpose ``"random"``).
Writes ``benchmarks/results/random_policy.{csv,md}`` and prints the table.

``--taxi-delivery``: instead, how often a (near-)random Taxi policy delivers its passenger within the
200-step limit: a uniform policy over the six actions, and policies that use pick-up and drop-off
with probability p each (moves share the rest), the way an unmasked agent's policy drifts
(``docs/method.md``). Writes ``benchmarks/results/taxi_delivery.{csv,md}``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

from collab.config import ppo_config_for
from collab.envs import PopulationEnv
from collab.paper import ENVS as PAPER_ENVS
from collab.results import atomic_write_csv, atomic_write_text, markdown_table

RESULTS = Path(__file__).parent / "results"


def random_returns(env_id: str, episodes: int, masked: bool = False, seed: int = 0) -> np.ndarray:
    """Returns of ``episodes`` episodes (one per environment, run in parallel) under random actions."""
    cfg = ppo_config_for(env_id)
    env = PopulationEnv(
        env_id, 1, episodes, seed, purpose="random", frame_skip=cfg.frame_skip,
        frame_stack=cfg.frame_stack, image_size=cfg.image_size, action_masks=masked,
    )  # fmt: skip
    spec = env.spec
    gen = torch.Generator().manual_seed(seed)
    low, high = torch.tensor(spec.action_low), torch.tensor(spec.action_high)
    env.reset()
    out = np.zeros(episodes)
    done = np.zeros(episodes, dtype=bool)
    for _ in range(env.max_decisions):  # every first episode ends within the time limit
        if spec.discrete:
            legal = (
                env.action_mask() if masked else torch.ones(1, episodes, spec.action_dim, dtype=torch.bool)
            )
            action = torch.multinomial(legal[0].float(), 1, generator=gen).view(1, episodes)
        else:
            u = torch.rand(1, episodes, spec.action_dim, generator=gen)
            action = low + (high - low) * u
        _, _, term, trunc, ep_ret = env.step(action)
        new = (term[0] | trunc[0]) & ~done
        out[new] = ep_ret[0][new]
        done |= new
        if done.all():
            break
    env.close()
    return out


def delivery_rate(p_each: float | None, episodes: int, seed: int = 0) -> tuple[float, float]:
    """Taxi-v4: (fraction of episodes that deliver within 200 steps, mean return) of a policy that
    picks up and drops off with probability ``p_each`` each (None: uniform over the six actions)."""
    env = gym.make("Taxi-v4")
    rng = np.random.default_rng(seed)
    delivered, returns = 0, []
    for ep in range(episodes):
        env.reset(seed=seed * 1_000_003 + ep)
        total = 0.0
        for _ in range(200):
            if p_each is None:
                a = int(rng.integers(6))
            else:
                a = 4 + int(rng.integers(2)) if rng.random() < 2 * p_each else int(rng.integers(4))
            _, r, term, trunc, _ = env.step(a)
            total += float(r)
            if term:
                delivered += 1
                break
            if trunc:
                break
        returns.append(total)
    env.close()
    return delivered / episodes, float(np.mean(returns))


def taxi_delivery(episodes: int, out: Path) -> int:
    """The delivery-rate table (``--taxi-delivery``): writes ``taxi_delivery.{csv,md}``, prints it."""
    rows = []
    for p in (None, 0.05, 0.01, 0.001):
        rate, mean = delivery_rate(p, episodes)
        policy = "uniform (1/6 each)" if p is None else f"pick-up, drop-off {p:g} each"
        rows.append({"policy": policy, "episodes": episodes, "delivered": rate, "mean_return": mean})
        print(f"{policy:30s} delivered {rate:6.1%}, mean return {mean:7.1f}", flush=True)
    df = pd.DataFrame(rows)
    atomic_write_csv(out / "taxi_delivery.csv", df.round(4))
    shown = df.assign(delivered=[f"{x:.1%}" for x in df["delivered"]])
    md = (
        "# Taxi-v4: deliveries of near-random policies\n\n`python benchmarks/random_policy.py "
        f"--taxi-delivery --delivery-episodes {episodes}` (seed 0; 200-step limit; a delivery ends the "
        "episode).\n\n" + markdown_table(shown, ".1f")
    )
    atomic_write_text(out / "taxi_delivery.md", md)
    print()
    print(md)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("envs", nargs="*", default=list(PAPER_ENVS))
    p.add_argument("--episodes", type=int, default=30, help="episodes per environment (CarRacing: a third)")
    p.add_argument(
        "--taxi-delivery", action="store_true", help="how often near-random Taxi policies deliver, instead"
    )
    p.add_argument("--delivery-episodes", type=int, default=2000, help="episodes per --taxi-delivery policy")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.taxi_delivery:
        if args.delivery_episodes < 1:
            sys.exit(f"--delivery-episodes={args.delivery_episodes} is not allowed: at least 1")
        return taxi_delivery(args.delivery_episodes, args.out)
    if args.episodes < 2:
        sys.exit(f"--episodes={args.episodes} is not allowed: at least 2")
    torch.set_num_threads(1)
    rows = []
    for env_id in args.envs:
        n = max(2, args.episodes // 3) if "CarRacing" in env_id else args.episodes
        variants = [("uniform", False)]
        if ppo_config_for(env_id).mask_actions:
            variants.append(("uniform over legal actions", True))
        for policy, masked in variants:
            r = random_returns(env_id, n, masked)
            rows.append(
                {"env_id": env_id, "policy": policy, "episodes": n, "mean": r.mean(), "std": r.std(ddof=1),
                 "min": r.min(), "max": r.max()}
            )  # fmt: skip
            print(
                f"{env_id:18s} {policy:28s} {r.mean():9.1f} +- {r.std(ddof=1):.1f} ({n} episodes)", flush=True
            )
    df = pd.DataFrame(rows)
    atomic_write_csv(args.out / "random_policy.csv", df.round(2))
    md = (
        "# Random-policy returns\n\n`python benchmarks/random_policy.py` (seed 0; each episode runs to its "
        "end under uniformly random actions, environments built as for training).\n\n"
        + markdown_table(df, ".1f")
    )
    atomic_write_text(args.out / "random_policy.md", md)
    print()
    print(md)
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=UserWarning)
    sys.exit(main())
