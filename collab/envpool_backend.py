"""The envpool backend of :class:`collab.envs.PopulationEnv`: which ids run on it, building a pool,
and its reset and step without envpool's Python layer (:class:`EnvpoolDirect`).

envpool is optional: :func:`envpool_ids` is None where it is not installed, and every id then runs
on Gymnasium (:func:`resolve_backend`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from collab.config import ConfigError
from collab.paper import ENVS as PAPER_ENVS

#: Our id -> envpool's id, where they differ but are the same task. Gymnasium 1.3 renamed Taxi-v3
#: to Taxi-v4 only to fix the optional is_rainy / fickle_passenger modes (off by default).
ENVPOOL_IDS = {"Taxi-v4": "Taxi-v3"}
#: Ids that ``backend="auto"`` runs on envpool: those whose equivalence with Gymnasium is tested
#: (tests/test_envs.py: spaces, default time limit, ``max_episode_steps`` honoured, step layout).
ENVPOOL_TESTED = frozenset((*PAPER_ENVS, "CartPole-v1"))
#: Environment variables envpool's import sets for its own use; restored after importing it.
_ENV_VARS_ENVPOOL_SETS = ("MPLBACKEND", "MPLCONFIGDIR")


@contextlib.contextmanager
def keep_plotting_env() -> Iterator[None]:
    """Restore MPLBACKEND / MPLCONFIGDIR on exit: envpool sets MPLBACKEND=Agg when imported, which
    would silence the user's (e.g. Jupyter's inline) plotting and that of kernels started later."""
    saved = {k: os.environ.get(k) for k in _ENV_VARS_ENVPOOL_SETS}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@functools.lru_cache(maxsize=1)
def envpool_ids() -> frozenset[str] | None:
    """Environment ids envpool offers, or None when envpool is not installed (warns once)."""
    with keep_plotting_env():
        try:
            # envpool imports matplotlib with MPLBACKEND=Agg; importing it first keeps the backend
            # the user's (e.g. Jupyter's inline backend)
            import matplotlib  # noqa: F401
        except ImportError:
            pass
        try:
            import envpool  # noqa: F401
        except ImportError:
            warnings.warn(
                "envpool is not installed: using gymnasium.vector (slower, same results layout)",
                stacklevel=2,
            )
            return None
    import envpool

    return frozenset(envpool.list_all_envs())


def resolve_backend(env_id: str, backend: str = "auto") -> str:
    """The backend that will run ``env_id``.

    ``"auto"``: envpool where installed and ``env_id`` is in :data:`ENVPOOL_TESTED`, else Gymnasium;
    ``"envpool"``: envpool for any id it has (ConfigError where it has not); ``"gymnasium"``: Gymnasium.
    """
    wants = backend == "envpool" or (backend == "auto" and env_id in ENVPOOL_TESTED)
    ep = envpool_ids() if wants else None
    has = ep is not None and ENVPOOL_IDS.get(env_id, env_id) in ep
    if backend == "envpool" and not has:
        raise ConfigError(
            f"backend='envpool' is not allowed for env_id={env_id!r}: envpool "
            + ("is not installed" if ep is None else "has no such environment")
            + "; use backend='gymnasium' or 'auto'"
        )
    return "envpool" if has else "gymnasium"


def make_pool(env_id: str, seeds: list[int], num_threads: int, max_episode_steps: int) -> Any:
    """An envpool pool (Gymnasium flavour) of ``len(seeds)`` environments of ``env_id``, each
    seeded with its own seed, episodes truncated at ``max_episode_steps``."""
    import envpool

    with warnings.catch_warnings():  # envpool's Box spaces warn about float64 bounds
        warnings.simplefilter("ignore", UserWarning)
        return envpool.make(
            ENVPOOL_IDS.get(env_id, env_id),
            env_type="gymnasium",
            num_envs=len(seeds),
            seed=seeds[0],
            env_seed=seeds,
            num_threads=num_threads,
            max_episode_steps=max_episode_steps,
        )


class EnvpoolDirect:
    """envpool's ``reset`` and ``step`` without its Python layer: the C++ ``_reset``/``_send``/``_recv``.

    ``env.reset()`` and ``env.step()`` build dictionaries and a pytree around those calls every
    time (a measurable share of a training step on the fast environments, Acrobot), and the first
    one builds the pool's Gymnasium observation space, which warns that Box bounds lose precision
    as float32 (every new pool: every validation). For a single-player pool whose action keys are
    ``env_id, players.env_id, action`` (every environment of this package, envpool 1.2.5), these
    calls send the same arrays and read the same fields: terminated = done & ~trunc, as envpool's
    Gymnasium wrapper. :meth:`of` returns None for any other layout, which keeps envpool's own calls.
    """

    FIELDS = ("obs", "reward", "done", "trunc")

    def __init__(self, env: Any, state_keys: list[str], dtype: Any) -> None:
        self._send: Callable[[list[np.ndarray]], None] = env._send
        self._recv: Callable[[], list[np.ndarray]] = env._recv
        self._reset: Callable[[np.ndarray], None] = env._reset
        self._ids: np.ndarray = env.all_env_ids
        self._dtype = dtype
        self._obs, self._rew, self._done, self._trunc = (state_keys.index(k) for k in self.FIELDS)

    @classmethod
    def of(cls, env: Any) -> EnvpoolDirect | None:
        """The direct calls of pool ``env``, or None where its layout is not the known one."""
        try:
            action_keys = list(env._spec._action_keys)
            state_keys = list(env._state_keys)
            dtype = env._spec._action_spec[-1][0]
            players = env.config.get("max_num_players", 1)
            env._send, env._recv, env._reset, env.all_env_ids  # noqa: B018 - present?
        except AttributeError:
            return None
        if (
            players != 1
            or action_keys != ["env_id", "players.env_id", "action"]
            or not set(cls.FIELDS) <= set(state_keys)
        ):
            return None
        return cls(env, state_keys, dtype)

    def reset(self) -> np.ndarray:
        """Reset every environment (as ``env.reset()``); returns the observations."""
        self._reset(self._ids)
        return self._recv()[self._obs]

    def step(self, act: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step every environment with ``act``; returns (obs, reward, terminated, truncated)."""
        self._send([self._ids, self._ids, act.astype(self._dtype, order="C")])
        state = self._recv()
        done, trunc = state[self._done], state[self._trunc]
        return state[self._obs], state[self._rew], done & ~trunc, trunc
