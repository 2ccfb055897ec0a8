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
the experiment runner's (:meth:`collab.ppo.PopulationPPO.copy_agents`). Its settings are
``pbt_quantile`` and ``pbt_perturb``; its ``sharing.csv`` rows have no UCB (``ucb_source`` and
``ucb_target`` empty) and their means are the round's mean training returns; ``curves.csv`` gets the
columns ``lr`` and ``ent_coef`` (what each agent trained with in that round).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from collab.config import ConfigError
from collab.strategies import Decision, RoundInfo, Strategy, register

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


@dataclass(frozen=True)
class PBTSettings:
    """Population Based Training's settings."""

    pbt_quantile: float = 0.25
    """The bottom and top fractions of the population by the round's mean training return; each
    bottom agent copies a random top agent. In (0, 0.5]."""
    pbt_perturb: bool = True
    """After a copy, multiply the copier's learning rate and entropy coefficient by 0.8 or 1.2."""

    def validate(self) -> None:
        """ConfigError naming a setting out of range."""
        q = self.pbt_quantile
        if not isinstance(q, (int, float)) or isinstance(q, bool) or not 0 < q <= 0.5:
            raise ConfigError(f"pbt_quantile={q!r} is not allowed: a number in (0, 0.5]")
        if not isinstance(self.pbt_perturb, bool):
            raise ConfigError(f"pbt_perturb={self.pbt_perturb!r} is not allowed: True or False")


@register
class PBT(Strategy):
    """Exploit (the bottom quantile copies random top agents: weights and hyperparameters), then
    explore (perturb the copiers' learning rate and entropy coefficient), every round."""

    name = "pbt"
    Settings = PBTSettings
    shares = True
    role = "sharing_baseline"

    def __init__(
        self, cfg: Any, settings: PBTSettings, n_agents: int, hyperparameters: Mapping[str, float], seed: int
    ) -> None:
        super().__init__(cfg, settings, n_agents, hyperparameters, seed)
        self.lr = np.full(n_agents, hyperparameters["lr"])
        self.ent_coef = np.full(n_agents, hyperparameters["ent_coef"])
        self.rng = np.random.default_rng(seed)

    @classmethod
    def check(cls, cfg: Any, settings: Any) -> None:
        if cfg.n_agents < 2:
            raise ConfigError(
                f"n_agents={cfg.n_agents!r} is not allowed: an integer >= 2 with strategy='pbt'"
            )

    def curve_columns(self) -> list[dict[str, float]]:
        """Each agent's learning rate and entropy coefficient (curves.csv columns ``lr``, ``ent_coef``)."""
        return [{"lr": float(a), "ent_coef": float(b)} for a, b in zip(self.lr, self.ent_coef, strict=True)]

    def decide(self, info: RoundInfo) -> Decision:
        """Rank by the round's mean training return, copy, perturb; one event per copy."""
        returns = info.train_returns
        scores = np.array([np.mean(r) if r else np.nan for r in returns])
        src = pbt_sources(scores, self.settings.pbt_quantile, self.rng)
        targets = np.flatnonzero(src != np.arange(len(src)))
        if targets.size == 0:
            return Decision(src)
        self.lr, self.ent_coef = self.lr[src], self.ent_coef[src]
        if self.settings.pbt_perturb:
            self.lr = perturb(self.lr, targets, self.rng)
            self.ent_coef = perturb(self.ent_coef, targets, self.rng)
        no_ucb = {"ucb_source": np.nan, "ucb_target": np.nan}
        events = [
            {"round": info.round, "episode": info.episode, "source": int(src[j]), "target": int(j),
             **no_ucb, "mean_source": scores[src[j]], "mean_target": scores[j]}
            for j in targets
        ]  # fmt: skip
        return Decision(src, events, {"lr": self.lr, "ent_coef": self.ent_coef})
