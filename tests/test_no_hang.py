"""A run never hangs: divergence and non-finite environments stop it with one clear error, episodes
without a time limit are refused, and every loop over environment steps is bounded."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

import collab
from collab import ConfigError, ExperimentConfig, NonFiniteError, PPOConfig, run_experiment
from collab.buffers import RolloutStats
from collab.envpool_backend import envpool_ids
from collab.envs import EpisodeLimitError, PopulationEnv
from collab.ppo import PopulationPPO

#: The learning-rate sweep's bad end: Pendulum with a huge step and no effective gradient clipping.
DIVERGING = PPOConfig(learning_rate=1e6, max_grad_norm=1e9, norm_obs=True)
PENDULUM = {"env_id": "Pendulum-v1", "strategy": "collaborative", "n_agents": 2, "episodes_per_agent": 20}


@contextlib.contextmanager
def no_hang(seconds: int = 120) -> Iterator[None]:
    """Safety net only (no timing is asserted): turn a hang into a test failure instead of a stuck suite."""

    def fail(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s: the run hangs")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_cliffwalking_with_max_episode_steps_finishes_and_respects_the_limit(tmp_path):
    """CliffWalking registers no time limit and envpool's CliffWalking ignores max_episode_steps:
    ``backend="auto"`` runs it on Gymnasium, where every episode ends by the package's limit."""
    out = tmp_path / "cliff"
    cfg = ExperimentConfig(
        env_id="CliffWalking-v1",
        n_agents=2,
        episodes_per_agent=12,
        validate_every=6,
        max_episode_steps=50,
        out_dir=str(out),
    )
    with no_hang():
        res = run_experiment(cfg, progress=False)
    assert res.config["backend_used"] == "gymnasium"
    curves = pd.read_csv(out / "curves.csv")
    assert (curves["episode"] >= 12).sum() == 2  # both agents met the budget
    # env_steps counts the learned-from steps: the finished episodes plus at most one unfinished
    # episode per environment, each of at most 50 steps
    m = res.config["ppo"]["num_envs"]
    assert (curves["env_steps"] <= 50 * (curves["episode"] + m)).all()
    assert (curves["env_steps"] >= curves["episode"]).all()
    # every step returns -1 or -100 (the cliff): an episode of at most 50 steps returns >= -5000
    train = curves["train_return"].dropna()
    assert ((train >= -100 * 50) & (train <= -1)).all()


def test_environment_without_time_limit_needs_max_episode_steps(tmp_path):
    out = tmp_path / "cliff"
    cfg = ExperimentConfig(env_id="CliffWalking-v1", out_dir=str(out))
    with pytest.raises(
        ConfigError, match=r"max_episode_steps=None is not allowed for env_id='CliffWalking-v1'"
    ):
        run_experiment(cfg, progress=False)
    assert not out.exists()


@pytest.mark.skipif(envpool_ids() is None, reason="envpool is not installed")
def test_backend_that_ignores_the_limit_is_stopped(tmp_path):
    """Asked for explicitly, envpool runs CliffWalking; it ignores max_episode_steps, and the package's
    own check stops the run at the limit instead of letting an episode run on."""
    out = tmp_path / "cliff"
    cfg = ExperimentConfig(
        env_id="CliffWalking-v1",
        backend="envpool",
        episodes_per_agent=4,
        max_episode_steps=50,
        out_dir=str(out),
    )
    with (
        no_hang(),
        pytest.raises(EpisodeLimitError, match=r"past its time limit of 50 steps.*backend='gymnasium'"),
    ):
        run_experiment(cfg, progress=False)
    assert _files(out) == []


@pytest.mark.parametrize("backend", ["auto", "gymnasium"])
def test_diverging_learning_rate_stops_with_one_clear_error(backend, tmp_path):
    out = tmp_path / "run"
    cfg = ExperimentConfig(**PENDULUM, backend=backend, ppo=DIVERGING, out_dir=str(out))
    with no_hang(), pytest.raises(NonFiniteError) as info:
        run_experiment(cfg, progress=False)
    err = info.value
    assert err.source == "training" and err.agents == [0, 1]
    assert "parameters" in err.what and err.context["round"] == 1
    msg = str(err)
    for needle in (
        "training diverged",
        "agents 0, 1",
        "Pendulum-v1",
        "round 1",
        "training episodes",
        "learning rate",
        "max_grad_norm",
        "norm_obs",
        "learning_rate=1e+06",
        f"nothing was written to {out}",
    ):
        assert needle in msg, (needle, msg)
    assert _files(out) == []
    assert isinstance(err, RuntimeError) and collab.NonFiniteError is NonFiniteError


def test_only_the_diverging_agent_is_named(tmp_path, monkeypatch):
    """Agents are independent: with agent 1's learning rate huge, agent 0 stays finite and unnamed."""
    original = PopulationPPO.collect_and_update

    def one_bad_rate(self: PopulationPPO, env: PopulationEnv, quota: np.ndarray) -> RolloutStats:
        self.lr = torch.tensor([5e-4, 1e6])
        return original(self, env, quota)

    monkeypatch.setattr(PopulationPPO, "collect_and_update", one_bad_rate)
    cfg = ExperimentConfig(**PENDULUM, ppo=DIVERGING, out_dir=str(tmp_path / "run"))
    with no_hang(), pytest.raises(NonFiniteError, match="for agent 1 on Pendulum-v1") as info:
        run_experiment(cfg, progress=False)
    assert info.value.agents == [1]


class _NaNAfter(gym.Wrapper):
    """Pendulum whose observations (or rewards) turn NaN from the 30th step of an episode on."""

    def __init__(self, what: str) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.what, self.t = what, 0

    def reset(self, **kw: Any) -> tuple[np.ndarray, dict]:
        self.t = 0
        return self.env.reset(**kw)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, r, term, trunc, info = self.env.step(action)
        self.t += 1
        if self.t >= 30:
            if self.what == "observations":
                obs = np.full_like(obs, np.nan)
            else:
                r = float("nan")
        return obs, r, term, trunc, info


@pytest.fixture
def nan_env_ids() -> Iterator[dict[str, str]]:
    """Two registered test environments: NaN observations, NaN rewards (removed afterwards)."""
    ids = {"observations": "NaNObsPendulum-v0", "rewards": "NaNRewardPendulum-v0"}
    for what, env_id in ids.items():
        gym.register(env_id, entry_point=lambda what=what, **kw: _NaNAfter(what), max_episode_steps=200)
    yield ids
    for env_id in ids.values():
        gym.registry.pop(env_id, None)


@pytest.mark.parametrize("what", ["observations", "rewards"])
def test_non_finite_environment_gets_its_own_error(what, nan_env_ids, tmp_path):
    out = tmp_path / "run"
    cfg = ExperimentConfig(**{**PENDULUM, "env_id": nan_env_ids[what]}, out_dir=str(out))
    with no_hang(), pytest.raises(NonFiniteError) as info:
        run_experiment(cfg, progress=False)
    err = info.value
    assert err.source == "environment" and err.what == [what] and err.agents == [0, 1]
    msg = str(err)
    assert msg.startswith(f"the environment returned non-finite (NaN or inf) {what} to agents 0, 1 on ")
    assert "is at fault, not training" in msg and "round 1" in msg
    assert "learning rate" not in msg  # not training's fault: no tuning advice
    assert _files(out) == []


def test_training_rounds_are_bounded(monkeypatch, tmp_path):
    """Even if no episode were ever counted, a round stops after a bounded number of rollouts."""

    def counts_nothing(self: PopulationPPO, env: PopulationEnv, quota: np.ndarray) -> RolloutStats:
        return RolloutStats([[] for _ in range(self.n)], np.zeros(self.n, dtype=np.int64))

    monkeypatch.setattr(PopulationPPO, "collect_and_update", counts_nothing)
    out = tmp_path / "run"
    cfg = ExperimentConfig(**PENDULUM, max_episode_steps=30, out_dir=str(out))
    with (
        no_hang(),
        pytest.raises(RuntimeError, match=r"round 1 of Pendulum-v1: agents still need \[10, 10\]"),
    ):
        run_experiment(cfg, progress=False)
    assert _files(out) == []


def test_diverging_run_fails_the_notebook(papermill, tmp_path, monkeypatch):
    """Through Papermill (as the workflow runs every cell): the notebook stops with the message, the
    command exits non-zero, and out_dir stays empty. train.ipynb has no PPO parameter, so the kernel's
    IPython startup file puts the diverging settings into Pendulum's PPO table entry."""
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-diverging-ppo.py").write_text(
        "import dataclasses\nfrom collab.config import ENV_PPO\n"
        "ENV_PPO['Pendulum-v1'] = dataclasses.replace(ENV_PPO['Pendulum-v1'], "
        f"learning_rate={DIVERGING.learning_rate}, max_grad_norm={DIVERGING.max_grad_norm})\n"
    )
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    out = tmp_path / "run"
    params = {**PENDULUM, "out_dir": str(out), "eval_episodes": 2}
    proc = papermill("train", params, timeout=300)
    assert proc.returncode != 0
    assert "NonFiniteError" in proc.stderr and "training diverged" in proc.stderr, proc.stderr[-3000:]
    assert "learning_rate=1e+06" in proc.stderr
    executed = (tmp_path / "train.out.ipynb").read_text()
    assert "training diverged" in executed  # the notebook itself shows the message
    assert _files(out) == []
