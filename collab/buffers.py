"""What a rollout of the population records: buffers laid out ``[T, n, m, ...]`` (steps, agents,
environments per agent), as Stable-Baselines3's ``RolloutBuffer`` keeps them apart from the algorithm.

The loop that fills them is ``PopulationPPO._rollout`` (:mod:`collab.ppo`, which reads top to
bottom as one PPO iteration: rollout, reward scaling, GAE, update).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def per_agent(x: torch.Tensor) -> torch.Tensor:
    """``[T, n, m, ...]`` -> ``[n, T*m, ...]``: each agent's samples in one row."""
    T, n, m = x.shape[:3]
    return x.transpose(0, 1).reshape(n, T * m, *x.shape[3:])


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


@dataclass
class RolloutStats:
    """What one rollout of the population produced, per agent."""

    episode_returns: list[list[float]]  # counted training episodes' returns, per agent
    steps: np.ndarray  # [n] valid (learned-from) agent steps
