"""Action masking (``PPOConfig.mask_actions``, Taxi): tables, both backends, sampling, PPO update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from collab.config import ConfigError, ExperimentConfig, PPOConfig, ppo_config_for
from collab.envpool_backend import envpool_ids
from collab.envs import PopulationEnv
from collab.networks import log_prob_entropy
from collab.ppo import MASKED_LOGIT, PopulationPPO
from collab.spaces import action_mask_table, check_experiment

TAXI = "Taxi-v4"


def _taxi_state(row: int, col: int, passenger: int, dest: int) -> int:
    """Gymnasium's Taxi encoding: ((row * 5 + col) * 5 + passenger) * 4 + dest (passenger 4: in taxi)."""
    return ((row * 5 + col) * 5 + passenger) * 4 + dest


def test_taxi_mask_table_hand_checked_states():
    table = action_mask_table(TAXI)
    assert table is not None and table.shape == (500, 6) and table.dtype == bool
    # actions: 0 south, 1 north, 2 east, 3 west, 4 pick-up, 5 drop-off
    # taxi on R (0, 0), passenger waiting on R: no north/west (edge), east open (":"), pick-up legal
    assert table[_taxi_state(0, 0, 0, 1)].tolist() == [True, False, True, False, True, False]
    # taxi at (0, 1): wall "|" to the east; passenger on G (1) elsewhere: no pick-up, no drop-off
    assert table[_taxi_state(0, 1, 1, 2)].tolist() == [True, False, False, True, False, False]
    # taxi on B (4, 3) carrying the passenger to B (dest 3): drop-off legal; wall to the west
    assert table[_taxi_state(4, 3, 4, 3)].tolist() == [False, True, True, False, False, True]


def test_mask_table_only_where_the_environment_defines_one():
    assert action_mask_table("Acrobot-v1") is None  # Box states
    assert action_mask_table("FrozenLake-v1") is None  # Discrete, but no action_mask method


@pytest.mark.parametrize("backend", ["envpool", "gymnasium"])
def test_env_masks_follow_the_current_state(backend):
    if backend == "envpool" and envpool_ids() is None:
        pytest.skip("envpool is not installed")
    env = PopulationEnv(TAXI, 2, 3, seed=5, backend=backend, action_masks=True)
    table = torch.from_numpy(action_mask_table(TAXI).copy())
    obs = env.reset()
    rng = np.random.default_rng(0)
    for _ in range(30):
        mask = env.action_mask()
        assert mask.shape == (2, 3, 6) and mask.dtype == torch.bool
        assert torch.equal(mask, table[obs.argmax(-1)])
        obs, *_ = env.step(torch.from_numpy(rng.integers(0, 6, size=(2, 3))))
    env.close()
    plain = PopulationEnv(TAXI, 1, 1, seed=5, backend=backend)
    plain.reset()
    assert plain.action_mask() is None
    plain.close()


def test_masked_log_prob_and_entropy_hand_computed():
    logits = torch.zeros(1, 1, 6)
    mask = torch.tensor([[[True, False, True, False, True, False]]])
    masked = logits.masked_fill(~mask, MASKED_LOGIT)
    logp, ent = log_prob_entropy(masked, None, torch.tensor([[2]]), discrete=True)
    assert logp.item() == pytest.approx(-math.log(3), abs=1e-6)
    assert ent.item() == pytest.approx(math.log(3), abs=1e-6)
    logp_bad, _ = log_prob_entropy(masked, None, torch.tensor([[1]]), discrete=True)
    assert logp_bad.item() < -1e7


def _illegal_rewards(mask_actions: bool) -> tuple[int, np.ndarray]:
    """-10 rewards (illegal pick-up/drop-off) of a fresh, near-uniform policy sampled for 300 steps
    in 8 environments, and how often it took each action."""
    cfg = PPOConfig(mask_actions=mask_actions, hidden=16)
    env = PopulationEnv(TAXI, 2, 4, seed=3, action_masks=mask_actions)
    agents = PopulationPPO(env.spec, cfg, [1, 2])
    obs = env.reset()
    torch.manual_seed(0)
    count, taken = 0, np.zeros(6)
    for _ in range(300):
        action = agents.act(obs, deterministic=False, mask=env.action_mask())
        taken += np.bincount(action.flatten().numpy(), minlength=6)
        obs, r, *_ = env.step(action)
        count += int((r == -10).sum())
    env.close()
    return count, taken / taken.sum()


def test_masked_policy_never_takes_an_illegal_action():
    count, freq = _illegal_rewards(mask_actions=False)
    # the control: sampled, the fresh policy takes every action about 1/6 of the time (its greedy
    # action would repeat per state), so about a third of the steps try pick-up or drop-off
    assert np.abs(freq - 1 / 6).max() < 0.03, freq
    assert count > 0.25 * 2400
    count, freq = _illegal_rewards(mask_actions=True)
    assert count == 0 and freq[4] > 0 and freq[5] > 0  # pick-up and drop-off where legal only


def _probabilities(agents: PopulationPPO, obs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    logits, _ = agents.net(agents.normalize_obs(obs))
    return torch.softmax(agents._masked(logits, mask), -1)


def test_act_samples_from_the_policy_unless_deterministic():
    """``deterministic=False`` samples from the policy (frequencies match its probabilities), from the
    generator given, without touching the agents' own generators; ``deterministic=True`` is greedy."""
    env = PopulationEnv(TAXI, 2, 3, seed=1, action_masks=True)
    agents = PopulationPPO(env.spec, PPOConfig(mask_actions=True, hidden=16), [1, 2])
    agents.net.actor.l3.weight.data.mul_(100.0)  # a policy far from uniform: greedy != sampled
    obs, mask = env.reset(), env.action_mask()
    env.close()
    probs = _probabilities(agents, obs, mask)
    own = [g.get_state() for g in agents.gens]
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([agents.act(obs, False, mask, generator=gen) for _ in range(4000)])
    freq = torch.nn.functional.one_hot(draws, 6).float().mean(0)
    assert (freq - probs).abs().max() < 0.03, (freq, probs)
    assert bool(freq[~mask].eq(0).all())  # never an illegal action
    assert all(torch.equal(g.get_state(), s) for g, s in zip(agents.gens, own, strict=True))
    again = torch.Generator().manual_seed(0)
    assert torch.equal(agents.act(obs, False, mask, generator=again), draws[0])  # reproducible
    assert torch.equal(agents.act(obs, True, mask), probs.argmax(-1))


def test_act_samples_continuous_actions_around_the_mean():
    env = PopulationEnv("Pendulum-v1", 2, 2, seed=1)
    agents = PopulationPPO(env.spec, PPOConfig(hidden=16, log_std_init=-0.5), [1, 2])
    obs = env.reset()
    env.close()
    mean = agents.act(obs, deterministic=True)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([agents.act(obs, deterministic=False, generator=gen) for _ in range(4000)])
    assert torch.allclose(draws.mean(0), mean, atol=0.05)
    assert torch.allclose(draws.std(0), torch.full_like(mean, math.exp(-0.5)), atol=0.05)


def test_masked_rollout_and_update_stay_finite_and_deterministic():
    cfg = PPOConfig(
        mask_actions=True, num_envs=2, num_steps=32, num_minibatches=2, update_epochs=2, hidden=16
    )

    def train() -> PopulationPPO:
        env = PopulationEnv(TAXI, 2, cfg.num_envs, seed=1, action_masks=True)
        agents = PopulationPPO(env.spec, cfg, [7, 8])
        for _ in range(3):
            agents.collect_and_update(env, np.full(2, 10**6))
            assert torch.isfinite(agents.flat).all()
        env.close()
        return agents

    a, b = train(), train()
    assert torch.isfinite(a.flat).all()
    assert torch.equal(a.flat, b.flat)


def test_mask_actions_without_masked_env_is_an_error():
    cfg = PPOConfig(mask_actions=True, hidden=16)
    env = PopulationEnv(TAXI, 1, 2, seed=0)
    agents = PopulationPPO(env.spec, cfg, [1])
    with pytest.raises(ValueError, match="action_masks=True"):
        agents.collect_and_update(env, np.array([1]))
    env.close()


def test_mask_actions_config_checks(tmp_path):
    assert ppo_config_for(TAXI).mask_actions is True
    assert ppo_config_for("Acrobot-v1").mask_actions is False
    bad_env = ExperimentConfig(env_id="Acrobot-v1", out_dir=str(tmp_path), ppo=PPOConfig(mask_actions=True))
    with pytest.raises(ConfigError, match=r"ppo\.mask_actions=True.*Acrobot-v1"):
        check_experiment(bad_env.validate())
    with pytest.raises(ConfigError, match=r"ppo\.mask_actions=.yes."):
        PPOConfig(mask_actions="yes").validate()
    with pytest.raises(ConfigError, match=r"PopulationEnv|mask_actions"):
        PopulationEnv("Acrobot-v1", 1, 1, seed=0, action_masks=True)
