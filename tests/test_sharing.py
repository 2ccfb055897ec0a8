"""UCB sharing: hand-computed decisions (eq. 1-2), the copy, the statistics choices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from collab.config import ConfigError, PPOConfig
from collab.envs import PopulationEnv
from collab.ppo import PopulationPPO
from collab.sharing import UCBSharer, qualifies, share_sources, ucb


def test_ucb_eq1_by_hand():
    # k = 4, N = [1, 4]: bonus c*sqrt(log 4 / N)
    u = ucb(np.array([10.0, -5.0]), np.array([1, 4]), k=4, c=1.5)
    assert u[0] == pytest.approx(10.0 + 1.5 * math.sqrt(math.log(4) / 1))
    assert u[1] == pytest.approx(-5.0 + 1.5 * math.sqrt(math.log(4) / 4))
    assert ucb(np.array([3.0]), np.array([1]), k=1, c=1.5)[0] == 3.0  # log 1 = 0
    with pytest.raises(ValueError):
        ucb(np.array([1.0]), np.array([0]), 2, 1.0)


def test_positive_rewards_lambda_one_everyone_copies_the_best():
    assert share_sources(np.array([1.0, 5.0, 3.0]), lam=1.0).tolist() == [1, 1, 1]


def test_positive_rewards_lambda_above_one_needs_a_clear_lead():
    # 5 > 1.5*3 = 4.5 (copy), 5 > 1.5*4 = 6 fails (keep); 4 > 1.5*1 (agent 0 copies the best: 1)
    assert share_sources(np.array([1.0, 5.0, 4.0, 3.0]), lam=1.5).tolist() == [1, 1, 2, 1]


def test_ties_never_qualify_and_best_tie_breaks_to_lowest_index():
    assert share_sources(np.array([2.0, 2.0]), lam=1.0).tolist() == [0, 1]
    assert share_sources(np.array([5.0, 1.0, 5.0]), lam=1.0).tolist() == [0, 0, 2]


def test_negative_rewards_literal_rule_loosens_for_lambda_above_one():
    u = np.array([-150.0, -100.0])
    # literal: -150 > 2 * -100 = -200, so the WORSE agent 0 qualifies as a source for agent 1
    assert qualifies(u, 2.0, "literal")[0, 1]
    assert share_sources(u, 2.0, "literal").tolist() == [1, 0]
    # sign-robust: -150 - -100 = -50 > (2-1)*100 fails; -100 - -150 = 50 > 150 fails
    assert share_sources(u, 2.0, "sign_robust").tolist() == [0, 1]
    # a clear lead qualifies: -10 - -100 = 90 > 0.5 * 100
    assert share_sources(np.array([-10.0, -100.0]), 1.5, "sign_robust").tolist() == [0, 0]


def test_rules_agree_at_lambda_one():
    gen = np.random.default_rng(0)
    for _ in range(50):
        u = gen.normal(scale=100, size=5)
        assert (qualifies(u, 1.0, "literal") == qualifies(u, 1.0, "sign_robust")).all()


def test_several_sources_best_and_random():
    u = np.array([1.0, 4.0, 3.0, 2.0])
    assert share_sources(u, 1.0, source_choice="best").tolist() == [1, 1, 1, 1]
    rng = np.random.default_rng(0)
    picks = {int(share_sources(u, 1.0, source_choice="random", rng=rng)[0]) for _ in range(100)}
    assert picks == {1, 2, 3}  # any agent better than agent 0 can be its source


def test_one_agent_never_shares():
    assert share_sources(np.array([3.0]), 1.0).tolist() == [0]
    s = UCBSharer(1)
    s.record_round([[1.0, 2.0]])
    assert s.decide(2).tolist() == [0] and s.log == []


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"c": -0.1}, "c=-0.1"),
        ({"lam": 0.5}, "lam=0.5"),
        ({"rule": "x"}, "rule='x'"),
        ({"n_agents": 0}, "n_agents=0"),
    ],
)
def test_sharer_validates_at_construction(kw, needle):
    args = {"n_agents": 2, **kw}
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        UCBSharer(**args)


def test_sharer_literal_defaults_log_and_keep_stats():
    s = UCBSharer(3, c=1.5, lam=1.0)
    s.record_round([[1.0, 3.0], [10.0], [4.0, 6.0]])  # means 2, 10, 5; k = 1 so no bonus
    src = s.decide(episode=2)
    assert src.tolist() == [1, 1, 1]
    assert [(e.source, e.target) for e in s.log] == [(1, 0), (1, 2)]
    e = s.log[0]
    assert (e.round, e.episode, e.ucb_source, e.ucb_target, e.mean_source, e.mean_target) == (
        1,
        2,
        10,
        2,
        10,
        2,
    )
    assert s.means().tolist() == [2.0, 10.0, 5.0]  # keep: statistics stay the receiver's own
    s.record_round([[0.0], [0.0], [20.0]])  # k = 2: cumulative means 4/3, 5, 10
    u = s.ucb_values()
    bonus = 1.5 * math.sqrt(math.log(2) / 2)
    assert u.tolist() == pytest.approx([4 / 3 + bonus, 5 + bonus, 10 + bonus])
    assert s.decide(4).tolist() == [2, 2, 2]


def test_sharer_reset_and_inherit_statistics():
    r = UCBSharer(2, stats_after_copy="reset")
    r.record_round([[1.0], [3.0]])
    r.decide(1)
    assert r.count.tolist() == [0, 1] and r.rounds.tolist() == [0, 1]
    r.record_round([[5.0], [3.0]])  # agent 0: only its new episode; N_0 = 1 < N_1 = 2
    bonus = math.sqrt(math.log(2))
    assert r.ucb_values().tolist() == pytest.approx([5 + 1.5 * bonus, 3 + 1.5 * bonus / math.sqrt(2)])
    i = UCBSharer(2, stats_after_copy="inherit")
    i.record_round([[1.0], [3.0]])
    i.decide(1)
    assert i.means().tolist() == [3.0, 3.0] and i.count.tolist() == [1, 1]


def test_last_round_estimate():
    s = UCBSharer(2, reward_estimate="last_round", c=0.0)
    s.record_round([[10.0], [0.0]])
    s.decide(1)
    s.record_round([[0.0], [1.0]])
    assert s.means().tolist() == [0.0, 1.0]
    # a round without episodes (overshoot covered it) keeps the last estimate, not an empty mean 0
    e = UCBSharer(2, reward_estimate="last_round", c=0.0)
    e.record_round([[-50.0], [-80.0]])
    e.record_round([[-40.0], []])
    assert e.means().tolist() == [-40.0, -80.0]
    assert (e.decide(2) == [0, 0]).all()  # agent 1 copies the better agent 0, not the other way


def _population(n: int = 3) -> tuple[PopulationPPO, PopulationEnv]:
    cfg = PPOConfig(
        num_envs=2, num_steps=32, num_minibatches=2, update_epochs=2, norm_obs=True, norm_reward=True
    )
    env = PopulationEnv("Pendulum-v1", n, cfg.num_envs, seed=0)
    return PopulationPPO(env.spec, cfg, [7, 8, 9][:n]), env


def test_copy_makes_receiver_act_like_source_then_diverge():
    pop, env = _population()
    for _ in range(2):
        pop.collect_and_update(env, np.full(3, 10**6))
    pop.copy_agents([0, 0, 2])
    for name, t in pop.state_tensors().items():
        assert torch.equal(t[1], t[0]), name
    obs = torch.randn(3, 5, 3) * 3
    same = torch.cat([obs[:1], obs[:1], obs[2:]])
    act = pop.act(same)
    assert torch.equal(act[0], act[1])
    pop.collect_and_update(env, np.full(3, 10**6))
    assert not torch.equal(pop.net.actor.l1.weight[0], pop.net.actor.l1.weight[1])
    env.close()


def test_copy_is_simultaneous():
    pop, env = _population()
    w = pop.net.actor.l1.weight.detach().clone()
    pop.copy_agents([1, 0, 2])  # swap: each reads the state before any copy
    assert torch.equal(pop.net.actor.l1.weight[0], w[1]) and torch.equal(pop.net.actor.l1.weight[1], w[0])
    env.close()


def test_a_rule_named_in_config_but_without_a_test_is_one_clear_error(monkeypatch):
    """A rule added to RULES but not to RULE_TESTS used to raise UnboundLocalError in qualifies."""
    import collab.sharing

    monkeypatch.setattr(collab.sharing, "RULES", (*collab.sharing.RULES, "ratio"))
    with pytest.raises(ConfigError, match="rule='ratio' is not allowed: one with a test in RULE_TESTS"):
        qualifies(np.array([1.0, 2.0]), 1.0, "ratio")
    with pytest.raises(ConfigError, match="rule='other' is not allowed: one of literal, sign_robust"):
        qualifies(np.array([1.0, 2.0]), 1.0, "other")
