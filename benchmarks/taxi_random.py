"""How often does a (near-)random policy deliver the Taxi passenger within the 200-step limit?

Usage: python benchmarks/taxi_random.py [EPISODES]
Prints the delivery rate of a uniform policy over the six actions, and of policies that use pick-up
and drop-off with probability p each (moves share the rest): the README's Taxi diagnosis.
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np


def delivery_rate(p_each: float | None, episodes: int, seed: int = 0) -> tuple[float, float]:
    """(fraction of episodes that deliver, mean return); p_each None = uniform over six actions."""
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


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print("| policy | episodes | delivered | mean return |\n|---|---|---|---|")
    for p in (None, 0.05, 0.01, 0.001):
        rate, mean = delivery_rate(p, n)
        name = "uniform (1/6 each)" if p is None else f"pick-up, drop-off {p:g} each"
        print(f"| {name} | {n} | {rate:.1%} | {mean:.1f} |")
