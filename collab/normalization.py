"""Running statistics for observation and reward normalisation, per agent (SB3's ``VecNormalize``).

Each agent keeps its own statistics (a leading agent axis), which a share copies with the rest of
its state (:meth:`collab.ppo.PopulationPPO.state_tensors`).
"""

from __future__ import annotations

import torch

from collab import numerics
from collab.buffers import per_agent


class RunningMeanStd:
    """Per-agent running mean/variance (parallel algorithm, as SB3's RunningMeanStd), shape [n, *shape]."""

    def __init__(self, n: int, shape: tuple[int, ...] = ()) -> None:
        self.mean = torch.zeros(n, *shape, dtype=torch.float64)
        self.var = torch.ones(n, *shape, dtype=torch.float64)
        self.count = torch.full((n,), 1e-4, dtype=torch.float64)

    def update(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        """x: [n, B, *shape]; mask: [n, B] bool — only masked-in samples count."""
        w = mask.to(torch.float64)
        extra = x.dim() - 2
        wv = w.view(*w.shape, *([1] * extra))
        cnt = w.sum(1)  # [n]
        c = cnt.clamp(min=1).view(-1, *([1] * extra))
        xd = x.to(torch.float64)
        bmean = (xd * wv).sum(1) / c
        bvar = (((xd - bmean.unsqueeze(1)) ** 2) * wv).sum(1) / c
        tot = self.count + cnt
        cv = cnt.view(-1, *([1] * extra))
        sc = self.count.view(-1, *([1] * extra))
        tv = tot.view(-1, *([1] * extra))
        delta = bmean - self.mean
        new_mean = self.mean + delta * cv / tv
        m2 = self.var * sc + bvar * cv + delta**2 * sc * cv / tv
        has = (cnt > 0).view(-1, *([1] * extra))
        self.mean = torch.where(has, new_mean, self.mean)
        self.var = torch.where(has, m2 / tv, self.var)
        self.count = torch.where(cnt > 0, tot, self.count)


def scale_rewards(
    rewards: torch.Tensor,
    done: torch.Tensor,
    valid: torch.Tensor,
    acc: torch.Tensor,
    rms: RunningMeanStd,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale rewards ``[T, n, m]`` by each agent's running std of the discounted return (SB3's
    VecNormalize); ``acc`` [n, m] is the discounted return running in every environment, which
    ``done`` resets. Updates ``rms`` with the valid steps; returns (scaled rewards, new ``acc``)."""
    rets = torch.zeros(rewards.shape, dtype=torch.float64)
    for t in range(rewards.shape[0]):
        acc = acc * gamma + rewards[t].double()
        rets[t] = acc
        acc = acc * (1.0 - done[t].double())
    rms.update(per_agent(rets), per_agent(valid))
    std = numerics.sqrt(rms.var.float() + 1e-8).view(1, -1, 1)
    return (rewards / std).clamp(-10.0, 10.0), acc
