"""Collaborative training (paper sections 3 and 4.2): UCB-gated parameter sharing at every round's end.

The decision is :class:`collab.sharing.UCBSharer` (eq. 1 and 2, and the choices the paper leaves
open); ``c`` and ``lam`` are first-class fields of :class:`collab.ExperimentConfig` (they are the
method), the open choices are this strategy's settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from collab.config import check_choice
from collab.sharing import REWARD_ESTIMATES, RULES, SOURCE_CHOICES, STATS_AFTER_COPY, UCBSharer
from collab.strategies import Decision, RoundInfo, Strategy, register


@dataclass(frozen=True)
class CollaborativeSettings:
    """The open choices of UCB sharing (:mod:`collab.sharing` gives the paper's sentence for each)."""

    rule: str = "literal"
    """Eq. 2: literal (UCB_i > lam UCB_j) | sign_robust (UCB_i - UCB_j > (lam - 1)|UCB_j|)."""
    source_choice: str = "best"
    """Several qualifying sources: best (highest UCB) | random."""
    stats_after_copy: str = "keep"
    """The copier's UCB statistics after a copy: keep | reset | inherit (the source's)."""
    reward_estimate: str = "cumulative"
    """R_hat of eq. 1: cumulative (all training returns so far) | last_round."""

    def validate(self) -> None:
        """ConfigError naming the first setting that is not one of its choices."""
        check_choice("rule", self.rule, RULES)
        check_choice("source_choice", self.source_choice, SOURCE_CHOICES)
        check_choice("stats_after_copy", self.stats_after_copy, STATS_AFTER_COPY)
        check_choice("reward_estimate", self.reward_estimate, REWARD_ESTIMATES)


@register
class Collaborative(Strategy):
    """n agents; at the end of every round an agent takes the state of one whose UCB is clearly higher."""

    name = "collaborative"
    Settings = CollaborativeSettings
    shares = True
    seed_label = "sharing"

    def __init__(
        self,
        cfg: Any,
        settings: CollaborativeSettings,
        n_agents: int,
        hyperparameters: Mapping[str, float],
        seed: int,
    ) -> None:
        super().__init__(cfg, settings, n_agents, hyperparameters, seed)
        s = settings
        self.sharer = UCBSharer(
            n_agents,
            cfg.c,
            cfg.lam,
            s.rule,
            s.source_choice,
            s.stats_after_copy,
            s.reward_estimate,
            seed=seed,
        )

    def decide(self, info: RoundInfo) -> Decision:
        """Eq. 2 on this round's statistics; every share is logged with both UCBs and means."""
        logged = len(self.sharer.log)
        self.sharer.record_round(info.train_returns)
        src = self.sharer.decide(info.episode)
        return Decision(src, [dataclasses.asdict(e) for e in self.sharer.log[logged:]])
