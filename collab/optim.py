"""Optimisation of n agents at once: parameters in one flat ``[n, P]`` buffer, Adam and gradient
clipping per agent (row) of it."""

from __future__ import annotations

import torch

from collab import numerics


def flatten_parameters(module: torch.nn.Module, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-home every parameter of ``module`` (agent axis first) into one flat buffer ``[n, P]``.

    Parameters and their gradients become views into ``flat`` and ``flat_grad``, so the optimiser,
    per-agent gradient clipping and sharing each touch one tensor instead of one per layer.
    Autograd accumulates into the existing ``.grad`` views in place; zero ``flat_grad`` between steps.
    """
    params = list(module.parameters())
    sizes = [p[0].numel() for p in params]
    flat = torch.zeros(n, sum(sizes), device=params[0].device)
    flat_grad = torch.zeros_like(flat)
    off = 0
    for p, size in zip(params, sizes, strict=True):
        flat[:, off : off + size] = p.data.reshape(n, size)
        p.data = flat[:, off : off + size].view(p.shape)
        p.grad = flat_grad[:, off : off + size].view(p.shape)
        off += size
    return flat, flat_grad


@torch.no_grad()
def clip_grad_norms(flat_grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale each agent's gradient (row of ``flat_grad``) in place so its global norm is at most
    ``max_norm`` (as ``torch.nn.utils.clip_grad_norm_``); returns the norms before clipping, ``[n]``."""
    norm = flat_grad.norm(dim=1, keepdim=True)
    flat_grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0))
    return norm.squeeze(1)


class BatchedAdam:
    """Adam over a flat parameter buffer ``[n, P]`` with per-agent step counts, learning rates and mask.

    Matches ``torch.optim.Adam`` for each agent (tested), but an agent whose mask is False in a
    step is left exactly unchanged (torch's Adam would still move it by its momentum).
    """

    def __init__(
        self, params: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5
    ) -> None:
        self.params = params
        self.betas, self.eps = betas, eps
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.step_count = torch.zeros(params.shape[0], dtype=torch.float64)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, lr: torch.Tensor, active: torch.Tensor) -> None:
        """One Adam step with ``grad`` [n, P] for agents where ``active`` [n] is True, per-agent ``lr``."""
        b1, b2 = self.betas
        active = active.to(self.step_count.device)
        self.step_count += active.to(torch.float64)
        started = self.step_count > 0  # an agent that never stepped has no bias correction yet
        one = torch.ones_like(self.step_count)
        bc1 = torch.where(started, 1 - b1**self.step_count, one)
        bc2 = torch.where(started, 1 - b2**self.step_count, one)
        # per-agent step size lr / bc1 and sqrt(bc2), as torch.optim.Adam (non-capturable path)
        dev = self.params.device
        step_size = torch.where(active, lr.to(torch.float64).cpu() / bc1, torch.zeros_like(bc1))
        step_size = step_size.float()[:, None].to(dev)
        bc2_sqrt = numerics.sqrt(bc2).float()[:, None].to(dev)
        a = active.float()[:, None].to(dev)
        m, v = self.exp_avg, self.exp_avg_sq
        m.lerp_(grad, (1 - b1) * a)  # inactive agents: weight 0, m unchanged
        v.mul_(1 - (1 - b2) * a).addcmul_(grad * a, grad, value=1 - b2)
        denom = numerics.sqrt(v).div_(bc2_sqrt).add_(self.eps)  # in place on fresh tensors: same values
        self.params.sub_(torch.mul(step_size, m).div_(denom))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Optimiser state with the agent axis first."""
        return {"adam.m": self.exp_avg, "adam.v": self.exp_avg_sq, "adam.step": self.step_count}
