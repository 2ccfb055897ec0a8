"""PPO core: GAE by hand, batched == per-agent, a CleanRL-style reference, Adam, non-finite checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from collab.config import PPOConfig
from collab.envs import EpisodeLimitError, PopulationEnv, derive_seed
from collab.nonfinite import NonFiniteError
from collab.normalization import RunningMeanStd
from collab.optim import BatchedAdam
from collab.ppo import PopulationPPO, evaluate, gae
from collab.spaces import EnvSpec

G, L = 0.9, 0.8


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_gae_single_episode_terminated():
    # 3 steps, the last terminates: A2 = r2 - V2; A1 = d1 + g*l*A2; A0 = d0 + g*l*A1
    r, v = t([1.0, 2.0, 3.0]), t([0.5, 0.4, 0.3])
    nv = t([0.4, 0.3, 9.0])  # V of the final obs is ignored on termination
    term, cont = t([0, 0, 1]), t([1, 1, 0])
    adv, ret = gae(r, v, nv, term, cont, G, L)
    a2 = 3.0 - 0.3
    d1 = 2.0 + G * 0.3 - 0.4
    a1 = d1 + G * L * a2
    d0 = 1.0 + G * 0.4 - 0.5
    a0 = d0 + G * L * a1
    assert adv.tolist() == pytest.approx([a0, a1, a2], rel=1e-6)
    assert ret.tolist() == pytest.approx([a0 + 0.5, a1 + 0.4, a2 + 0.3], rel=1e-6)


def test_gae_truncation_bootstraps_from_final_observation():
    # step 1 is truncated: delta_1 uses V(final obs) = 5.0, but A_1 does not continue into step 2
    r, v = t([1.0, 1.0, 0.0, 2.0]), t([0.1, 0.2, 0.7, 0.3])
    nv = t([0.2, 5.0, 0.3, 0.6])
    term = t([0, 0, 0, 0])
    cont = t([1, 0, 0, 1])  # step 2 is the reset step after the truncation (invalid)
    adv, _ = gae(r, v, nv, term, cont, G, L)
    a3 = 2.0 + G * 0.6 - 0.3
    a1 = 1.0 + G * 5.0 - 0.2
    a0 = (1.0 + G * 0.2 - 0.1) + G * L * a1
    assert adv[3].item() == pytest.approx(a3, rel=1e-6)
    assert adv[1].item() == pytest.approx(a1, rel=1e-6)
    assert adv[0].item() == pytest.approx(a0, rel=1e-6)


def test_gae_termination_vs_truncation_differ_only_in_bootstrap():
    r, v, nv = t([1.0]), t([0.5]), t([2.0])
    a_term, _ = gae(r, v, nv, t([1]), t([0]), G, L)
    a_trunc, _ = gae(r, v, nv, t([0]), t([0]), G, L)
    assert a_term.item() == pytest.approx(0.5)
    assert a_trunc.item() == pytest.approx(0.5 + G * 2.0)


def test_gae_batched_axes_match_loop():
    gen = torch.Generator().manual_seed(0)
    shape = (6, 3, 2)
    r, v, nv = (torch.randn(shape, generator=gen) for _ in range(3))
    term = (torch.rand(shape, generator=gen) < 0.2).float()
    cont = (torch.rand(shape, generator=gen) < 0.8).float() * (1 - term)
    adv, _ = gae(r, v, nv, term, cont, G, L)
    for i in range(3):
        for j in range(2):
            a1, _ = gae(r[:, i, j], v[:, i, j], nv[:, i, j], term[:, i, j], cont[:, i, j], G, L)
            assert torch.allclose(adv[:, i, j], a1)


def test_running_mean_std_matches_numpy_and_respects_mask():
    rms = RunningMeanStd(2, (3,))
    gen = np.random.default_rng(0)
    data = [gen.normal(size=(2, 5, 3)) for _ in range(3)]
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    for d in data:
        rms.update(torch.from_numpy(d), mask)
    all0 = np.concatenate([d[0] for d in data])
    all1 = np.concatenate([d[1, :3] for d in data])
    assert np.allclose(rms.mean[0].numpy(), all0.mean(0), atol=1e-4)
    assert np.allclose(rms.var[0].numpy(), all0.var(0), atol=1e-3)
    assert np.allclose(rms.mean[1].numpy(), all1.mean(0), atol=1e-4)


def test_batched_adam_matches_torch_adam_and_freezes_inactive():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(3, 8, generator=gen)
    ref = [nn.Parameter(w[a].clone()) for a in range(3)]
    opt = BatchedAdam(w)
    ref_opts = [torch.optim.Adam([p], lr=0.01 * (a + 1), eps=1e-5) for a, p in enumerate(ref)]
    lr = torch.tensor([0.01, 0.02, 0.03])
    for step in range(5):
        g = torch.randn(3, 8, generator=gen)
        active = torch.tensor([True, step % 2 == 0, True])
        opt.step(g, lr, active)
        for a in range(3):
            if active[a]:
                ref[a].grad = g[a].clone()
                ref_opts[a].step()
    for a in range(3):
        assert torch.allclose(w[a], ref[a].data, atol=1e-6), a
    assert opt.step_count.tolist() == [5, 3, 5]


def test_flat_parameters_are_views_and_gradients_accumulate_into_them():
    spec = SPECS["continuous"]
    pop = PopulationPPO(spec, PPOConfig(hidden=8), [1, 2])
    with torch.no_grad():
        pop.flat.add_(1.0)
    assert pop.net.log_std.data.eq(1.0).all()  # log_std starts at 0; it is a view into flat
    pop.flat_grad.zero_()
    out, v = pop.net(torch.randn(2, 5, 5))
    (out.sum() + v.sum()).backward()
    assert (
        pop.flat_grad.abs().sum() > 0 and pop.net.actor.l1.weight.grad.data_ptr() >= pop.flat_grad.data_ptr()
    )


def _random_rollout(spec: EnvSpec, n: int, T: int = 16, m: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, n, m, *spec.obs_shape, generator=gen)
    if spec.discrete:
        act = torch.randint(0, spec.action_dim, (T, n, m), generator=gen)
    else:
        act = torch.randn(T, n, m, spec.action_dim, generator=gen)
    logp = -torch.rand(T, n, m, generator=gen)
    adv = torch.randn(T, n, m, generator=gen)
    ret = torch.randn(T, n, m, generator=gen)
    valid = torch.rand(T, n, m, generator=gen) > 0.15
    return obs, act, logp, adv, ret, valid


SPECS = {
    "discrete": EnvSpec("x", "vector", (5,), True, 3),
    "continuous": EnvSpec("x", "vector", (5,), False, 2, (-1.0, -1.0), (1.0, 1.0)),
    "pixels": EnvSpec("x", "pixels", (2, 36, 36), False, 2, (-1.0, -1.0), (1.0, 1.0)),
}


@pytest.mark.parametrize("kind", list(SPECS))
def test_population_update_equals_single_agent_updates(kind):
    spec = SPECS[kind]
    cfg = PPOConfig(
        num_envs=2, num_steps=16, num_minibatches=4, update_epochs=2, hidden=16, max_grad_norm=0.3
    )
    seeds = [11, 22, 33]
    pop = PopulationPPO(spec, cfg, seeds)
    obs, act, logp, adv, ret, valid = _random_rollout(spec, 3)
    if kind == "pixels":
        obs = (obs.abs() * 60).clamp(0, 255).to(torch.uint8)
    singles = []
    for a, s in enumerate(seeds):
        one = PopulationPPO(spec, cfg, [s])
        sl = slice(a, a + 1)
        one.update(obs[:, sl], act[:, sl], logp[:, sl], adv[:, sl], ret[:, sl], valid[:, sl])
        singles.append(one)
    pop.update(obs, act, logp, adv, ret, valid)
    for a, one in enumerate(singles):
        for name, tens in pop.state_tensors().items():
            assert torch.allclose(tens[a], one.state_tensors()[name][0], atol=1e-5), (name, a)


def test_per_agent_learning_rate_and_entropy_coefficient():
    """``lr`` and ``ent_coef`` hold one value per agent: agent a trains as a one-agent population
    configured with agent a's values."""
    spec = SPECS["discrete"]
    cfg = PPOConfig(num_envs=2, num_steps=16, num_minibatches=4, update_epochs=2, hidden=16)
    values = [(5e-4, 0.0), (1e-3, 0.05), (2e-4, 0.2)]
    pop = PopulationPPO(spec, cfg, [11, 22, 33])
    pop.lr = torch.tensor([lr for lr, _ in values])
    pop.ent_coef = torch.tensor([e for _, e in values])
    obs, act, logp, adv, ret, valid = _random_rollout(spec, 3)
    pop.update(obs, act, logp, adv, ret, valid)
    for a, (seed, (lr, ent)) in enumerate(zip([11, 22, 33], values, strict=True)):
        one = PopulationPPO(spec, dataclasses.replace(cfg, learning_rate=lr, ent_coef=ent), [seed])
        sl = slice(a, a + 1)
        one.update(obs[:, sl], act[:, sl], logp[:, sl], adv[:, sl], ret[:, sl], valid[:, sl])
        torch.testing.assert_close(pop.flat[a], one.flat[0], rtol=0, atol=1e-6)


class _RefAgent(nn.Module):
    """CleanRL's MLP agent (ppo.py), loaded with one population agent's weights."""

    def __init__(self, pop: PopulationPPO, a: int) -> None:
        super().__init__()

        def lin(layer):
            m = nn.Linear(*layer.weight.shape[1:])
            m.weight.data = layer.weight.data[a].T.clone()
            m.bias.data = layer.bias.data[a, 0].clone()
            return m

        net = pop.net
        self.actor = nn.Sequential(
            lin(net.actor.l1), nn.Tanh(), lin(net.actor.l2), nn.Tanh(), lin(net.actor.l3)
        )
        self.critic = nn.Sequential(
            lin(net.critic.l1), nn.Tanh(), lin(net.critic.l2), nn.Tanh(), lin(net.critic.l3)
        )


def test_single_agent_update_matches_cleanrl_reference():
    """One agent's PPO update equals CleanRL's loss + torch Adam + clip_grad_norm_ on the same minibatches."""
    spec = SPECS["discrete"]
    cfg = PPOConfig(num_envs=2, num_steps=16, num_minibatches=4, update_epochs=2, hidden=16, ent_coef=0.01)
    pop = PopulationPPO(spec, cfg, [5])
    ref = _RefAgent(pop, 0)
    opt = torch.optim.Adam(ref.parameters(), lr=cfg.learning_rate, eps=1e-5)
    obs, act, logp, adv, ret, valid = _random_rollout(spec, 1)
    valid[:] = True  # the reference has no masking
    b = lambda x: x.transpose(0, 1).reshape(-1, *x.shape[3:])  # noqa: E731
    b_obs, b_act, b_logp, b_adv, b_ret = b(obs), b(act), b(logp), b(adv), b(ret)
    gen = PopulationPPO(spec, cfg, [5]).gens[0]  # the agent's generator after init: replays its minibatches
    B, mb = 32, 8
    for _ in range(cfg.update_epochs):
        perm = torch.randperm(B, generator=gen)
        for s in range(0, B, mb):
            i = perm[s : s + mb]
            logits = ref.actor(b_obs[i])
            logp_all = torch.log_softmax(logits, -1)
            newlogp = logp_all.gather(-1, b_act[i].unsqueeze(-1)).squeeze(-1)
            ent = -(logp_all.exp() * logp_all).sum(-1)
            ratio = (newlogp - b_logp[i]).exp()
            a = (b_adv[i] - b_adv[i].mean()) / (b_adv[i].std() + 1e-8)
            pg = torch.max(-a * ratio, -a * ratio.clamp(0.8, 1.2)).mean()
            v = ref.critic(b_obs[i]).squeeze(-1)
            loss = pg - cfg.ent_coef * ent.mean() + cfg.vf_coef * (0.5 * (v - b_ret[i]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(ref.parameters(), cfg.max_grad_norm)
            opt.step()
    pop.update(obs, act, logp, adv, ret, valid)
    assert torch.allclose(pop.net.actor.l1.weight.data[0].T, ref.actor[0].weight.data, atol=1e-5)
    assert torch.allclose(pop.net.critic.l3.weight.data[0].T, ref.critic[4].weight.data, atol=1e-5)


def test_inactive_agent_is_not_changed_by_update():
    spec = SPECS["continuous"]
    cfg = PPOConfig(num_envs=2, num_steps=16, num_minibatches=2, update_epochs=2, hidden=8)
    pop = PopulationPPO(spec, cfg, [1, 2])
    before = {k: v[1].clone() for k, v in pop.state_tensors().items()}
    obs, act, logp, adv, ret, valid = _random_rollout(spec, 2)
    valid[:, 1] = False
    pop.update(obs, act, logp, adv, ret, valid)
    for k, v in pop.state_tensors().items():
        assert torch.equal(v[1], before[k]), k
    assert not torch.equal(
        pop.net.actor.l1.weight[0], PopulationPPO(spec, cfg, [1, 2]).net.actor.l1.weight[0]
    )


def _train(n: int, perturb: bool = False, rollouts: int = 3) -> PopulationPPO:
    cfg = PPOConfig(
        num_envs=2, num_steps=32, num_minibatches=2, update_epochs=2, norm_obs=True, norm_reward=True
    )
    env = PopulationEnv("Pendulum-v1", n, cfg.num_envs, seed=3)
    pop = PopulationPPO(env.spec, cfg, [derive_seed(3, "agent", a) for a in range(n)])
    if perturb:
        with torch.no_grad():
            for p in pop.net.parameters():
                p[1:] += 0.5
    for _ in range(rollouts):
        pop.collect_and_update(env, np.full(n, 10**6))
    env.close()
    return pop


def test_agents_never_influence_each_other_without_sharing():
    alone = _train(1)
    together = _train(3)
    perturbed = _train(3, perturb=True)
    for name, tens in alone.state_tensors().items():
        assert torch.allclose(together.state_tensors()[name][0], tens[0], atol=1e-5), name
        assert torch.allclose(perturbed.state_tensors()[name][0], tens[0], atol=1e-5), name
    assert not torch.allclose(together.net.actor.l1.weight[1], perturbed.net.actor.l1.weight[1])


def test_same_seed_same_parameters():
    a, b = _train(2, rollouts=2), _train(2, rollouts=2)
    for name, tens in a.state_tensors().items():
        assert torch.equal(tens, b.state_tensors()[name]), name


def test_short_learning_cartpole():
    """A few seconds of PPO on CartPole must lift both agents' returns well above random (~22)."""
    cfg = PPOConfig(num_envs=4, num_steps=128, num_minibatches=4, update_epochs=4, learning_rate=2.5e-3)
    env = PopulationEnv("CartPole-v1", 2, cfg.num_envs, seed=0, backend="gymnasium")
    pop = PopulationPPO(env.spec, cfg, [1, 2])
    late: list[list[float]] = [[], []]
    for i in range(15):
        stats = pop.collect_and_update(env, np.full(2, 10**6))
        if i >= 10:
            for a in range(2):
                late[a].extend(stats.episode_returns[a])
    env.close()
    assert min(np.mean(r) for r in late) > 100, late


def test_update_that_makes_parameters_non_finite_names_the_agent():
    """One isfinite over all parameters per update; on failure, the agents and what went non-finite."""
    spec = SPECS["continuous"]
    pop = PopulationPPO(spec, PPOConfig(num_envs=2, num_steps=16, hidden=8), [1, 2, 3])
    obs, act, logp, adv, ret, valid = _random_rollout(spec, 3)
    adv[:, 2] = float("nan")
    with pytest.raises(NonFiniteError) as info:
        pop.update(obs, act, logp, adv, ret, valid)
    err = info.value
    assert err.source == "training" and err.agents == [2]
    assert err.what == ["advantages/returns", "loss", "gradient norm", "parameters"]
    assert torch.isfinite(pop.flat[:2]).all()  # the others are untouched by agent 2's NaN
    assert (
        "training diverged" in str(err) and "for agent 2." in str(err) and "learning_rate=0.0005" in str(err)
    )


def test_rollout_with_a_diverged_policy_names_that_agent():
    """Agent 1's parameters are huge but finite: its actions overflow to NaN during the rollout; the
    simulator stays valid and the rollout check blames agent 1's policy, not the environment."""
    cfg = PPOConfig(num_envs=2, num_steps=32, num_minibatches=2, update_epochs=1)
    env = PopulationEnv("Pendulum-v1", 2, cfg.num_envs, seed=3)
    pop = PopulationPPO(env.spec, cfg, [1, 2])
    with torch.no_grad():
        pop.flat[1] = 3e38
    with pytest.raises(NonFiniteError) as info:
        pop.collect_and_update(env, np.full(2, 10**6))
    env.close()
    assert info.value.source == "training" and info.value.agents == [1]
    assert info.value.what[0].startswith("policy actions")


class _FakeEnv:
    """Quacks like a PopulationEnv; its episodes never end, and it can return NaN where asked."""

    def __init__(
        self, spec: EnvSpec, n: int, m: int, nan_obs: tuple | None = None, nan_rew: tuple | None = None
    ):
        self.spec, self.n, self.m, self.max_decisions = spec, n, m, 7
        self.nan_obs, self.nan_rew, self.calls = nan_obs, nan_rew, 0

    def reset(self) -> torch.Tensor:
        return torch.zeros(self.n, self.m, *self.spec.obs_shape)

    def action_mask(self) -> None:
        return None

    def step(self, action: torch.Tensor) -> tuple:
        self.calls += 1
        obs, r = self.reset(), np.zeros((self.n, self.m), dtype=np.float32)
        if self.nan_obs is not None and self.calls >= 3:
            obs[self.nan_obs] = float("nan")
        if self.nan_rew is not None and self.calls >= 3:
            r[self.nan_rew] = np.nan
        no = np.zeros((self.n, self.m), dtype=bool)
        return obs, r, no, no, np.zeros((self.n, self.m))


def test_evaluate_is_bounded_by_the_time_limit():
    spec = SPECS["continuous"]
    env = _FakeEnv(spec, 2, 2)
    with pytest.raises(EpisodeLimitError, match="did not end within 7 steps"):
        evaluate(PopulationPPO(spec, PPOConfig(hidden=8), [1, 2]), env)
    assert env.calls == 7


def test_evaluate_reports_non_finite_values_and_who_produced_them():
    spec = SPECS["continuous"]
    agents = PopulationPPO(spec, PPOConfig(hidden=8), [1, 2, 3])
    with pytest.raises(NonFiniteError) as info:
        evaluate(agents, _FakeEnv(spec, 3, 2, nan_obs=(1, 0)))
    assert (info.value.source, info.value.agents, info.value.what) == ("environment", [1], ["observations"])
    with pytest.raises(NonFiniteError) as info:
        evaluate(agents, _FakeEnv(spec, 3, 2, nan_rew=(2, 1)))
    assert (info.value.source, info.value.agents, info.value.what) == ("environment", [2], ["rewards"])
    with torch.no_grad():
        agents.flat[0] = float("inf")
    with pytest.raises(NonFiniteError) as info:
        evaluate(agents, _FakeEnv(spec, 3, 2))
    assert (info.value.source, info.value.agents, info.value.what) == ("training", [0], ["policy actions"])
