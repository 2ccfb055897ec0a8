"""A run's saved agents: load one, re-evaluate it, watch it play.

* :func:`load_policy` returns a :class:`Policy` whose ``act(obs)`` takes raw Gymnasium observations
  and returns the action the agent would take (greedy / mean, as in validation and evaluation).
* :func:`evaluate_run` evaluates a saved agent. With its defaults it replays the run's final
  evaluation: the same episodes (seeds ``derive_seed(seed, "eval", j)``), backend and numerics mode,
  so it reproduces ``final.csv`` exactly on the machine that made the run. With ``episodes=N`` it
  plays N episodes seeded apart from training, validation and the final evaluation (purpose
  ``"reeval"``, the episodes of ``population_eval.csv``).
* :func:`record` renders episodes (Gymnasium ``render_mode="rgb_array"``) into a GIF or MP4; episode
  j is evaluation episode j of ``final.csv``, stepped on Gymnasium.

The policy sees what it saw in training: :class:`Policy` applies the preprocessing of
:class:`collab.envs.PopulationEnv` (one-hot states, grayscale resized stacked frames, frame skip)
and the observation normalisation and action masks the agent was trained with.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from collab import numerics
from collab.checkpoints import (
    POPULATION,
    SELECTED,
    Checkpoint,
    CheckpointError,
    load_agent,
    parse_checkpoint,
    read_checkpoint,
)
from collab.config import ExperimentConfig, PPOConfig
from collab.envs import EpisodeLimitError, PopulationEnv, derive_seed, grayscale_frames
from collab.ppo import PopulationPPO, evaluate
from collab.results import RESULT_FILES, RUN_METADATA_KEYS, atomic_path, final_rows, frame, run_keys
from collab.spaces import action_mask_table

#: Seed purpose of re-evaluation episodes (``evaluate_run(episodes=N)``, ``population_eval.csv``):
#: apart from ``train``, ``val``, ``eval`` and ``agent``.
REEVAL = "reeval"
#: Suffixes :func:`record` writes, and the format each means.
VIDEO_SUFFIXES = {".gif": "GIF (Pillow)", ".mp4": "MP4 (H.264, ffmpeg)"}


def read_run_config(run_dir: str | os.PathLike) -> tuple[ExperimentConfig, dict[str, Any]]:
    """A run folder's configuration (``config.json`` without its run metadata) and the whole file."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(
            f"run_dir={str(run_dir)!r} is not allowed: a complete run folder (with "
            f"{', '.join(RESULT_FILES)}); {path} not found"
        )
    try:
        raw = json.loads(path.read_text())
        cfg = ExperimentConfig.from_dict({k: v for k, v in raw.items() if k not in RUN_METADATA_KEYS})
    except (json.JSONDecodeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: not a readable run configuration ({e})") from None
    return cfg, raw


def _check_agent(agent: Any) -> None:
    ok = agent == "selected" if isinstance(agent, str) else isinstance(agent, int | np.integer)
    if not ok or isinstance(agent, bool) or (not isinstance(agent, str) and agent < 0):
        raise CheckpointError(
            f"agent={agent!r} is not allowed: 'selected' (the run's selected checkpoint) or an index "
            "of the final population (an integer >= 0)"
        )


class Policy:
    """One saved agent of a run, acting on raw Gymnasium observations.

    ``act(obs)`` is stateful like the training environments: call :meth:`reset` at the start of
    every episode and ``act`` at every environment step. With ``frame_skip`` > 1 the agent decides
    on every ``frame_skip``-th call and repeats its action in between; with ``frame_stack`` > 1 it
    sees its last frames stacked. Attributes: ``env_id``, ``spec``, ``ppo``, ``agent`` ('selected' or
    the index asked for), ``agent_index`` (the agent's index in the run), ``round``, ``val_return``
    (its validation return), ``time_limit`` (the run's episode limit in frames), ``agents`` (a
    one-agent :class:`collab.ppo.PopulationPPO`).
    """

    def __init__(self, agents: PopulationPPO, ckpt: Checkpoint, row: int, agent: str | int) -> None:
        self.agents = agents
        self.checkpoint = ckpt.path
        self.env_id: str = ckpt.meta["env_id"]
        self.spec = agents.spec
        self.ppo: PPOConfig = agents.cfg
        self.agent = agent
        self.agent_index = int(ckpt.meta["agents"][row])
        self.round = int(ckpt.meta["rounds"][row])
        self.val_return = float(ckpt.meta["val_returns"][row])
        self.time_limit = int(ckpt.meta["time_limit"])
        masks = action_mask_table(self.env_id) if self.ppo.mask_actions else None
        self._masks = torch.from_numpy(masks.copy()) if masks is not None else None
        self._low = np.asarray(self.spec.action_low, dtype=np.float32)
        self._high = np.asarray(self.spec.action_high, dtype=np.float32)
        self.reset()

    def __repr__(self) -> str:
        return (
            f"Policy(env_id={self.env_id!r}, agent={self.agent!r}, agent_index={self.agent_index}, "
            f"round={self.round}, val_return={self.val_return:.2f})"
        )

    def reset(self) -> None:
        """Forget the previous episode (frame stack, repeated action)."""
        self._stack: torch.Tensor | None = None
        self._calls = 0
        self._action: Any = None

    def preprocess(self, obs: Any) -> torch.Tensor:
        """One raw observation as the network's input ``[*spec.obs_shape]`` (pixels: pushed onto the
        frame stack, which starts afresh after :meth:`reset`)."""
        kind = self.spec.obs_kind
        if kind == "onehot":
            return F.one_hot(torch.tensor(int(obs)), self.spec.obs_shape[0]).float()
        if kind == "vector":
            return torch.from_numpy(np.asarray(obs, dtype=np.float32).reshape(-1))
        frame = grayscale_frames(np.asarray(obs)[None], self.ppo.image_size)[0]
        k = self.spec.obs_shape[0]
        if self._stack is None:
            self._stack = frame[None].repeat(k, 1, 1)
        else:
            self._stack = torch.cat([self._stack[1:], frame[None]])
        return self._stack

    def mask(self, obs: Any) -> torch.Tensor | None:
        """Legal actions in raw observation ``obs`` (bool ``[n_actions]``); None without action masks."""
        return None if self._masks is None else self._masks[int(obs)]

    def act_batch(self, obs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Actions for a batch of *preprocessed* observations ``[B, *spec.obs_shape]`` (the layout
        :class:`collab.envs.PopulationEnv` returns), stateless: ``[B]`` (discrete) or ``[B, A]``.

        ``mask`` ``[B, n_actions]``: legal actions; with action masks and no ``mask``, taken from the
        one-hot states.
        """
        if self._masks is not None and mask is None:
            mask = self._masks[obs.argmax(-1)]
        m = mask[None] if mask is not None else None
        return self.agents.act(obs[None], deterministic=True, mask=m)[0]

    def act(self, obs: Any) -> Any:
        """The action for raw Gymnasium observation ``obs``: an int (discrete) or a float32 array
        clipped to the action space (continuous), as the training environments pass it on."""
        if self._calls % self.ppo.frame_skip == 0:
            x = self.preprocess(obs)
            mask = self.mask(obs)
            a = self.act_batch(x[None], None if mask is None else mask[None])[0]
            if self.spec.discrete:
                self._action = int(a)
            else:
                act = np.clip(a.numpy().astype(np.float32), self._low, self._high)
                self._action = np.where(np.isnan(act), self._low, act).astype(np.float32)
        self._calls += 1
        return self._action


def load_policy(run_dir: str | os.PathLike, agent: str | int = "selected") -> Policy:
    """A saved agent of the run in ``run_dir``: ``"selected"`` (the checkpoint ``final.csv``
    evaluates, from ``selected.safetensors``) or an index of the final population
    (``population.safetensors``).

    Raises :class:`collab.checkpoints.CheckpointError` naming the file or value: no run folder, a
    run without checkpoints (made before they were saved), a truncated or foreign file, a
    checkpoint for another environment, an agent index out of range. Loading runs in this process's
    numerics mode (:func:`evaluate_run` switches to the run's).
    """
    _check_agent(agent)
    cfg, _ = read_run_config(run_dir)
    ckpt = read_checkpoint(Path(run_dir) / (SELECTED if agent == "selected" else POPULATION), cfg.env_id)
    row = 0
    if agent != "selected":
        row = int(agent)
        if row >= ckpt.n_agents:
            raise CheckpointError(
                f"agent={agent!r} is not allowed: 'selected' or an index of the final population, "
                f"0..{ckpt.n_agents - 1} ({ckpt.path})"
            )
    return Policy(load_agent(ckpt, row), ckpt, row, agent)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_agent(
    agent: PopulationPPO, cfg: ExperimentConfig, episodes: int, purpose: str, backend: str
) -> np.ndarray:
    """Returns of one agent on ``episodes`` episodes seeded ``derive_seed(cfg.seed, purpose, j)``
    (the layout of the run's final evaluation), on ``backend``."""
    assert cfg.ppo is not None
    env = PopulationEnv.for_ppo(
        cfg.env_id,
        1,
        cfg.ppo,
        cfg.seed,
        episodes,
        purpose=purpose,
        shared_seeds=True,
        backend=backend,
        max_episode_steps=cfg.max_episode_steps,
        num_threads=cfg.env_threads,
    )
    try:
        return evaluate(agent, env)[0]
    finally:
        env.close()


def _check_count(name: str, value: Any) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed: an integer >= 1")


def evaluate_run(
    run_dir: str | os.PathLike,
    episodes: int | None = None,
    agent: str | int = "selected",
    backend: str | None = None,
) -> pd.DataFrame:
    """Evaluate a saved agent of a run; returns a frame shaped like ``final.csv``.

    ``episodes=None``: the run's final evaluation episodes (same seeds, backend, numerics mode and
    torch threads), so the selected agent's returns equal ``final.csv``'s on the machine that made
    the run. ``episodes=N``: N episodes seeded apart from training, validation and the final
    evaluation (the episodes of ``population_eval.csv``). ``agent``: ``"selected"`` or an index of
    the final population (then ``selected_agent``, ``selected_round`` and ``selected_val_return``
    describe that agent). ``backend``: None for the run's own (``config.json``'s ``backend_used``).

    Puts this process in the run's numerics mode first (:func:`collab.numerics.apply`): a process
    that already ran PyTorch in the other mode raises :class:`collab.numerics.NumericsError`.
    """
    if episodes is not None:
        _check_count("episodes", episodes)
    _check_agent(agent)
    cfg, raw = read_run_config(run_dir)
    cfg = cfg.resolved()
    numerics.apply(cfg.numerics)
    policy = load_policy(run_dir, agent)
    m, purpose = (cfg.eval_episodes, "eval") if episodes is None else (int(episodes), REEVAL)
    backend = backend or raw.get("backend_used", cfg.backend)
    with _torch_threads(cfg.torch_threads):
        returns = evaluate_agent(policy.agents, cfg, m, purpose, backend)
    rows = final_rows(run_keys(cfg), policy.agent_index, policy.round, policy.val_return, returns)
    return frame("final.csv", rows)


def reevaluate(
    cfg: ExperimentConfig, files: Mapping[str, bytes], backend: str, out_dir: str | os.PathLike
) -> pd.DataFrame:
    """``population_eval.csv`` of a run: every final agent and the selected checkpoint (agent -1) on
    ``cfg.reeval_episodes`` episodes seeded apart (purpose ``"reeval"``), each loaded from its
    checkpoint bytes in ``files`` exactly as :func:`evaluate_run` loads it."""
    keys = run_keys(cfg)
    rows = []
    for name in (POPULATION, SELECTED):
        ckpt = parse_checkpoint(files[name], Path(out_dir) / name, cfg.env_id)
        for row in range(ckpt.n_agents):
            returns = evaluate_agent(load_agent(ckpt, row), cfg, cfg.reeval_episodes, REEVAL, backend)
            agent = ckpt.meta["agents"][row] if name == POPULATION else -1
            rows += [
                {**keys, "agent": agent, "round": ckpt.meta["rounds"][row], "episode": j, "return": float(r)}
                for j, r in enumerate(returns)
            ]
    return frame("population_eval.csv", rows)


# -- recording --------------------------------------------------------------------------------------


@dataclass
class Recording:
    """What :func:`record` wrote: ``frames`` images at ``fps`` into ``path``; per episode its return
    and length (environment steps)."""

    path: Path
    frames: int
    fps: float
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


def _headless_rendering() -> None:
    """Let pygame (Gymnasium's renderer) draw off-screen without a display and without SDL's errors."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def _resize(img: np.ndarray, scale: float, even: bool) -> np.ndarray:
    if scale != 1.0:
        from PIL import Image

        h, w = img.shape[:2]
        size = (max(2, round(w * scale)), max(2, round(h * scale)))
        img = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))
    if even and (img.shape[0] % 2 or img.shape[1] % 2):  # H.264 in yuv420p needs even sides
        img = np.pad(img, ((0, img.shape[0] % 2), (0, img.shape[1] % 2), (0, 0)), mode="edge")
    return img


class _Writer:
    """Frames into a GIF (imageio's Pillow plugin) or an MP4 (imageio's ffmpeg plugin)."""

    def __init__(self, path: Path, suffix: str, fps: float, every: int) -> None:
        import imageio.v2 as iio2
        import imageio.v3 as iio3

        self.suffix = suffix
        if suffix == ".gif":
            self._file = iio3.imopen(path, "w", plugin="pillow", extension=".gif")
            self._kw = {"duration": 1000.0 * every / fps, "loop": 0}
        else:
            self._file = iio2.get_writer(
                path,
                format="FFMPEG",
                mode="I",
                fps=fps / every,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=1,
                ffmpeg_log_level="error",
            )

    def add(self, img: np.ndarray) -> None:
        if self.suffix == ".gif":
            self._file.write(img, is_batch=False, **self._kw)
        else:
            self._file.append_data(img)

    def close(self) -> None:
        self._file.close()


def record(
    run_dir: str | os.PathLike,
    path: str | os.PathLike,
    episodes: int = 1,
    agent: str | int = "selected",
    *,
    fps: float | None = None,
    scale: float = 1.0,
    every: int = 1,
) -> Recording:
    """Render ``episodes`` episodes of a saved agent into ``path``: a GIF or an MP4, by its suffix.

    Episode j starts from the seed of the run's evaluation episode j (on Gymnasium, with the run's
    time limit); every rendered frame is kept (the first after reset, then one per environment step),
    or every ``every``-th, downscaled by ``scale``, at ``fps`` frames per second of play (default:
    the environment's ``render_fps``). A GIF merges identical consecutive frames (their display times
    add up), as GIF encoders do. The file is written to a temporary name and renamed: on any error
    nothing is written. Runs in this process's numerics mode.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        allowed = ", ".join(f"{s} ({what})" for s, what in VIDEO_SUFFIXES.items())
        raise ValueError(f"path={str(path)!r} is not allowed: a file name ending in {allowed}")
    _check_count("episodes", episodes)
    _check_count("every", every)
    if not isinstance(scale, int | float) or not 0 < scale <= 4:
        raise ValueError(f"scale={scale!r} is not allowed: a number in (0, 4]")
    if fps is not None and (not isinstance(fps, int | float) or not fps > 0):
        raise ValueError(f"fps={fps!r} is not allowed: None or a number > 0")
    cfg, _ = read_run_config(run_dir)
    policy = load_policy(run_dir, agent)
    _headless_rendering()
    import gymnasium as gym

    env = gym.make(policy.env_id, render_mode="rgb_array", max_episode_steps=policy.time_limit)
    fps = float(fps or env.metadata.get("render_fps") or 30)
    rec = Recording(path, 0, fps)
    seen = 0
    try:
        with atomic_path(path, suffix=f".tmp{suffix}") as tmp:
            writer = _Writer(tmp, suffix, fps, every)
            try:

                def show() -> None:
                    nonlocal seen
                    if seen % every == 0:
                        writer.add(_resize(np.asarray(env.render()), scale, even=suffix == ".mp4"))
                        rec.frames += 1
                    seen += 1

                for j in range(episodes):
                    obs, _ = env.reset(seed=derive_seed(cfg.seed, "eval", j))
                    policy.reset()
                    show()
                    total, steps = 0.0, 0
                    for _ in range(policy.time_limit):
                        obs, r, term, trunc, _ = env.step(policy.act(obs))
                        total += float(r)
                        steps += 1
                        show()
                        if term or trunc:
                            break
                    else:
                        raise EpisodeLimitError(
                            f"env_id={policy.env_id!r}: an episode did not end within "
                            f"{policy.time_limit} steps"
                        )
                    rec.returns.append(total)
                    rec.lengths.append(steps)
            finally:
                writer.close()
    finally:
        env.close()
    return rec


def watch(run_dir: str | os.PathLike, agent: str | int = "selected", episodes: int = 1, **kwargs: Any) -> Any:
    """A saved agent playing ``episodes`` episodes, for a notebook: an inline HTML5 video (embedded
    MP4, ``IPython.display.HTML``) captioned with the agent and its returns; ``kwargs`` go to
    :func:`record` (``fps``, ``scale``, ``every``)."""
    import base64
    import html

    from IPython.display import HTML

    with tempfile.TemporaryDirectory() as tmp:
        rec = record(run_dir, Path(tmp) / "agent.mp4", episodes, agent, **kwargs)
        data = base64.b64encode(rec.path.read_bytes()).decode("ascii")
    policy = load_policy(run_dir, agent)
    returns = ", ".join(f"{r:.1f}" for r in rec.returns)
    caption = html.escape(
        f"{policy.env_id}, agent {agent!r} (agent {policy.agent_index} at round {policy.round}, "
        f"validation return {policy.val_return:.1f}): episode returns {returns}"
    )
    return HTML(
        f'<video controls autoplay loop muted src="data:video/mp4;base64,{data}"></video><p>{caption}</p>'
    )
