"""Environment ids and what the package needs to know about them, without running them: checks,
time limits, action-mask tables and the preprocessed observation/action layout (:class:`EnvSpec`).

:func:`collab.run_experiment`, the workflow's grid check and the explorer call these before a run;
:mod:`collab.envs` runs the environments.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from collab.config import ConfigError, ExperimentConfig, PPOConfig


@dataclass(frozen=True)
class EnvSpec:
    """What a network needs to know about an environment after preprocessing."""

    env_id: str
    obs_kind: str  # "vector" | "onehot" | "pixels"
    obs_shape: tuple[int, ...]
    discrete: bool
    action_dim: int  # number of actions (discrete) or action vector length (continuous)
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()


@functools.lru_cache(maxsize=64)
def _gym_spaces(env_id: str) -> tuple[gym.Space, gym.Space]:
    env = gym.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def check_env_id(env_id: str) -> None:
    """Raise ConfigError unless ``env_id`` is a Gymnasium id with Box/Discrete spaces."""
    if not isinstance(env_id, str) or env_id not in gym.registry:
        known = ", ".join(["Acrobot-v1", "Pendulum-v1", "BipedalWalker-v3", "LunarLander-v3"])
        raise ConfigError(
            f"env_id={env_id!r} is not allowed: a registered Gymnasium id "
            f"(e.g. {known}, CarRacing-v3, Taxi-v4)"
        )
    try:
        obs_space, act_space = _gym_spaces(env_id)
    except Exception as e:  # missing optional dependency, e.g. box2d or mujoco
        raise ConfigError(f"env_id={env_id!r} is not allowed: it cannot be created here ({e})") from e
    if not isinstance(obs_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise ConfigError(
            f"env_id={env_id!r} is not allowed: observation space {obs_space} is not Box or Discrete"
        )
    if not isinstance(act_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise ConfigError(
            f"env_id={env_id!r} is not allowed: action space {act_space} is not Box or Discrete"
        )


@functools.lru_cache(maxsize=16)
def action_mask_table(env_id: str) -> np.ndarray | None:
    """Legal actions per state, bool ``[n_states, n_actions]``, or None where the environment has none.

    Defined for Discrete-state, Discrete-action environments whose unwrapped Gymnasium class has an
    ``action_mask(state)`` method (Taxi); built by calling it for every state.
    """
    check_env_id(env_id)
    obs_space, act_space = _gym_spaces(env_id)
    if not isinstance(obs_space, gym.spaces.Discrete) or not isinstance(act_space, gym.spaces.Discrete):
        return None
    env = gym.make(env_id)
    try:
        fn = getattr(env.unwrapped, "action_mask", None)
        if not callable(fn):
            return None
        table = np.stack([np.asarray(fn(s), dtype=bool) for s in range(int(obs_space.n))])
    finally:
        env.close()
    table.setflags(write=False)
    return table


def time_limit(env_id: str, max_episode_steps: int | None = None, frame_skip: int = 1) -> int:
    """The episode time limit (frames) of ``env_id``: ``max_episode_steps``, else its registered one.

    Raises ConfigError where there is neither: an episode of such an environment (CliffWalking-v1
    under a poor policy) could last arbitrarily long and stall training, so the limit must be chosen.
    Also where the limit is shorter than ``frame_skip``: episodes would end inside the reset step
    and never count.
    """
    limit = max_episode_steps
    if limit is None:
        check_env_id(env_id)
        limit = gym.spec(env_id).max_episode_steps
        if limit is None:
            raise ConfigError(
                f"max_episode_steps=None is not allowed for env_id={env_id!r}: it registers no time "
                "limit, so an episode could run forever; an integer >= 1 (e.g. max_episode_steps=200)"
            )
    if limit < frame_skip:
        raise ConfigError(
            f"max_episode_steps={limit} is not allowed with frame_skip={frame_skip}: an integer >= frame_skip"
        )
    return int(limit)


def check_action_masks(env_id: str) -> None:
    """Raise ConfigError unless ``env_id`` provides action masks (see :func:`action_mask_table`)."""
    if action_mask_table(env_id) is None:
        raise ConfigError(
            f"ppo.mask_actions=True is not allowed for env_id={env_id!r}: only environments with "
            "Discrete states and actions whose Gymnasium class has action_mask(state) (e.g. Taxi-v4)"
        )


def env_spec(env_id: str, frame_stack: int = 1, image_size: int = 64) -> EnvSpec:
    """The preprocessed observation/action layout of ``env_id``."""
    check_env_id(env_id)
    obs_space, act_space = _gym_spaces(env_id)
    if isinstance(obs_space, gym.spaces.Discrete):
        kind, shape = "onehot", (int(obs_space.n),)
    elif len(obs_space.shape) == 3 and obs_space.dtype == np.uint8:
        kind, shape = "pixels", (frame_stack, image_size, image_size)
    else:
        kind, shape = "vector", (int(np.prod(obs_space.shape)),)
    if isinstance(act_space, gym.spaces.Discrete):
        return EnvSpec(env_id, kind, shape, True, int(act_space.n))
    return EnvSpec(
        env_id,
        kind,
        shape,
        False,
        int(np.prod(act_space.shape)),
        tuple(float(x) for x in np.ravel(act_space.low)),
        tuple(float(x) for x in np.ravel(act_space.high)),
    )


def check_experiment(cfg: ExperimentConfig) -> None:
    """The checks of a validated configuration that need the environment: the id exists with
    supported spaces, episodes have a time limit, and action masks are supported where asked for.
    Raises ConfigError naming the value and what is allowed."""
    assert isinstance(cfg.ppo, PPOConfig), "validate() the configuration first"
    check_env_id(cfg.env_id)
    time_limit(cfg.env_id, cfg.max_episode_steps, cfg.ppo.frame_skip)
    if cfg.ppo.mask_actions:
        check_action_masks(cfg.env_id)
