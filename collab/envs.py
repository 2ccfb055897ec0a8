"""Batched environments for a population: n agents x m environments each, one step call.

Two backends give the same layout and the same *next-step autoreset* semantics:

* ``envpool``: all n*m environments in one C++ pool. ``backend="auto"`` picks it (where installed)
  only for the ids in :data:`ENVPOOL_TESTED`, whose equivalence with Gymnasium (spaces, time limits,
  ``max_episode_steps`` honoured, step layout) ``tests/test_envs.py`` checks; any other id runs on
  Gymnasium unless ``backend="envpool"`` asks for envpool (:mod:`collab.envpool_backend`, which
  also resets and steps the pool without envpool's Python layer).
* ``gymnasium``: ``gymnasium.vector.SyncVectorEnv`` with ``AutoresetMode.NEXT_STEP`` (the reference).

Next-step autoreset: the step that ends an episode returns the episode's *final* observation;
the next step call resets that environment (its action is ignored, reward 0). The trainer marks
that reset step invalid (see :mod:`collab.ppo`). An episode ends exactly where the step's
``terminated | truncated`` is True (explicit booleans; nothing is inferred from return values).

Time limits: every episode is bounded. The limit is ``max_episode_steps`` where given, else the
id's registered Gymnasium time limit; an id with neither (e.g. CliffWalking-v1) is refused with a
:class:`ConfigError` asking for ``max_episode_steps`` (:func:`collab.spaces.time_limit`). The
Gymnasium backend wraps every environment in that ``TimeLimit``; envpool is given the same limit, and
:class:`PopulationEnv` itself checks that every episode ends within it, raising
:class:`EpisodeLimitError` instead of stepping on where a backend ignores it (envpool's
CliffWalking does).

Observations are preprocessed here into a float32/uint8 torch tensor shaped
``[n_agents, envs_per_agent, *obs_shape]``:

* Box vectors: float32, flattened.
* Discrete states (Taxi): one-hot float32 vectors.
* Images (HxWx3 uint8, CarRacing): grayscale, resized to ``image_size`` squared (bilinear,
  antialiased), ``frame_stack`` frames stacked on the channel axis, uint8 (the network divides by
  255). With ``frame_skip`` > 1 each action is repeated that many frames and rewards are summed, as
  rl-zoo does for CarRacing (frame skip 2, 64x64 grayscale, 2 stacked frames).

Action masks (``action_masks=True``): for environments with Discrete states whose Gymnasium class
has an ``action_mask(state)`` method (Taxi: moves into walls and illegal pick-up/drop-off are
masked), :meth:`PopulationEnv.action_mask` gives the legal actions of every current state, from a
table built once with Gymnasium's own method, so both backends mask identically.

Seeds: environment j of agent a gets ``derive_seed(seed, purpose, a, j)``; with ``shared_seeds``
(validation, evaluation) ``derive_seed(seed, purpose, j)``, so every agent meets the same episodes.

The checks of environment ids and the preprocessed layout (:class:`EnvSpec`) live in
:mod:`collab.spaces`; their names are importable from here as well.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from collab.config import PPOConfig
from collab.envpool_backend import (
    EnvpoolDirect,
    make_pool,
    resolve_backend,
)
from collab.spaces import (
    action_mask_table,
    check_action_masks,
    env_spec,
    time_limit,
)


def grayscale_frames(raw: np.ndarray, size: int) -> torch.Tensor:
    """Raw HxWx3 uint8 images [N,H,W,3] -> grayscale uint8 [N,size,size] (antialiased bilinear
    resize, rounded): what every pixel network sees, in training and when a saved agent plays."""
    x = torch.from_numpy(np.ascontiguousarray(raw)).float()
    gray = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    if gray.shape[-1] != size or gray.shape[-2] != size:
        gray = F.interpolate(gray[:, None], size=(size, size), mode="bilinear", antialias=True)[:, 0]
    return gray.round_().clamp_(0, 255).to(torch.uint8)


def derive_seed(seed: int, purpose: str, *indices: int) -> int:
    """A 31-bit seed that depends only on (seed, purpose, indices)."""
    tag = sum(ord(ch) * 31**i for i, ch in enumerate(purpose)) % (2**31)
    ss = np.random.SeedSequence([seed, tag, *[int(i) + 1 for i in indices]])
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)


class EpisodeLimitError(RuntimeError):
    """An environment ran an episode past its time limit: its backend does not honour the limit."""


class PopulationEnv:
    """``n_agents x envs_per_agent`` environments stepped as one batch.

    ``step`` takes actions shaped ``[n, m]`` (discrete) or ``[n, m, d]`` (continuous) and returns
    ``(obs, reward, terminated, truncated, episode_return)``; obs is a torch tensor
    ``[n, m, *spec.obs_shape]``, the rest numpy ``[n, m]``. An episode ended this step exactly where
    ``terminated | truncated``; there ``episode_return`` holds its full undiscounted return (all
    frames), elsewhere 0.

    Every episode ends within ``max_episode_steps`` frames (:func:`time_limit`), i.e. within
    ``max_decisions`` step calls after its reset; a backend that lets one run longer raises
    :class:`EpisodeLimitError`. A NaN continuous action (a diverged policy) reaches the simulator as
    the action space's lower bound, so that the simulator stays valid until the trainer reports
    the divergence.

    ``num_threads``: envpool worker threads (each environment keeps its own seed, so results do
    not depend on it; the gymnasium backend steps in the calling thread and ignores it).
    """

    def __init__(
        self,
        env_id: str,
        n_agents: int,
        envs_per_agent: int,
        seed: int,
        purpose: str = "train",
        shared_seeds: bool = False,
        backend: str = "auto",
        max_episode_steps: int | None = None,
        frame_skip: int = 1,
        frame_stack: int = 1,
        image_size: int = 64,
        action_masks: bool = False,
        num_threads: int = 1,
    ) -> None:
        self.spec = env_spec(env_id, frame_stack, image_size)
        if action_masks:
            check_action_masks(env_id)
        self._mask_table = torch.from_numpy(action_mask_table(env_id).copy()) if action_masks else None
        self._state: torch.Tensor | None = None  # current discrete states [N] (for the masks)
        self.n, self.m = n_agents, envs_per_agent
        self.num = n_agents * envs_per_agent
        self.frame_skip, self.image_size = frame_skip, image_size
        self.max_episode_steps = time_limit(env_id, max_episode_steps, frame_skip)
        #: step calls an episode takes at most after its reset (frames / frame_skip, rounded up)
        self.max_decisions = -(-self.max_episode_steps // frame_skip)
        self.backend = resolve_backend(env_id, backend)
        self.seeds = [
            derive_seed(seed, purpose, j) if shared_seeds else derive_seed(seed, purpose, a, j)
            for a in range(n_agents)
            for j in range(envs_per_agent)
        ]
        if self.backend == "envpool":
            self._env = make_pool(env_id, self.seeds, num_threads, self.max_episode_steps)
        else:
            limit = self.max_episode_steps
            self._env = gym.vector.SyncVectorEnv(
                [functools.partial(gym.make, env_id, max_episode_steps=limit) for _ in range(self.num)],
                autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
            )
        #: envpool's reset and step without its Python layer (None: the backend's own calls)
        self._direct = EnvpoolDirect.of(self._env) if self.backend == "envpool" else None
        low = np.asarray(self.spec.action_low, dtype=np.float32)
        high = np.asarray(self.spec.action_high, dtype=np.float32)
        self._low, self._high = low, high
        self._stack: torch.Tensor | None = None
        self._ep_return = np.zeros(self.num, dtype=np.float64)
        self._was_done = np.zeros(self.num, dtype=bool)
        # time-limit guard: step calls since reset(), the call at which each env's episode began
        # (its reset step), and the earliest call by which some running episode must have ended
        self._calls = 0
        self._began = np.zeros(self.num, dtype=np.int64)
        self._deadline = self.max_decisions

    @classmethod
    def for_ppo(
        cls,
        env_id: str,
        n_agents: int,
        ppo: PPOConfig,
        seed: int = 0,
        envs_per_agent: int | None = None,
        **kwargs: Any,
    ) -> PopulationEnv:
        """The pool that agents with settings ``ppo`` act in: its frame skip and stack, image size and
        action masks; ``ppo.num_envs`` environments per agent unless ``envs_per_agent`` is given.
        Other keyword arguments (``purpose``, ``backend``, ``num_threads``, ...) go to the constructor.
        """
        return cls(
            env_id,
            n_agents,
            ppo.num_envs if envs_per_agent is None else envs_per_agent,
            seed,
            frame_skip=ppo.frame_skip,
            frame_stack=ppo.frame_stack,
            image_size=ppo.image_size,
            action_masks=ppo.mask_actions,
            **kwargs,
        )

    # -- preprocessing ---------------------------------------------------------------------------
    def _frames(self, raw: np.ndarray) -> torch.Tensor:
        return grayscale_frames(raw, self.image_size)

    def _process(self, raw: np.ndarray, new_episode: np.ndarray | None) -> torch.Tensor:
        kind = self.spec.obs_kind
        if kind == "onehot":
            idx = torch.from_numpy(np.asarray(raw, dtype=np.int64))
            self._state = idx
            out = F.one_hot(idx, self.spec.obs_shape[0]).float()
        elif kind == "vector":
            out = torch.from_numpy(np.asarray(raw, dtype=np.float32).reshape(self.num, -1))
        else:
            frame = self._frames(raw)
            k = self.spec.obs_shape[0]
            if self._stack is None or new_episode is None:
                self._stack = frame[:, None].repeat(1, k, 1, 1)
            else:
                stack = torch.cat([self._stack[:, 1:], frame[:, None]], dim=1)
                if new_episode.any():
                    fresh = torch.from_numpy(new_episode)
                    stack[fresh] = frame[fresh][:, None].repeat(1, k, 1, 1)
                self._stack = stack
            out = self._stack
        return out.reshape(self.n, self.m, *self.spec.obs_shape)

    # -- API -------------------------------------------------------------------------------------
    def action_mask(self) -> torch.Tensor | None:
        """Legal actions in the current states, bool ``[n, m, n_actions]``; None without ``action_masks``."""
        if self._mask_table is None or self._state is None:
            return None
        return self._mask_table[self._state].reshape(self.n, self.m, -1)

    def reset(self) -> torch.Tensor:
        """Reset every environment with its own seed; returns obs ``[n, m, *obs_shape]``."""
        if self._direct is not None:
            raw = self._direct.reset()
        elif self.backend == "envpool":
            raw, _ = self._env.reset()
        else:
            raw, _ = self._env.reset(seed=self.seeds)
        self._ep_return[:] = 0.0
        self._was_done[:] = False
        self._stack = None
        self._calls = 0
        self._began[:] = 0
        self._deadline = self.max_decisions
        return self._process(raw, None)

    def _restart_clocks(self, ended: np.ndarray) -> None:
        """Episodes ended in this step call where ``ended``: their next call is their reset step."""
        self._began[ended] = self._calls + 1
        self._deadline = int(self._began.min()) + self.max_decisions

    def _episode_overran(self) -> None:
        """Raise EpisodeLimitError: an episode outlived ``max_decisions`` step calls (called past the
        deadline only, so a step call pays one integer comparison for the guard)."""
        late = np.flatnonzero(self._calls - self._began > self.max_decisions)
        raise EpisodeLimitError(
            f"env_id={self.spec.env_id!r} on the {self.backend} backend ran an episode past its "
            f"time limit of {self.max_episode_steps} steps (environments {late.tolist()} still "
            f"running after {self.max_decisions} decisions): the backend does not honour "
            "max_episode_steps for this id; use backend='gymnasium'"
        )

    def _to_env_actions(self, actions: torch.Tensor) -> np.ndarray:
        a = actions.detach().cpu().numpy().reshape(self.num, *(() if self.spec.discrete else (-1,)))
        if self.spec.discrete:
            return a.astype(np.int32)
        a = np.clip(a, self._low, self._high).astype(np.float32)
        nan = np.isnan(a)
        if nan.any():  # a diverged policy: keep the simulator valid (Box2D asserts on NaN)
            a = np.where(nan, self._low, a).astype(np.float32)
        return a

    def step(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every environment ``frame_skip`` frames with the same action (see class doc)."""
        act = self._to_env_actions(actions)
        if self.frame_skip == 1:
            return self._step_once(act)
        reward = np.zeros(self.num, dtype=np.float32)
        term = np.zeros(self.num, dtype=bool)
        trunc = np.zeros(self.num, dtype=bool)
        ep_return = np.zeros(self.num)
        new_episode = self._was_done.copy()
        final_raw = None
        for f in range(self.frame_skip):
            raw, r, te, tr = self._raw_step(act)
            r = np.asarray(r, dtype=np.float64)
            live = ~(term | trunc)  # envs whose episode has not ended within this decision
            reward += np.where(live, r, 0.0).astype(np.float32)
            self._ep_return += r
            done = (np.asarray(te) | np.asarray(tr)) & live
            if done.any():
                ep_return[done] = self._ep_return[done]
                self._ep_return[done] = 0.0
                term |= np.asarray(te) & live
                trunc |= np.asarray(tr) & live
                if self.frame_skip > 1:
                    if final_raw is None:
                        final_raw = np.array(raw, copy=True)
                    else:
                        final_raw[done] = raw[done]
            if f > 0 and final_raw is not None:
                # keep the final observation of envs that ended earlier in this decision
                keep = (term | trunc) & ~done
                if keep.any():
                    raw = np.array(raw, copy=True)
                    raw[keep] = final_raw[keep]
        ended = term | trunc
        self._calls += 1
        if ended.any():
            self._restart_clocks(ended)
        if self._calls > self._deadline:
            self._episode_overran()
        obs = self._process(raw, new_episode)
        self._was_done = ended
        shape = (self.n, self.m)
        return (
            obs,
            reward.reshape(shape),
            term.reshape(shape),
            trunc.reshape(shape),
            ep_return.reshape(shape),
        )

    def _raw_step(self, act: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One step of the underlying pool: raw obs, reward, terminated, truncated."""
        if self._direct is not None:
            return self._direct.step(act)
        raw, r, te, tr, _ = self._env.step(act)
        return raw, r, te, tr

    def _step_once(
        self, act: np.ndarray
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``step`` without frame skip: one environment step, fewer array operations."""
        raw, r, te, tr = self._raw_step(act)
        te, tr = np.asarray(te), np.asarray(tr)
        ended = te | tr
        self._ep_return += r
        ep_return = np.where(ended, self._ep_return, 0.0)
        self._calls += 1
        if ended.any():
            self._ep_return[ended] = 0.0
            self._restart_clocks(ended)
        if self._calls > self._deadline:
            self._episode_overran()
        obs = self._process(raw, self._was_done)
        self._was_done = ended
        shape = (self.n, self.m)
        reward = np.asarray(r, dtype=np.float32).reshape(shape)
        return obs, reward, te.reshape(shape), tr.reshape(shape), ep_return.reshape(shape)

    def close(self) -> None:
        """Release the environments."""
        self._env.close()
