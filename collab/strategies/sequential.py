"""Sequential training (paper section 4.2): one agent trains the whole budget, n * k episodes."""

from __future__ import annotations

from typing import Any

from collab.strategies import Strategy, register


@register
class Sequential(Strategy):
    """One agent, ``n_agents * episodes_per_agent`` training episodes (``n_agents`` is the budget
    multiplier)."""

    name = "sequential"
    role = "sequential"

    @classmethod
    def population(cls, cfg: Any) -> int:
        return 1

    @classmethod
    def budget(cls, cfg: Any) -> int:
        return int(cfg.n_agents) * int(cfg.episodes_per_agent)
