"""Population Based Training (Jaderberg et al. 2017), the baseline that also copies better agents.

Every round (``validate_every`` episodes of every agent) the agents are ranked by their mean
training return of that round. Each agent in the bottom ``quantile`` copies an agent drawn uniformly
from the top ``quantile`` (its weights, optimiser state and normalisation statistics: the same copy
as a UCB share), then, with ``perturb``, *explores*: its learning rate and entropy coefficient are
each multiplied by 0.8 or 1.2 (drawn independently). The learning rate therefore leaves the paper's
0.0005: that is the point of PBT. As in Ray Tune's ``PopulationBasedTraining``, the bottom and top
sets hold ``ceil(quantile * n)`` agents each, at least one, and never overlap; ties in the ranking go
to the lower agent index.

The decision is a pure function of the scores and a generator (:func:`pbt_sources`); the copy is
:meth:`collab.ppo.PopulationPPO.copy_agents`.
"""

from __future__ import annotations

import math

import numpy as np

#: Factors a perturbed hyperparameter is multiplied by (one drawn per agent and hyperparameter).
PERTURB_FACTORS = (0.8, 1.2)


def quantile_size(n: int, quantile: float) -> int:
    """Agents in the bottom (and in the top) set: ceil(quantile * n), at least 1, at most n // 2."""
    return max(1, min(n // 2, math.ceil(quantile * n - 1e-9)))


def pbt_sources(scores: np.ndarray, quantile: float, rng: np.random.Generator) -> np.ndarray:
    """For every agent j, the agent it copies (``src[j] == j``: none).

    ``scores``: one per agent, higher is better. An agent without a score (NaN: it finished no
    episode this round) is left out of the ranking: it neither copies nor is copied, and the sets are
    sized by the agents that have a score. Ranking is stable: equal scores keep agent order, so among
    equals the lower index ranks lower.
    """
    s = np.asarray(scores, dtype=np.float64)
    src = np.arange(len(s))
    scored = np.flatnonzero(~np.isnan(s))
    if len(scored) < 2:
        return src
    k = quantile_size(len(scored), quantile)
    order = scored[np.argsort(s[scored], kind="stable")]  # worst first
    n = len(order)
    bottom, top = order[:k], order[n - k :]
    for j in bottom:
        src[j] = top[rng.integers(len(top))]
    return src


def perturb(values: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` with each entry of ``targets`` multiplied by 0.8 or 1.2 (drawn from ``rng``)."""
    out = np.array(values, dtype=np.float64)
    for j in targets:
        out[j] *= PERTURB_FACTORS[rng.integers(len(PERTURB_FACTORS))]
    return out
