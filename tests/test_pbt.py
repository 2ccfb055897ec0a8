"""Population Based Training (collab.strategies.pbt), the sharing options through a whole run, named
setups."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from collab import ConfigError, ExperimentConfig, run_experiment
from collab.optim import BatchedAdam
from collab.strategies.pbt import PERTURB_FACTORS, pbt_sources, perturb, quantile_size

TINY = {
    "env_id": "CartPole-v1",
    "episodes_per_agent": 8,
    "validate_every": 2,
    "val_episodes": 1,
    "eval_episodes": 1,
    "max_episode_steps": 30,
}


def test_quantile_size():
    assert quantile_size(8, 0.25) == 2
    assert quantile_size(5, 0.25) == 2  # ceil(1.25)
    assert quantile_size(8, 0.5) == 4
    assert quantile_size(3, 0.5) == 1  # never overlapping: at most n // 2
    assert quantile_size(2, 0.01) == 1  # at least one


def test_bottom_quantile_copies_a_top_agent():
    scores = np.array([5.0, 1.0, 3.0, 7.0, 2.0, 8.0, 6.0, 4.0])
    seen = set()
    for seed in range(20):
        src = pbt_sources(scores, 0.25, np.random.default_rng(seed))
        # bottom two: agents 1 (score 1) and 4 (score 2); top two: agents 3 (7) and 5 (8)
        assert set(np.flatnonzero(src != np.arange(8))) == {1, 4}
        assert src[1] in (3, 5) and src[4] in (3, 5)
        seen.add(int(src[1]))
    assert seen == {3, 5}  # uniform over the top set: both appear


def test_ties_rank_the_lower_index_lower():
    src = pbt_sources(np.array([1.0, 1.0, 1.0, 1.0]), 0.25, np.random.default_rng(0))
    assert src.tolist() == [3, 1, 2, 3]


def test_an_agent_without_episodes_is_neither_copier_nor_source():
    """NaN: the agent finished no episode this round. It is left out of the ranking (it used to rank
    worst and be overwritten); the sets are sized by the three agents with a score."""
    src = pbt_sources(np.array([np.nan, 0.0, -5.0, 2.0]), 0.25, np.random.default_rng(0))
    assert src.tolist() == [0, 1, 3, 3]
    src = pbt_sources(np.array([np.nan, 1.0, np.nan, np.nan]), 0.5, np.random.default_rng(0))
    assert src.tolist() == [0, 1, 2, 3]  # one scored agent: nobody to compare with


def test_default_setup_names_keep_population_sizes_apart():
    from collab.results import setup_name

    assert setup_name("pbt", 4) == "pbt_4" and setup_name("pbt", 8) == "pbt_8"  # was "pbt" for both
    assert setup_name("collaborative", 8) == "collaborative_8"
    assert setup_name("independent", 8) == "independent" and setup_name("sequential", 8) == "sequential"


def test_two_agents_the_worse_copies_the_better():
    assert pbt_sources(np.array([2.0, 1.0]), 0.25, np.random.default_rng(0)).tolist() == [0, 0]
    assert pbt_sources(np.array([1.0, 2.0]), 0.5, np.random.default_rng(0)).tolist() == [1, 1]


def test_perturb_multiplies_only_the_targets():
    out = perturb(np.array([1.0, 1.0, 1.0]), np.array([0, 2]), np.random.default_rng(0))
    assert out[1] == 1.0 and out[0] in PERTURB_FACTORS and out[2] in PERTURB_FACTORS


def test_per_agent_learning_rates_take_different_adam_steps():
    """Two agents, the same gradient, learning rates 1e-3 and 4e-3: Adam's first step is lr * sign."""
    params = torch.zeros(2, 3)
    opt = BatchedAdam(params)
    grad = torch.tensor([[1.0, -2.0, 0.5], [1.0, -2.0, 0.5]])
    opt.step(grad, torch.tensor([1e-3, 4e-3]), torch.tensor([True, True]))
    step = -params
    torch.testing.assert_close(step[0], 1e-3 * grad[0].sign(), rtol=1e-4, atol=0)
    torch.testing.assert_close(step[1], 4e-3 * grad[1].sign(), rtol=1e-4, atol=0)


def test_pbt_run_logs_copies_and_hyperparameters(tmp_path):
    res = run_experiment(
        ExperimentConfig(strategy="pbt", n_agents=4, out_dir=str(tmp_path), **TINY), progress=False
    )
    curves, sharing = res.curves, res.sharing
    assert len(sharing) > 0 and sharing["ucb_source"].isna().all()
    assert (sharing["mean_source"] > sharing["mean_target"]).all()  # the better agent is copied
    for _, row in sharing.iterrows():
        hit = curves[(curves["round"] == row["round"]) & (curves["agent"] == row["target"])]
        assert hit["copied_from"].item() == row["source"]
    lr0 = res.config["ppo"]["learning_rate"]
    ratios = curves["lr"] / lr0  # products of 0.8 and 1.2: log-lattice points
    k = np.log(ratios.to_numpy()) / math.log(1.2)
    assert (curves.groupby("round")["lr"].nunique() > 1).any()  # explored: agents differ
    assert np.isfinite(k).all()
    assert {"lr", "ent_coef"} <= set(curves.columns)


def test_pbt_without_perturbation_keeps_the_paper_learning_rate(tmp_path):
    res = run_experiment(
        ExperimentConfig(strategy="pbt", n_agents=4, pbt_perturb=False, out_dir=str(tmp_path), **TINY),
        progress=False,
    )
    assert (res.curves["lr"] == 5e-4).all() and len(res.sharing) > 0


def test_sign_robust_on_negative_rewards_shares_only_past_the_threshold(tmp_path):
    lam = 1.05
    res = run_experiment(
        ExperimentConfig(
            env_id="Pendulum-v1",
            strategy="collaborative",
            n_agents=4,
            rule="sign_robust",
            lam=lam,
            episodes_per_agent=12,
            validate_every=2,
            val_episodes=1,
            eval_episodes=1,
            max_episode_steps=50,
            out_dir=str(tmp_path),
        ),
        progress=False,
    )
    s = res.sharing
    assert len(s) > 0 and (s["ucb_target"] < 0).all()  # Pendulum: negative returns
    assert ((s["ucb_source"] - s["ucb_target"]) > (lam - 1) * s["ucb_target"].abs()).all()


def test_reset_statistics_make_n_differ_and_ucbs_follow_eq1(tmp_path):
    c = 1.5
    res = run_experiment(
        ExperimentConfig(
            strategy="collaborative",
            n_agents=4,
            stats_after_copy="reset",
            c=c,
            out_dir=str(tmp_path),
            **{**TINY, "episodes_per_agent": 12},
        ),
        progress=False,
    )
    s = res.sharing
    late = s[s["round"] > 1]
    assert len(late) > 0
    # eq. 1: UCB = R_hat + c sqrt(log k / N) -> N = log k / ((UCB - R_hat) / c)^2, an integer in 1..k
    for side in ("source", "target"):
        bonus = (late[f"ucb_{side}"] - late[f"mean_{side}"]) / c
        n_obs = np.log(late["round"]) / bonus**2
        np.testing.assert_allclose(n_obs, np.round(n_obs), rtol=1e-6)
        assert ((np.round(n_obs) >= 1) & (np.round(n_obs) <= late["round"])).all()
        late = late.assign(**{f"n_{side}": np.round(n_obs)})
    assert (late["n_source"] != late["n_target"]).any()  # a reset copier has fewer rounds on record


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("pbt_quantile", 0.0, "pbt_quantile=0.0 is not allowed: a number in (0, 0.5]"),
        ("pbt_quantile", 0.6, "pbt_quantile=0.6 is not allowed"),
        ("pbt_perturb", "yes", "pbt_perturb='yes' is not allowed"),
        ("n_agents", 1, "n_agents=1 is not allowed: an integer >= 2 with strategy='pbt'"),
        ("setup", "../x", "setup='../x' is not allowed"),
    ],
)
def test_bad_pbt_and_setup_values(field, value, needle, tmp_path):
    out = tmp_path / "out"
    cfg = ExperimentConfig(**{**TINY, "strategy": "pbt", "n_agents": 4, "out_dir": str(out), field: value})
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("]", r"\]")):
        run_experiment(cfg, progress=False)
    assert not out.exists()


def test_named_setup_names_the_results(tmp_path):
    res = run_experiment(
        ExperimentConfig(
            strategy="independent", n_agents=2, setup="independent_2", out_dir=str(tmp_path), **TINY
        ),
        progress=False,
    )
    assert set(res.curves["setup"]) == {"independent_2"} and set(res.final["setup"]) == {"independent_2"}
