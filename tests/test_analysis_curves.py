"""collab.analysis.curves: learning curves, convergence, performance variance and shares (Figures 1-3)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from analysis_helpers import _conv_curves, _curves, _final, _final_from_curves
from synthetic import synthetic_results

from collab import analysis as A
from collab.results import SCHEMA, frame

# ---------------------------------------------------------------- curves and convergence


def test_learning_curves_average_agents_then_seeds():
    lc = A.learning_curves(_conv_curves())
    ind = lc[(lc["setup"] == "independent")].set_index("x")
    # round 4: seed 0 agent mean (-190-300)/2 = -245; seed 1 -700; mean -472.5
    assert ind.loc[400, "mean"] == pytest.approx(-472.5)
    assert ind.loc[400, "n_seeds"] == 2
    assert ind.loc[100, "ci_low"] == ind.loc[100, "ci_high"] == -1000
    tot = A.learning_curves(_conv_curves(), x="total_episodes")
    assert tot["x"].max() == 1000  # 5 rounds x 100 episodes x 2 agents


def test_convergence_threshold_and_censoring():
    curves = _conv_curves()
    thr = A.convergence_thresholds(curves).set_index("env_id").loc["Pendulum-v1"]
    # seed-mean curves: min -1000 (round 1), max -100 (collaborative): threshold -1000 + 0.9*900 = -190
    assert thr["lo"] == -1000 and thr["hi"] == -100 and thr["threshold"] == pytest.approx(-190)
    conv = A.episodes_to_threshold(curves).set_index(["setup", "seed"])
    # independent seed 0 agent mean: round 4 -245, round 5 -175 >= -190: reached at 500
    assert conv.loc[("independent", 0), "episodes"] == 500
    assert not conv.loc[("independent", 1), "reached"]
    assert math.isnan(conv.loc[("independent", 1), "episodes"])  # not reached: NaN, never 0
    assert conv.loc[("collaborative_2", 0), "episodes"] == 200
    s = A.convergence_summary(conv.reset_index()).set_index("setup")
    assert s.loc["independent", "n_reached"] == 1 and s.loc["independent", "frac_reached"] == 0.5
    assert s.loc["independent", "mean_reached"] == 500
    assert s.loc["independent", "restricted_mean"] == 500  # (500 + budget 500) / 2
    assert s.loc["collaborative_2", "mean_reached"] == 200 and s.loc["collaborative_2", "ci_low"] == 200


def test_learning_curves_match_seeds_by_round_not_x():
    curves = _curves({("Acrobot-v1", "independent", s): [[-300.0 + 100 * s, -100.0]] for s in (0, 1)})
    curves.loc[(curves["seed"] == 1) & (curves["round"] == 1), "episode"] = 103  # overshoot in seed 1
    lc = A.learning_curves(curves)
    assert lc["round"].tolist() == [1, 2] and lc["n_seeds"].tolist() == [2, 2]
    assert lc["x"].tolist() == [101.5, 200.0] and lc["mean"].tolist() == [-250.0, -100.0]
    thr = A.convergence_thresholds(curves).iloc[0]
    assert thr["lo"] == -250.0  # the seed mean; per x, seed 0's -300 would stand alone


def test_convergence_threshold_ignores_sequential_beyond_the_population_budget():
    curves = _curves(
        {
            ("Taxi-v4", "independent", 0): [[-200.0, -50.0]],  # budget: 200 episodes per agent
            ("Taxi-v4", "sequential", 0): [[-200.0, -100.0, -20.0, 8.0]],  # 8.0 only at 400
        }
    )
    thr = A.convergence_thresholds(curves).iloc[0]
    assert thr["hi"] == -50.0 and thr["threshold"] == pytest.approx(-200 + 0.9 * 150)
    only_seq = A.convergence_thresholds(curves[curves["setup"] == "sequential"]).iloc[0]
    assert only_seq["hi"] == 8.0


# ---------------------------------------------------------------- variance


def test_variance_within_run_and_between_seeds():
    env = "CarRacing-v3"
    curves = _curves(
        {
            # last-round values: independent 0, 10 | 20, 40 -> pair spreads 10/sqrt2, 20/sqrt2
            (env, "independent", 0): [[5, 0], [5, 10]],
            (env, "independent", 1): [[5, 20], [5, 40]],
            # collaborative: 10, 12 | 14, 14 -> 2/sqrt2, 0
            (env, "collaborative_2", 0): [[5, 10], [5, 12]],
            (env, "collaborative_2", 1): [[5, 14], [5, 14]],
            (env, "sequential", 0): [[5, 7]],
            (env, "sequential", 1): [[5, 9]],
        }
    )
    results = {("independent", 0): 100.0, ("independent", 1): 140.0, ("collaborative_2", 0): 110.0}
    results |= {("collaborative_2", 1): 120.0, ("sequential", 0): 50.0, ("sequential", 1): 50.0}
    final = _final_from_curves(curves, results)
    fa = A.final_agent_returns(curves)
    assert len(fa) == 10 and set(fa["val_return"]) == {0, 10, 20, 40, 12, 14, 7, 9}
    v = A.performance_variance(curves, final).set_index("setup")
    assert v.loc["independent", "within"] == pytest.approx(15 / math.sqrt(2))
    assert v.loc["collaborative_2", "within"] == pytest.approx(1 / math.sqrt(2))
    assert math.isnan(v.loc["sequential", "within"]) and v.loc["sequential", "n_agents"] == 1
    # between seeds: sd of the runs' Table 1 values, one per seed for every setup
    assert v.loc["independent", "between"] == pytest.approx(np.std([100, 140], ddof=1))
    assert v.loc["collaborative_2", "between"] == pytest.approx(np.std([110, 120], ddof=1))
    assert v.loc["sequential", "between"] == 0.0
    c = A.claim_variance(curves, final).set_index("measure")
    assert c.loc["within run", "estimate"] == pytest.approx(1 - (1 / 15))
    assert c.loc["between seeds", "estimate"] == pytest.approx(1 - 10 / 40)
    assert set(c["claim"]) == {"variance >=25% lower"} and set(c["setup"]) == {"collaborative_2"}
    c30 = A.claim_variance(curves, final, target=0.30, envs=A.COMPLEX_ENVS)
    assert set(c30["claim"]) == {"variance >=30% lower"} and len(c30) == 2


# ---------------------------------------------------------------- sharing


def test_share_timeline_and_counts():
    data = synthetic_results(envs=["Acrobot-v1"], seeds=[0, 1], rounds=6)
    tl = A.share_timeline(data.sharing)
    assert set(tl["setup"]) == {"collaborative_8"} and set(tl["seed"]) == {0}
    assert (tl["source"] != tl["target"]).all()
    counts = A.share_counts(data.sharing, data.final)
    assert set(counts["setup"]) == set(A.COLLAB_SETUPS)
    empty = A.share_timeline(pd.DataFrame(columns=SCHEMA["sharing.csv"]))
    assert empty.empty


def test_share_counts_hand_computed():
    def share(seed, rnd, source, target):
        keys = {"env_id": "Taxi-v4", "strategy": "collaborative", "n_agents": 4, "setup": "collaborative_4"}
        stats = {"ucb_source": 1.0, "ucb_target": 0.0, "mean_source": 1.0, "mean_target": 0.0}
        return {
            **keys,
            "seed": seed,
            "round": rnd,
            "episode": 10 * rnd,
            "source": source,
            "target": target,
            **stats,
        }

    rows = [share(0, 1, 2, 0), share(0, 1, 2, 1), share(0, 2, 2, 3), share(0, 3, 1, 0)]  # sources {2, 1}
    rows += [share(1, 1, 3, 0)]  # seed 1: one share from agent 3
    final = _final([("Taxi-v4", "collaborative_4", sd, [0.0]) for sd in (0, 1, 2)])  # seed 2: no share
    c = A.share_counts(frame("sharing.csv", rows), final).iloc[0]
    assert (c["n_runs"], c["mean_shares"], c["min_shares"], c["max_shares"]) == (3, 5 / 3, 0, 4)
    assert c["mean_sources"] == pytest.approx((2 + 1 + 0) / 3)
