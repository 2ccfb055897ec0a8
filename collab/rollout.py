"""What a rollout of the population records, and what PPO learns from it: buffers laid out
``[T, n, m, ...]`` (steps, agents, environments per agent), running normalisation statistics,
reward scaling and generalised advantage estimation.

The loop that steps the environments under the agents' policies is ``PopulationPPO._rollout``
(:meth:`collab.ppo.PopulationPPO.collect_and_update` runs it, then the update); this module holds the
pieces that do not need the networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from collab import numerics


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


def per_agent(x: torch.Tensor) -> torch.Tensor:
    """``[T, n, m, ...]`` -> ``[n, T*m, ...]``: each agent's samples in one row."""
    T, n, m = x.shape[:3]
    return x.transpose(0, 1).reshape(n, T * m, *x.shape[3:])


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    cont: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the leading time axis; returns (advantages, returns).

    ``next_values[t]`` is V of the observation returned by step t. Bootstrapping stops only on
    ``terminated[t]`` (a true end); a truncated episode bootstraps from its final observation.
    ``cont[t]`` is 1 when A_t continues into A_{t+1}: step t did not end an episode and step t+1
    is a valid transition of the same agent.
    """
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values
    coef = gamma * lam * cont  # (gamma * lam) * cont[t], as in the textbook recursion below
    d, c = deltas.unbind(0), coef.unbind(0)
    last = torch.zeros_like(values[0])
    out = []
    for t in range(values.shape[0] - 1, -1, -1):
        last = d[t] + c[t] * last  # A_t = delta_t + gamma * lam * cont_t * A_{t+1}
        out.append(last)
    adv = torch.stack(out[::-1]) if out else torch.zeros_like(values)
    return adv, adv + values


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


@dataclass
class Rollout:
    """One rollout of the population, ``used`` steps, tensors laid out ``[T, n, m, ...]``."""

    obs: torch.Tensor  # the policy's inputs (normalised observations with norm_obs)
    raw_obs: torch.Tensor | None  # the observations themselves, kept only with norm_obs
    actions: torch.Tensor
    logp: torch.Tensor
    values: torch.Tensor
    masks: torch.Tensor | None  # [T, n, m, A]: the legal actions sampled from (mask_actions)
    rewards: torch.Tensor  # float32, as the environment returned them
    terminated: torch.Tensor  # float: the episode truly ended at this step
    done: torch.Tensor  # float: the episode ended at this step (terminated or truncated)
    valid: torch.Tensor  # bool: a learned-from step (its agent still learning, not a reset step)
    last_obs: torch.Tensor  # [n, m, ...]: the observation after the last step
    last_value: torch.Tensor  # [n, m]: V(last_obs)
    active: torch.Tensor  # [n] bool: agents still learning after the last step
    was_done: torch.Tensor  # [n, m] bool: the last step ended an episode
    returns: list[list[float]]  # counted training episodes' returns, per agent

    @property
    def steps(self) -> np.ndarray:
        """Valid (learned-from) agent steps, per agent."""
        return self.valid.numpy().sum((0, 2))

    def seen_obs(self, vector: bool) -> torch.Tensor | None:
        """The observations acted on, where they can be non-finite (vectors), else None."""
        if not vector:
            return None
        return self.raw_obs if self.raw_obs is not None else self.obs


class RolloutBuffer:
    """Records a rollout of at most ``T`` steps as it happens; :meth:`finish` makes the :class:`Rollout`.

    Environment outputs go to pre-allocated numpy arrays, the policy's outputs to lists stacked once
    at the end. ``keep_raw`` (with norm_obs): the policy's inputs are fresh normalised tensors; the
    raw observations are kept as well, for the statistics. Otherwise the input is the observation,
    copied (it may be the environment's own tensor).
    """

    def __init__(
        self, T: int, n: int, m: int, obs_shape: tuple[int, ...], pixels: bool, keep_raw: bool
    ) -> None:
        if keep_raw:
            self.obs, self.raw = None, torch.zeros((T, n, m, *obs_shape))
        else:
            self.obs = torch.zeros((T, n, m, *obs_shape), dtype=torch.uint8 if pixels else torch.float32)
            self.raw = None
        self.xs: list[torch.Tensor] = []
        self.actions: list[torch.Tensor] = []
        self.logp: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        self.rewards = np.zeros((T, n, m), dtype=np.float32)
        self.terminated = np.zeros((T, n, m), dtype=bool)
        self.done = np.zeros((T, n, m), dtype=bool)
        self.valid = np.zeros((T, n, m), dtype=bool)
        self.returns: list[list[float]] = [[] for _ in range(n)]

    def record_policy(
        self,
        t: int,
        obs: torch.Tensor,
        x: torch.Tensor,
        action: torch.Tensor,
        logp: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> None:
        """Step t's observation ``obs``, the policy's input ``x`` and what the policy did with it."""
        if self.raw is not None:
            self.raw[t] = obs
            self.xs.append(x.cpu())
        else:  # x may be the environment's own tensor: copy it
            self.obs[t] = x.cpu()  # type: ignore[index]
        self.actions.append(action)
        self.logp.append(logp)
        self.values.append(value)
        if mask is not None:
            self.masks.append(mask)

    def record_step(
        self, t: int, valid: np.ndarray, reward: np.ndarray, terminated: np.ndarray, done: np.ndarray
    ) -> None:
        """What step t's environment step returned ([n, m] each) and which of its samples are valid."""
        self.valid[t] = valid
        self.rewards[t] = reward
        self.terminated[t] = terminated
        self.done[t] = done

    def finish(
        self,
        used: int,
        last_obs: torch.Tensor,
        last_value: torch.Tensor,
        active: np.ndarray,
        was_done: np.ndarray,
    ) -> Rollout:
        """The first ``used`` steps as a :class:`Rollout` (policy outputs moved to the CPU)."""
        sl = slice(0, used)
        return Rollout(
            obs=torch.stack(self.xs) if self.obs is None else self.obs[sl],
            raw_obs=self.raw[sl] if self.raw is not None else None,
            actions=torch.stack(self.actions).cpu(),
            logp=torch.stack(self.logp).cpu(),
            values=torch.stack(self.values).cpu(),
            masks=torch.stack(self.masks) if self.masks else None,
            rewards=torch.from_numpy(self.rewards[sl]),
            terminated=torch.from_numpy(self.terminated[sl]).float(),
            done=torch.from_numpy(self.done[sl]).float(),
            valid=torch.from_numpy(self.valid[sl]),
            last_obs=last_obs,
            last_value=last_value,
            active=torch.from_numpy(active),
            was_done=torch.from_numpy(was_done),
            returns=self.returns,
        )


def advantages(
    ro: Rollout, rewards: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns of a rollout with (possibly scaled) ``rewards``.

    A step's advantage continues into the next step when the step did not end an episode and the
    next step is valid; after the last step, when the agent is still learning and its environment
    did not just end an episode (the next rollout continues it).
    """
    n, m = ro.was_done.shape
    next_values = torch.cat([ro.values[1:], ro.last_value.unsqueeze(0)], dim=0)
    goes_on = ro.active.view(1, n, 1).expand(1, n, m) & ~ro.was_done.unsqueeze(0)
    next_valid = torch.cat([ro.valid[1:], goes_on])
    cont = (1.0 - ro.done) * next_valid.float()
    return gae(rewards, ro.values, next_values, ro.terminated, cont, gamma, lam)


@dataclass
class RolloutStats:
    """What one rollout of the population produced, per agent."""

    episode_returns: list[list[float]]  # counted training episodes' returns, per agent
    steps: np.ndarray  # [n] valid (learned-from) agent steps
    diagnostics: dict[str, np.ndarray]  # per-agent approx_kl and clipfrac of the update
