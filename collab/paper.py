"""What the paper "Collaborative Training" reports, and what its environments can return.

The one home of the paper's facts that the package uses: its six environments (by the Gymnasium id
this package runs, and by the name the paper prints), the five setups of Table 1, Table 1's numbers,
the headline claims' targets and the tasks it calls complex. Beside them, per environment, the range a
mean episode return can take, the return of an episode that failed outright, and the two returns that
normalise a score (a random policy's and a reference score), each with its source: the Gymnasium
environment documentation (https://gymnasium.farama.org), the rl-baselines3-zoo benchmark
(https://github.com/DLR-RM/rl-baselines3-zoo, ``benchmark.md``) and this package's random-policy
benchmark (``benchmarks/random_policy.py``).

Plain Python data, no imports beyond the standard library: configuration, environments and analysis
all read it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

# --------------------------------------------------------------------------------------------
# Environments and setups

#: The six environments of the paper, by the Gymnasium id this package runs, in Table 1's order.
ENVS: tuple[str, ...] = (
    "Acrobot-v1",
    "Pendulum-v1",
    "BipedalWalker-v3",
    "LunarLander-v3",
    "CarRacing-v3",
    "Taxi-v4",
)

#: Our Gymnasium id -> the name the paper's Table 1 prints (Gymnasium 1.x renamed three of them).
PAPER_ENV_NAMES: dict[str, str] = {
    "Acrobot-v1": "Acrobot-v1",
    "Pendulum-v1": "Pendulum-v1",
    "BipedalWalker-v3": "BipedalWalker-v3",
    "LunarLander-v3": "LunarLander-v2",
    "CarRacing-v3": "CarRacing-v2",
    "Taxi-v4": "Taxi-v1",
}

#: Table 1's columns, in the paper's order (a setup name is ``collab.results.setup_name``'s).
SETUPS: tuple[str, ...] = (
    "independent",
    "sequential",
    "collaborative_2",
    "collaborative_4",
    "collaborative_8",
)

#: Setup -> the label Table 1 prints.
SETUP_LABELS: dict[str, str] = {
    "independent": "Independent",
    "sequential": "Sequential",
    "collaborative_2": "2 agents",
    "collaborative_4": "4 agents",
    "collaborative_8": "8 agents",
}

#: The setups in which agents share parameters.
COLLAB_SETUPS: tuple[str, ...] = ("collaborative_2", "collaborative_4", "collaborative_8")

#: The tasks the paper calls complex and high-dimensional (sections 1 and 5).
COMPLEX_ENVS: tuple[str, ...] = ("BipedalWalker-v3", "CarRacing-v3")

# --------------------------------------------------------------------------------------------
# Table 1

#: Table 1 ("Mean evaluation reward per setup, averaged over 10 episodes for each setup and
#: environment after training"), copied unchanged: our Gymnasium id -> one value per setup, in
#: ``SETUPS`` order. Several values lie outside what the environment can return (``ENV_RANGES``).
TABLE1: dict[str, tuple[float, float, float, float, float]] = {
    "Acrobot-v1": (-87.39, -2.07, -72.89, -48.92, -0.55),
    "Pendulum-v1": (-154.16, -107.21, -153.99, -106.86, -106.98),
    "BipedalWalker-v3": (-72.17, 0.05, -46.77, -16.40, 19.66),
    "LunarLander-v3": (96.07, 203.25, 142.60, 204.57, 224.53),
    "CarRacing-v3": (562.83, 724.60, 805.12, 892.26, 981.13),
    "Taxi-v4": (-181.98, -137.15, -180.63, -156.41, -137.79),
}

# --------------------------------------------------------------------------------------------
# The headline claims (abstract and section 5) and the convergence definition (section 4)

CONVERGENCE_FRACTION = 0.9
"""Convergence speed: "the number of episodes required to reach 90% of the maximum reward"."""
CONVERGENCE_TARGET = 0.40
""""up to 40% faster convergence": relative reduction of the episodes to converge."""
REWARD_TARGET = 0.15
""""improves cumulative rewards by 15% in complex tasks" (``COMPLEX_ENVS``): relative gain."""
VARIANCE_TARGET = 0.25
""""a 25% reduction in performance variance among agents": relative reduction of the std."""
VARIANCE_TARGET_COMPLEX = 0.30
""""In BipedalWalker and CarRacing, collaborative training reduced performance variance by over 30%"."""

# --------------------------------------------------------------------------------------------
# What the environments can return


class EnvRange(NamedTuple):
    """What one environment can achieve, for a mean over evaluation episodes."""

    lower: float
    """Lowest achievable mean episode return (NaN: no check)."""
    upper: float
    """Highest achievable mean episode return."""
    upper_kind: str
    """'exact' (follows from the reward definition) or 'approx' (empirical / physical)."""
    source: str
    """Where the numbers come from."""


#: Achievable range of a mean episode return per environment, from the reward definitions in the
#: Gymnasium documentation and the best scores in rl-baselines3-zoo's benchmark.
ENV_RANGES: dict[str, EnvRange] = {
    "Acrobot-v1": EnvRange(
        -500.0,
        -55.0,
        "approx",
        "Gymnasium docs: -1 per step until the goal, 500-step limit, so returns lie in [-500, 0], and a "
        "swing-up takes roughly 60+ steps; best reported means -60 to -75 (rl-baselines3-zoo benchmark: "
        "PPO -73.5, DQN -76.6). Upper bound -55 keeps a small margin.",
    ),
    "Pendulum-v1": EnvRange(
        -3255.0,
        0.0,
        "exact",
        "Gymnasium docs: per-step reward -(theta^2 + 0.1 theta_dot^2 + 0.001 torque^2) in [-16.27, 0], "
        "200 steps, episode in about [-3255, 0].",
    ),
    "BipedalWalker-v3": EnvRange(
        -400.0,
        350.0,
        "approx",
        "Gymnasium docs: 300+ points for reaching the far end, -100 on a fall, torque cost <= ~0.11 per "
        "step over 1600 steps; best reported 329.8 (rl-baselines3-zoo benchmark, TQC).",
    ),
    "LunarLander-v3": EnvRange(
        math.nan,
        350.0,
        "approx",
        "Gymnasium docs: ~100-140 for reaching the pad, +10 per leg contact, +100 on landing, minus fuel; "
        "solved at 200; no practical lower bound checked.",
    ),
    "CarRacing-v3": EnvRange(
        -200.0,
        950.0,
        "approx",
        "Gymnasium docs: -0.1 per frame + 1000/N per tile, so a full lap scores 1000 - 0.1*frames < 1000 "
        "(exact bound), and a lap takes several hundred frames: solved at 900, best episodes ~900-930. "
        "Lower: -0.1*1000 frames - 100 for leaving the playfield.",
    ),
    "Taxi-v4": EnvRange(
        -2000.0,
        10.0,
        "approx",
        "Gymnasium docs: -1 per step, +20 on delivery, -10 per illegal pickup/drop-off, 200-step limit "
        "(so >= -2000; -200 for an episode of legal moves that never delivers), solved at 8; the optimal "
        "policy's expected return from the start-state distribution is 7.93 (value iteration on the "
        "environment's transition table); 10 allows for sampling noise of a 10-episode mean.",
    ),
}

#: Return of an episode that failed outright: it ran to the time limit without reaching the goal
#: (Acrobot: 500 steps of -1, never swung up; Taxi: 200 steps of -1, never delivered, or worse
#: with illegal actions). ``collab.analysis.selection_check`` counts such evaluation episodes.
FAILURE_RETURNS: dict[str, float] = {"Acrobot-v1": -500.0, "Taxi-v4": -200.0}


# --------------------------------------------------------------------------------------------
# Normalised scores: 0 = a uniform random policy, 1 = a reference score


class ScoreReference(NamedTuple):
    """The two returns that map an environment's returns to a normalised score."""

    random: float
    """Mean episode return of a uniform random policy (score 0)."""
    reference: float
    """The best known mean episode return, or the solved level where no benchmark reports one (score 1)."""
    source: str
    """Where the two numbers come from."""


#: Random policies: ``benchmarks/random_policy.py`` of this package (uniform random actions, seed 0,
#: 30 episodes, CarRacing 10, environments built as for training; ``benchmarks/results/random_policy.md``).
#: References: the best mean reward any algorithm reaches in the rl-baselines3-zoo benchmark
#: (https://github.com/DLR-RM/rl-baselines3-zoo, ``benchmark.md``); for the two environments it does
#: not list, Gymnasium's registered ``reward_threshold`` (https://gymnasium.farama.org).
SCORE_REFERENCES: dict[str, ScoreReference] = {
    "Acrobot-v1": ScoreReference(
        -500.0,
        -69.1,
        "random: benchmarks/random_policy.py; reference: rl-baselines3-zoo benchmark, QR-DQN -69.1",
    ),
    "Pendulum-v1": ScoreReference(
        -1249.7,
        -151.9,
        "random: benchmarks/random_policy.py; reference: rl-baselines3-zoo benchmark, TD3 -151.9",
    ),
    "BipedalWalker-v3": ScoreReference(
        -100.4,
        329.8,
        "random: benchmarks/random_policy.py; reference: rl-baselines3-zoo benchmark, TQC 329.8",
    ),
    "LunarLander-v3": ScoreReference(
        -164.0,
        242.1,
        "random: benchmarks/random_policy.py; reference: rl-baselines3-zoo benchmark, PPO 242.1 on "
        "LunarLander-v2 (the same task)",
    ),
    "CarRacing-v3": ScoreReference(
        -26.1,
        900.0,
        "random: benchmarks/random_policy.py; reference: Gymnasium's reward_threshold 900 (solved); "
        "rl-baselines3-zoo's benchmark has no CarRacing entry",
    ),
    "Taxi-v4": ScoreReference(
        -173.2,
        8.0,
        "random: benchmarks/random_policy.py, uniform over the legal actions (the masked agents' choice "
        "set; uniform over all six: -731.6); reference: Gymnasium's reward_threshold 8 (the optimum is 7.93)",
    ),
}
