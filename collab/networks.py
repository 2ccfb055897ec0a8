"""Population actor-critic networks: n agents' weights stacked on a leading agent axis.

One forward call evaluates every agent on its own batch: linear layers are ``torch.baddbmm``
over stacked weights ``[n, in, out]`` and convolutions are grouped (``groups=n``). Every parameter
has the agent axis first, so an agent's state is ``p[a]`` for every parameter ``p`` and sharing is an
index copy.

Architecture (CleanRL): separate 64-64 tanh actor and critic MLPs, orthogonal init with gain
sqrt(2) for hidden layers, 0.01 for the actor head and 1.0 for the critic head; a Gaussian head with
a state-independent log-std for continuous actions. Pixels: a shared Nature-style CNN trunk
(32-64-64 filters) and a 512-unit layer, then actor and critic heads (SB3 CnnPolicy).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from collab import numerics
from collab.spaces import EnvSpec


def _orthogonal(shape: tuple[int, int], gain: float, gen: torch.Generator) -> torch.Tensor:
    w = torch.empty(shape)
    nn.init.orthogonal_(w, gain=gain, generator=gen)
    return w


class PopulationLinear(nn.Module):
    """``y[a] = x[a] @ W[a] + b[a]`` for every agent a, in one ``baddbmm``."""

    def __init__(self, n: int, d_in: int, d_out: int, gain: float, gens: list[torch.Generator]) -> None:
        super().__init__()
        w = torch.stack([_orthogonal((d_out, d_in), gain, g).T for g in gens])
        self.weight = nn.Parameter(w.contiguous())  # [n, in, out]
        self.bias = nn.Parameter(torch.zeros(n, 1, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [n, B, in] -> [n, B, out]."""
        return torch.baddbmm(self.bias, x, self.weight)


class PopulationConv2d(nn.Module):
    """Per-agent Conv2d as one grouped convolution; weight ``[n, out, in, k, k]``."""

    def __init__(
        self, n: int, c_in: int, c_out: int, k: int, stride: int, gain: float, gens: list[torch.Generator]
    ) -> None:
        super().__init__()
        w = torch.stack([_orthogonal((c_out, c_in * k * k), gain, g).view(c_out, c_in, k, k) for g in gens])
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(n, c_out))
        self.n, self.stride = n, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, n*in, H, W] (agent-major channels) -> [B, n*out, H', W']."""
        n, c_out, c_in, k, _ = self.weight.shape
        return nn.functional.conv2d(
            x, self.weight.reshape(n * c_out, c_in, k, k), self.bias.reshape(-1), stride=self.stride, groups=n
        )


class PopulationMLP(nn.Module):
    """A tanh MLP per agent: in -> hidden -> hidden -> out."""

    def __init__(
        self,
        n: int,
        d_in: int,
        hidden: int,
        d_out: int,
        out_gain: float,
        gens: list[torch.Generator],
        in_gain: float = math.sqrt(2),
    ) -> None:
        super().__init__()
        g = math.sqrt(2)
        self.l1 = PopulationLinear(n, d_in, hidden, in_gain, gens)
        self.l2 = PopulationLinear(n, hidden, hidden, g, gens)
        self.l3 = PopulationLinear(n, hidden, d_out, out_gain, gens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [n, B, in] -> [n, B, out]."""
        # the layers' baddbmm written out: the same operations without three nn.Module calls,
        # whose overhead is a measurable share of a rollout step with small batches
        l1, l2, l3 = self.l1, self.l2, self.l3
        h = numerics.tanh(torch.baddbmm(l1.bias, x, l1.weight))
        h = numerics.tanh(torch.baddbmm(l2.bias, h, l2.weight))
        return torch.baddbmm(l3.bias, h, l3.weight)


class PopulationCNNTrunk(nn.Module):
    """Nature-CNN trunk per agent for ``[C, S, S]`` uint8 frames, ending in a 512-unit ReLU layer."""

    def __init__(self, n: int, obs_shape: tuple[int, ...], gens: list[torch.Generator]) -> None:
        super().__init__()
        c, s, _ = obs_shape
        g = math.sqrt(2)
        self.c1 = PopulationConv2d(n, c, 32, 8, 4, g, gens)
        self.c2 = PopulationConv2d(n, 32, 64, 4, 2, g, gens)
        self.c3 = PopulationConv2d(n, 64, 64, 3, 1, g, gens)
        side = ((s - 8) // 4 + 1 - 4) // 2 + 1 - 2
        self.flat = 64 * side * side
        self.fc = PopulationLinear(n, self.flat, 512, g, gens)
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [n, B, C, S, S] uint8 -> [n, B, 512]."""
        n, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, n * x.shape[2], *x.shape[3:]).float() / 255.0
        h = torch.relu(self.c3(torch.relu(self.c2(torch.relu(self.c1(h))))))
        h = h.reshape(b, n, self.flat).transpose(0, 1)
        return torch.relu(self.fc(h))


class PopulationActorCritic(nn.Module):
    """Actor-critic for n agents. ``forward(obs) -> (actor_out, value)``.

    ``actor_out`` is logits ``[n, B, A]`` (discrete) or the Gaussian mean ``[n, B, A]``
    (continuous; std = exp(``log_std[a]``), state-independent). ``value`` is ``[n, B]``.
    ``gens[a]`` seeds agent a's initial weights, so agent a's init depends only on its generator.
    """

    def __init__(
        self, spec: EnvSpec, n: int, gens: list[torch.Generator], hidden: int = 64, log_std_init: float = 0.0
    ) -> None:
        super().__init__()
        self.spec, self.n = spec, n
        a = spec.action_dim
        if spec.obs_kind == "pixels":
            self.trunk: PopulationCNNTrunk | None = PopulationCNNTrunk(n, spec.obs_shape, gens)
            self.actor_head = PopulationLinear(n, 512, a, 0.01, gens)
            self.critic_head = PopulationLinear(n, 512, 1, 1.0, gens)
        else:
            self.trunk = None
            d = spec.obs_shape[0]
            # One-hot inputs select one column of the first layer; an orthogonal [hidden, d] matrix
            # with d >> hidden has columns of norm ~sqrt(hidden/d), which makes all states look
            # alike at init. Scale the gain so every state's column has norm ~sqrt(2) (an embedding).
            g_in = (
                math.sqrt(2) * max(1.0, math.sqrt(d / hidden)) if spec.obs_kind == "onehot" else math.sqrt(2)
            )
            self.actor = PopulationMLP(n, d, hidden, a, 0.01, gens, g_in)
            self.critic = PopulationMLP(n, d, hidden, 1, 1.0, gens, g_in)
        if not spec.discrete:
            self.log_std = nn.Parameter(torch.full((n, 1, a), float(log_std_init)))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs: [n, B, *obs_shape] -> (actor_out [n, B, A], value [n, B])."""
        if self.trunk is not None:
            h = self.trunk(obs)
            return self.actor_head(h), self.critic_head(h).squeeze(-1)
        # forward() directly: the MLPs have no hooks, and two nn.Module calls per rollout step add up
        return self.actor.forward(obs), self.critic.forward(obs).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """Critic only: [n, B]."""
        if self.trunk is not None:
            return self.critic_head(self.trunk(obs)).squeeze(-1)
        return self.critic(obs).squeeze(-1)


def log_prob_entropy(
    actor_out: torch.Tensor, log_std: torch.Tensor | None, actions: torch.Tensor, discrete: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``actions`` and policy entropy, both ``[n, B]`` (closed form, no distributions)."""
    if discrete:
        logp_all = torch.log_softmax(actor_out, dim=-1)
        logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        ent = -(numerics.exp(logp_all) * logp_all).sum(-1)
        return logp, ent
    assert log_std is not None
    var_term = ((actions - actor_out) / numerics.exp(log_std)) ** 2
    logp = (-0.5 * var_term - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    ent = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1).expand_as(logp)
    return logp, ent


def sample_action(
    actor_out: torch.Tensor,
    log_std: torch.Tensor | None,
    noise: torch.Tensor,
    discrete: bool,
    deterministic: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample actions from pre-drawn noise; returns (action, log-prob).

    Discrete: Gumbel-max with ``noise`` = standard Gumbel draws ``[n, B, A]``. Continuous:
    ``mu + std * noise`` with standard-normal ``noise`` ``[n, B, A]``. Deterministic: argmax / mean.
    """
    if discrete:
        logp_all = torch.log_softmax(actor_out, dim=-1)
        action = logp_all.argmax(-1) if deterministic else (logp_all + noise).argmax(-1)
        return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
    assert log_std is not None
    if deterministic:
        action = actor_out
        return action, torch.zeros(actor_out.shape[:-1])
    std = numerics.exp(log_std)
    action = actor_out + std * noise
    logp = (-0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    return action, logp
