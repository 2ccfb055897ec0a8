"""collab.analysis.aggregate: normalised scores, rliable's aggregate metrics, matched-compute comparisons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from analysis_helpers import _final
from scipy import stats

from collab import analysis as A

# ---------------------------------------------------------------- aggregate metrics (rliable's formulas)


#: Four runs x three tasks, and the values rliable 1.2.0's ``metrics`` module gives for them
#: (aggregate_iqm, aggregate_mean, aggregate_median, aggregate_optimality_gap, probability_of_improvement).
X = np.array([[0.1, 0.5, 0.9], [0.2, 0.4, 0.6], [0.3, 0.3, 0.8], [0.0, 1.0, 0.5]])


Y = np.array([[0.2, 0.6, 0.9], [0.3, 0.5, 0.6], [0.3, 0.4, 0.9], [0.1, 0.9, 0.6]])


def test_aggregate_metrics_match_rliable_on_a_known_input():
    tasks = list(X.T)
    assert A.iqm(*tasks) == pytest.approx(0.43333333)  # the middle 6 of 12 values: 2.6 / 6
    assert A.mean_score(*tasks) == pytest.approx(0.46666667)
    assert A.median_score(*tasks) == pytest.approx(0.55)  # task means 0.15, 0.55, 0.7
    assert A.optimality_gap(*tasks) == pytest.approx(0.53333333)
    assert A.optimality_gap(np.array([0.5, 1.5])) == pytest.approx(0.25)  # clipped at 1
    assert A.probability_of_improvement(list(X.T), list(Y.T)) == pytest.approx(0.35416667)


def test_probability_of_improvement_ties_and_extremes():
    f = A.probability_of_improvement
    assert f([np.array([1.0, 1.0])], [np.array([1.0, 1.0])]) == 0.5  # ties count a half
    assert f([np.array([2.0, 3.0])], [np.array([1.0])]) == 1.0
    # task 1: of 4 pairs none greater, one tied -> 0.125; task 2: always lower -> 0; mean 0.0625
    assert f([np.array([1.0, 3.0]), np.array([0.0])], [np.array([3.0, 4.0]), np.array([1.0])]) == 0.0625
    assert f([np.array([1.0, 3.0, 5.0])], [np.array([3.0])]) == 0.5  # one below, one tied, one above


def test_stratified_bootstrap_resamples_within_tasks():
    rng = np.random.default_rng(0)
    tasks = [rng.normal(0, 1, 5), rng.normal(10, 1, 5)]
    est, lo, hi = A.stratified_bootstrap(tasks, A.mean_score, n_boot=2000)
    assert lo < est < hi and hi - lo < 3  # pooled resampling would mix the tasks: a far wider interval
    boot = stats.bootstrap(
        tuple(tasks), A.mean_score, n_resamples=2000, rng=np.random.default_rng(0), method="percentile"
    )
    assert (lo, hi) == pytest.approx((boot.confidence_interval.low, boot.confidence_interval.high))
    assert all(np.isnan(v) for v in A.stratified_bootstrap([np.array([1.0])], A.mean_score)[1:])


# ---------------------------------------------------------------- normalised scores


def test_normalised_scores_and_references():
    final = _final(
        [
            ("Acrobot-v1", "independent", 0, [-500.0] * 2),  # the random policy: 0
            ("Acrobot-v1", "independent", 1, [-69.1] * 2),  # the reference: 1
            ("Taxi-v4", "independent", 0, [-82.6, -82.6]),  # halfway from -173.2 to 8
            ("CartPole-v1", "independent", 0, [500.0]),  # no reference: NaN
        ]
    )
    sc = A.normalised_scores(final).set_index(["env_id", "seed"])["score"]
    assert sc["Acrobot-v1", 0] == 0.0 and sc["Acrobot-v1", 1] == pytest.approx(1.0)
    assert sc["Taxi-v4", 0] == pytest.approx(0.5) and math.isnan(sc["CartPole-v1", 0])
    assert set(A.SCORE_REFERENCES) == set(A.ENVS)


def test_score_references_are_the_committed_random_policy_returns(root):
    bench = pd.read_csv(root / "benchmarks" / "results" / "random_policy.csv")
    legal = bench["policy"] == "uniform over legal actions"
    uniform = bench[(bench["policy"] == "uniform") & (bench["env_id"] != "Taxi-v4")]
    measured = dict(zip(uniform["env_id"], uniform["mean"], strict=True))
    measured["Taxi-v4"] = float(bench.loc[legal & (bench["env_id"] == "Taxi-v4"), "mean"].iloc[0])
    for env, ref in A.SCORE_REFERENCES.items():
        assert ref.random == pytest.approx(measured[env], abs=0.05), env
        assert ref.reference > ref.random


# ---------------------------------------------------------------- improvement, profiles, matched comparison


def _scores(rows: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """normalised_scores-like frame: {(env, setup): scores per seed}."""
    return pd.DataFrame(
        [{"env_id": e, "setup": s, "seed": i, "mean_return": v, "score": v} for (e, s), vs in rows.items()
         for i, v in enumerate(vs)]
    )  # fmt: skip


def test_aggregate_improvement_and_profiles_known_answers():
    sc = _scores(
        {
            ("Acrobot-v1", "independent"): [0.2, 0.2, 0.2],
            ("Taxi-v4", "independent"): [0.6, 0.6, 0.6],
            ("Acrobot-v1", "collaborative_8"): [0.4, 0.4, 0.4],
            ("Taxi-v4", "collaborative_8"): [0.8, 0.8, 0.8],
        }
    )
    agg = A.aggregate_metrics(sc, n_boot=200).set_index(["setup", "metric"])
    assert agg.loc[("independent", "mean"), ["estimate", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [0.4] * 3
    )
    assert agg.loc[("collaborative_8", "optimality gap"), "estimate"] == pytest.approx(0.4)
    assert (
        agg.loc[("collaborative_8", "IQM"), "n_runs"] == 6
        and agg.loc[("collaborative_8", "IQM"), "n_tasks"] == 2
    )
    imp = A.improvement(sc, n_boot=200)
    row = imp[(imp["setup"] == "collaborative_8") & (imp["baseline"] == "independent")].iloc[0]
    assert (row["estimate"], row["ci_low"], row["ci_high"]) == (1.0, 1.0, 1.0)
    assert set(imp["baseline"]) == {"independent"}  # no sequential runs: no comparison with it
    prof = A.performance_profiles(sc, taus=[0.3, 0.7], n_boot=200).set_index(["setup", "tau"])["estimate"]
    assert prof["independent", 0.3] == 0.5 and prof["collaborative_8", 0.3] == 1.0
    assert prof["collaborative_8", 0.7] == 0.5


def test_matched_comparison_known_answers():
    # two tasks; pbt8 beats independent in every pair of runs; independent_2 has no match for pbt8
    rows = []
    for env in ("Acrobot-v1", "Taxi-v4"):
        for setup, vals in (("independent", [0.1, 0.2, 0.3, 0.4]), ("pbt8", [0.6, 0.7, 0.8, 0.9])):
            rows += [{"env_id": env, "setup": setup, "seed": i, "score": v} for i, v in enumerate(vals)]
        rows += [{"env_id": env, "setup": "independent_2", "seed": i, "score": 0.5} for i in range(4)]
    rows += [{"env_id": "CartPole-v1", "setup": "pbt8", "seed": i, "score": math.nan} for i in range(4)]
    scores = pd.DataFrame(rows)
    setups = [
        {"name": "independent", "strategy": "independent", "n_agents": 8},
        {"name": "independent_2", "strategy": "independent", "n_agents": 2},
        {"name": "pbt8", "strategy": "pbt", "n_agents": 8},
    ]
    m = A.matched_comparison(scores, setups, n_boot=500).set_index(
        ["comparison", "setup", "baseline", "metric"]
    )
    assert len(m) == 3  # pbt8 vs independent only: no collaborative_8 in the profile
    poi = m.loc[("matched compute", "pbt8", "independent", "probability of improvement")]
    assert poi["estimate"] == 1.0 and poi["n_tasks"] == 2 and poi["ci_low"] == 1.0  # every pair is a win
    diff = m.loc[("matched compute", "pbt8", "independent", "IQM difference")]
    assert diff["estimate"] == pytest.approx(0.5) and diff["setup_value"] == pytest.approx(0.75)
    assert diff["baseline_value"] == pytest.approx(0.25) and diff["ci_low"] <= 0.5 <= diff["ci_high"]
    mean = m.loc[("matched compute", "pbt8", "independent", "mean difference")]
    assert mean["estimate"] == pytest.approx(0.5) and math.isnan(poi["setup_value"])
    # the paper's setting as the reference, where present; a tie counts one half
    pairs = [("vs independent_2", "independent", "independent_2")]
    tie = A.compare_setups(scores.assign(score=0.5), pairs, n_boot=200).iloc[0]
    assert tie["estimate"] == 0.5 and tie["ci_low"] == tie["ci_high"] == 0.5


def test_key_setups_pick_the_sign_robust_lambda_with_the_highest_iqm() -> None:
    setups = [
        {"name": "independent", "strategy": "independent", "n_agents": 8},
        {"name": "collaborative_8", "strategy": "collaborative", "n_agents": 8},
        {"name": "r1", "strategy": "collaborative", "n_agents": 8, "rule": "sign_robust", "lam": 1.02},
        {"name": "r2", "strategy": "collaborative", "n_agents": 8, "rule": "sign_robust", "lam": 1.1},
        {"name": "pbt8", "strategy": "pbt", "n_agents": 8},
        {"name": "pbt8_noperturb", "strategy": "pbt", "n_agents": 8},
    ]
    # r1's scores 0, 0.1, ..., 0.7 (IQM of the middle four: 0.35); r2's 0.2 everywhere but one 5.0
    # (IQM 0.2: the outlier is trimmed), so r1 is shown although r2 has the higher mean
    rows = [("Acrobot-v1", "r1", s, 0.1 * s) for s in range(8)]
    rows += [("Acrobot-v1", "r2", s, 5.0 if s == 0 else 0.2) for s in range(8)]
    scores = pd.DataFrame(rows, columns=["env_id", "setup", "seed", "score"])
    assert A.key_setups(setups, scores) == ["independent", "collaborative_8", "r1", "pbt8"]
    assert A.key_setups(setups[:2], scores) == []
