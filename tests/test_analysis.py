"""collab.analysis on small hand-made frames with known answers."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic import synthetic_results

from collab import analysis as A
from collab.results import SCHEMA, ResultsError, frame


def _final(rows: list[tuple[str, str, int, list[float]]]) -> pd.DataFrame:
    """final.csv rows: (env_id, setup, seed, episode returns)."""
    out = []
    for env, setup, seed, returns in rows:
        strategy = setup.split("_")[0]
        n = int(setup.split("_")[1]) if strategy == "collaborative" else 8
        for e, r in enumerate(returns):
            out.append(
                {
                    "env_id": env,
                    "strategy": strategy,
                    "n_agents": n,
                    "seed": seed,
                    "setup": setup,
                    "selected_agent": 0,
                    "selected_round": 1,
                    "selected_val_return": 0.0,
                    "eval_episode": e,
                    "return": r,
                }
            )
    return frame("final.csv", out)


def _curves(runs: dict[tuple[str, str, int], list[list[float]]], per_round: int = 100) -> pd.DataFrame:
    """curves.csv rows: {(env, setup, seed): [agent0 val_returns per round, agent1 ..., ...]}."""
    out = []
    for (env, setup, seed), agents in runs.items():
        strategy = setup.split("_")[0]
        n = int(setup.split("_")[1]) if strategy == "collaborative" else 8
        for a, vals in enumerate(agents):
            for r, v in enumerate(vals, start=1):
                out.append(
                    {
                        "env_id": env,
                        "strategy": strategy,
                        "n_agents": n,
                        "seed": seed,
                        "setup": setup,
                        "agent": a,
                        "round": r,
                        "episode": r * per_round,
                        "total_episodes": r * per_round * len(agents),
                        "env_steps": r * 1000,
                        "wall_time_s": 0.0,
                        "train_return": v,
                        "val_return": v,
                        "copied_from": -1,
                    }
                )
    return frame("curves.csv", out)


# ---------------------------------------------------------------- loading


def test_load_profile_missing_file_names_it(tmp_path):
    data = synthetic_results(envs=["Acrobot-v1"], setups=["independent"], seeds=[0], rounds=2)
    A.write_profile(data, tmp_path)
    (tmp_path / "final.csv").unlink()
    with pytest.raises(ResultsError, match="final.csv: file not found"):
        A.load_profile("smoke", data_dir=tmp_path)


def test_load_profile_missing_columns_named(tmp_path):
    data = synthetic_results(envs=["Acrobot-v1"], setups=["independent"], seeds=[0], rounds=2)
    A.write_profile(data, tmp_path)
    data.curves.drop(columns=["val_return", "episode"]).to_csv(tmp_path / "curves.csv", index=False)
    with pytest.raises(ResultsError, match=r"curves.csv: missing columns \['episode', 'val_return'\]"):
        A.load_profile("smoke", data_dir=tmp_path)


def test_load_profile_roundtrip_and_root(tmp_path):
    data = synthetic_results(envs=["Acrobot-v1"], setups=["independent", "collaborative_2"], seeds=[0, 1])
    (tmp_path / "pyproject.toml").write_text("")
    A.write_profile(data, tmp_path / "data" / "smoke")
    (tmp_path / "notebooks").mkdir()
    root = A.project_root(tmp_path / "notebooks")
    assert root == tmp_path
    loaded = A.load_profile("smoke", root=root)
    assert len(loaded.curves) == len(data.curves) and len(loaded.sharing) == len(data.sharing)
    assert list(loaded.final.columns[: len(SCHEMA["final.csv"])]) == SCHEMA["final.csv"]


def test_functions_check_columns():
    with pytest.raises(ResultsError, match=r"final.csv: missing columns \['return'\]"):
        A.per_seed_final(_final([("Acrobot-v1", "independent", 0, [1.0])]).drop(columns="return"))


def test_paper_table_copied_unchanged():
    paper = A.load_paper_table()
    assert len(paper) == 30
    got = paper.set_index(["env_id", "setup"])["paper"]
    assert got["Acrobot-v1", "collaborative_8"] == -0.55
    assert got["CarRacing-v3", "collaborative_8"] == 981.13
    assert got["Taxi-v4", "independent"] == -181.98
    assert set(paper["env_id_paper"]) >= {"LunarLander-v2", "CarRacing-v2", "Taxi-v1"}


# ---------------------------------------------------------------- bootstrap and Table 1


def test_bootstrap_constant_values_zero_width():
    assert A.bootstrap_ci([5.0, 5.0, 5.0]) == (5.0, 5.0)


def test_bootstrap_one_value_undefined_and_deterministic():
    lo, hi = A.bootstrap_ci([3.0])
    assert math.isnan(lo) and math.isnan(hi)
    assert A.bootstrap_ci([1.0, 2.0, 4.0]) == A.bootstrap_ci([1.0, 2.0, 4.0])
    lo, hi = A.bootstrap_ci([1.0, 2.0, 4.0])
    assert 1.0 <= lo < 7 / 3 < hi <= 4.0


def test_table1_means_ci_and_missing():
    final = _final(
        [
            ("Acrobot-v1", "independent", 0, [-90.0] * 10),
            ("Acrobot-v1", "independent", 1, [-90.0] * 10),
            ("Acrobot-v1", "independent", 2, [-90.0] * 10),
            # per-seed means -80 and -100 (episodes -70/-90 and -90/-110): mean -90
            ("Acrobot-v1", "collaborative_8", 0, [-70.0, -90.0] * 5),
            ("Acrobot-v1", "collaborative_8", 1, [-90.0, -110.0] * 5),
            ("Pendulum-v1", "sequential", 0, [-150.0] * 10),
        ]
    )
    t = A.table1(final, A.load_paper_table(), envs=A.ENVS, setups=A.SETUPS).set_index(["env_id", "setup"])
    assert len(t) == 30  # six envs x five setups asked for, even when most are missing
    default = A.table1(final)  # by default: the envs and setups present, in the paper's order
    assert list(dict.fromkeys(default["env_id"])) == ["Acrobot-v1", "Pendulum-v1"]
    assert list(dict.fromkeys(default["setup"])) == ["independent", "sequential", "collaborative_8"]
    ind = t.loc[("Acrobot-v1", "independent")]
    assert ind["mean"] == -90.0 and ind["ci_low"] == -90.0 and ind["ci_high"] == -90.0 and ind["n_seeds"] == 3
    c8 = t.loc[("Acrobot-v1", "collaborative_8")]
    assert c8["mean"] == pytest.approx(-90.0) and c8["sd"] == pytest.approx(math.sqrt(200))
    # t-interval over 2 seeds: -90 +- t(0.975, 1) * sd / sqrt(2) = -90 +- 12.706 * 10
    assert c8["ci_low"] == pytest.approx(-90 - 127.062, abs=0.01)
    assert c8["ci_high"] == pytest.approx(-90 + 127.062, abs=0.01)
    boot = A.table1(final, method="percentile", n_boot=500).set_index(["env_id", "setup"])
    lo, hi = boot.loc[("Acrobot-v1", "collaborative_8"), ["ci_low", "ci_high"]]
    assert -100.0 <= lo <= -90.0 <= hi <= -80.0  # a bootstrap never leaves the range of the seeds
    assert not c8["paper_achievable"] and ind["paper_achievable"]
    one = t.loc[("Pendulum-v1", "sequential")]
    assert one["n_seeds"] == 1 and math.isnan(one["ci_low"])
    assert t.loc[("Taxi-v4", "independent"), "n_seeds"] == 0
    wide = A.table1_wide(t.reset_index())
    assert wide.loc[1, "Sequential"] == "-150.00 [CI n/a, 1 seed] / -107.21"
    assert wide.loc[5, "Independent"].startswith("—")
    assert "-0.55†" in wide.loc[0, "8 agents"]


def test_save_table1_writes_three_files(tmp_path):
    final = _final([("Acrobot-v1", "independent", s, [-90.0 + s] * 10) for s in range(3)])
    paths = A.save_table1(A.table1(final, A.load_paper_table()), tmp_path)
    assert sorted(p.name for p in paths) == ["table1.csv", "table1.md", "table1.tex"]
    assert "| Acrobot-v1 |" in (tmp_path / "table1.md").read_text()
    assert r"\begin{tabular}" in (tmp_path / "table1.tex").read_text()
    assert not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------- achievability


def test_achievability_flags():
    vals = pd.DataFrame(
        {
            "env_id": ["Acrobot-v1", "Acrobot-v1", "Pendulum-v1", "CarRacing-v3", "CarRacing-v3", "Taxi-v4"],
            "setup": ["a", "b", "c", "d", "e", "f"],
            "paper": [-0.55, -87.39, 5.0, 981.13, 562.83, -181.98],
        }
    )
    f = A.achievability(vals).set_index("setup")["achievable"]
    assert list(f) == [False, True, False, False, True, True]
    assert set(A.env_ranges_frame()["env_id"]) == set(A.ENVS)


def test_paper_flags_expected_cells():
    flags = A.achievability(A.load_paper_table())
    bad = set(map(tuple, flags.loc[~flags["achievable"], ["env_id", "setup"]].to_numpy()))
    assert ("Acrobot-v1", "collaborative_8") in bad and ("Acrobot-v1", "sequential") in bad
    assert ("CarRacing-v3", "collaborative_8") in bad
    assert ("Acrobot-v1", "independent") not in bad


# ---------------------------------------------------------------- curves and convergence


def _conv_curves() -> pd.DataFrame:
    env = "Pendulum-v1"  # negative rewards
    return _curves(
        {
            # independent: seed 0 reaches the threshold at round 4; seed 1 never does
            (env, "independent", 0): [[-1000, -800, -500, -190, -150], [-1000, -900, -700, -300, -200]],
            (env, "independent", 1): [[-1000, -900, -800, -700, -600], [-1000, -900, -800, -700, -600]],
            # collaborative: both seeds reach it at round 2
            (env, "collaborative_2", 0): [[-1000, -100, -100, -100, -100], [-1000, -100, -100, -100, -100]],
            (env, "collaborative_2", 1): [[-1000, -100, -100, -100, -100], [-1000, -100, -100, -100, -100]],
        }
    )


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


def test_convergence_claim_holds_and_censoring_limits_the_verdict():
    conv = A.episodes_to_threshold(_conv_curves())
    c = A.claim_convergence(conv).set_index("setup")
    # 1 - 200/500 = 0.6 with no spread: a zero-width interval; independent's seed 1 never reached the
    # threshold (counted at its budget 500), so 0.6 is a lower bound and "holds" stands
    assert c.loc["collaborative_2", "estimate"] == pytest.approx(0.6)
    assert c.loc["collaborative_2", "verdict"] == "holds"
    assert "lower bound" in c.loc["collaborative_2", "note"]
    # against 0.9 the interval lies below, but a lower bound cannot show "does not hold"
    c = A.claim_convergence(conv, target=0.9).set_index("setup")
    assert c.loc["collaborative_2", "verdict"] == "inconclusive"
    assert math.isnan(c.loc["collaborative_2", "p_value"])


def _conv_frame(rows: list[tuple[str, int, float, float]]) -> pd.DataFrame:
    """episodes_to_threshold rows: (setup, seed, episodes or NaN, budget)."""
    return pd.DataFrame(
        [
            {"env_id": "Acrobot-v1", "setup": st, "seed": sd, "measure": "agent mean", "threshold": -100.0,
             "episodes": ep, "reached": not math.isnan(ep), "budget": b}
            for st, sd, ep, b in rows
        ]
    )  # fmt: skip


def test_convergence_censoring_rules():
    nan = math.nan
    ind = [("independent", s, t, 500.0) for s, t in enumerate([400.0, 410.0, 420.0])]
    # no censoring: 1 - 100/410 = 0.76, clearly above 0.4: holds; against 0.9: does not hold
    fast = [("collaborative_2", s, t, 500.0) for s, t in enumerate([90.0, 100.0, 110.0])]
    c = A.claim_convergence(_conv_frame(ind + fast)).iloc[0]
    assert c["estimate"] == pytest.approx(1 - 100 / 410) and c["verdict"] == "holds" and c["note"] == ""
    assert A.claim_convergence(_conv_frame(ind + fast), target=0.9).iloc[0]["verdict"] == "does not hold"
    # the collaborative setup censored: its estimate is an upper bound, so "holds" is not allowed ...
    cens = [
        ("collaborative_2", 0, 90.0, 500.0),
        ("collaborative_2", 1, 100.0, 500.0),
        ("collaborative_2", 2, nan, 120.0),
    ]
    c = A.claim_convergence(_conv_frame(ind + cens)).iloc[0]
    assert c["verdict"] == "inconclusive" and "upper bound" in c["note"] and math.isnan(c["p_value"])
    # ... but "does not hold" is (an upper bound below the target)
    assert A.claim_convergence(_conv_frame(ind + cens), target=0.95).iloc[0]["verdict"] == "does not hold"
    # both censored (most runs never reached the threshold): nothing is bounded, whatever the interval
    ind_c = [("independent", 0, nan, 500.0), ("independent", 1, nan, 500.0), ("independent", 2, 490.0, 500.0)]
    c = A.claim_convergence(_conv_frame(ind_c + cens), target=0.95).iloc[0]
    assert c["verdict"] == "inconclusive" and "both" in c["note"] and math.isnan(c["seeds_needed"])


# ---------------------------------------------------------------- variance


def _final_from_curves(curves: pd.DataFrame, values: dict[tuple[str, int], float]) -> pd.DataFrame:
    """final.csv with one evaluation episode per run: {(setup, seed): its return}."""
    env = curves["env_id"].iloc[0]
    return _final([(env, st, sd, [v]) for (st, sd), v in values.items()])


def test_pair_spread_known_answers():
    # pairs of (0, 10, 20, 30): differences 10, 20, 30, 10, 20, 10 -> mean 100/6, over sqrt(2)
    assert A.pair_spread([0, 10, 20, 30]) == pytest.approx(100 / 6 / math.sqrt(2))
    assert A.pair_spread([3.0, 7.0]) == pytest.approx(np.std([3.0, 7.0], ddof=1))  # two values: their sd
    assert A.pair_spread([1.0, 1.0, 1.0]) == 0.0
    assert math.isnan(A.pair_spread([5.0]))


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


def test_variance_claim_clearly_fails():
    env = "Acrobot-v1"
    curves = _curves(
        {(env, "independent", s): [[-100], [-100 - 2 * s - 1]] for s in range(6)}
        | {(env, "collaborative_8", s): [[-100], [-100 - 20 * s - 30]] for s in range(6)}
    )
    final = _final_from_curves(
        curves, {(st, sd): -100.0 for st in ("independent", "collaborative_8") for sd in range(6)}
    )
    c = A.claim_variance(curves, final, measures=("within run",)).iloc[0]
    assert c["estimate"] < 0 and c["verdict"] == "does not hold" and c["target"] == 0.25
    with pytest.raises(ValueError, match="measure"):
        A.claim_variance(curves, final, measures=("pooled",))


# ---------------------------------------------------------------- relative improvement, claims


def test_relative_improvement_sign_safe():
    f = A.relative_improvement
    assert f(np.array([[-50.0]]), np.array([[-100.0]]))[0] == pytest.approx(0.5)  # better, negative rewards
    assert f(np.array([[-150.0]]), np.array([[-100.0]]))[0] == pytest.approx(-0.5)  # worse
    assert f(np.array([[115.0]]), np.array([[100.0]]))[0] == pytest.approx(0.15)
    assert f(np.array([[19.66]]), np.array([[-72.17]]))[0] > 0


def test_reward_claim_holds_and_fails():
    rows = []
    for s in range(3):
        rows += [("BipedalWalker-v3", "independent", s, [-100.0 + s] * 10)]
        rows += [("BipedalWalker-v3", "collaborative_8", s, [-50.0 + s] * 10)]  # ~+50%
        rows += [("CarRacing-v3", "independent", s, [500.0 + s] * 10)]
        rows += [("CarRacing-v3", "collaborative_8", s, [510.0 + s] * 10)]  # ~+2%
    c = A.claim_reward(_final(rows)).set_index("env_id")
    assert c.loc["BipedalWalker-v3", "verdict"] == "holds"
    assert c.loc["BipedalWalker-v3", "estimate"] == pytest.approx(50 / 99)
    assert c.loc["CarRacing-v3", "verdict"] == "does not hold"


def test_ranking_claims_against_both_baselines():
    rows = []
    for s in range(3):
        rows += [("Taxi-v4", "independent", s, [-20.0 + s] * 10)]
        rows += [("Taxi-v4", "sequential", s, [8.0 + s] * 10)]
        rows += [("Taxi-v4", "collaborative_8", s, [-10.0 + s] * 10)]  # above independent, below sequential
    c = A.claim_reward(
        _final(rows), target=0.0, envs=["Taxi-v4"], setups=["collaborative_8"], baseline="sequential"
    )
    assert (
        c.loc[0, "estimate"] == pytest.approx((-9.0 - 9.0) / 9.0) and c.loc[0, "verdict"] == "does not hold"
    )
    curves = _curves({(e, st, sd): [[r[0], r[0]]] for e, st, sd, r in rows})
    detail, summary = A.claims(curves, _final(rows))
    line = summary.set_index("claim").loc["8 agents score higher than independent (Table 1, every env)"]
    # holds in Taxi, but the other five environments are missing: an "every env" claim cannot hold
    assert (line["cells"], line["missing"], line["holds"], line["verdict"]) == (6, 5, 1, "inconclusive")
    ind = detail[detail["claim"] == "8 agents score higher than independent (Table 1)"].iloc[0]
    assert ind["estimate"] == pytest.approx((-9.0 + 19.0) / 19.0) and ind["verdict"] == "holds"
    # "scores higher" is Welch's test of the difference: its p-value is scipy's
    welch = stats.ttest_ind([-10.0, -9.0, -8.0], [-20.0, -19.0, -18.0], equal_var=False)
    assert ind["p_value"] == pytest.approx(welch.pvalue)
    # the same numbers in all six environments
    every = [(env, *r[1:]) for env in A.ENVS for r in rows]
    curves = _curves({(e, st, sd): [[r[0], r[0]]] for e, st, sd, r in every})
    s = A.claims(curves, _final(every))[1].set_index("claim")
    assert s.loc["8 agents score higher than independent (Table 1, every env)", "verdict"] == "holds"
    assert s.loc["8 agents score higher than sequential (Table 1, every env)", "verdict"] == "does not hold"
    assert s.loc["8 agents score higher than sequential (Table 1, every env)", "missing"] == 0


def test_verdict_rules():
    assert A.verdict(0.5, 0.7, 0.4) == "holds"
    assert A.verdict(0.1, 0.3, 0.4) == "does not hold"
    assert A.verdict(0.3, 0.5, 0.4) == "inconclusive"
    assert A.verdict(math.nan, math.nan, 0.4) == "inconclusive"
    assert A.combine_verdicts(["does not hold", "holds"], "any") == "holds"
    assert A.combine_verdicts(["does not hold", "holds"], "all") == "does not hold"
    assert A.combine_verdicts(["inconclusive", "holds"], "all") == "inconclusive"
    assert A.combine_verdicts([], "all") == "inconclusive"


def test_claims_on_synthetic_and_single_seed():
    data = synthetic_results(seeds=[0, 1, 2], rounds=6)
    detail, summary = A.claims(data.curves, data.final)
    assert len(summary) == 9 and set(summary["verdict"]) <= {"holds", "does not hold", "inconclusive"}
    assert set(detail["setup"]) == set(A.COLLAB_SETUPS)
    assert set(detail["measure"]) == {
        "agent mean",
        "best agent",
        "Table 1 mean",
        "within run",
        "between seeds",
    }
    assert (detail["p_holm"].dropna() >= detail.loc[detail["p_holm"].notna(), "p_value"]).all()
    assert (summary["holds_holm"] <= summary["holds"]).all()
    assert summary["wrong_by_chance"].to_numpy() == pytest.approx(0.025 * summary["tested"].to_numpy())
    assert len(A.claims_text(summary).splitlines()) == len(summary)
    one = synthetic_results(envs=["CarRacing-v3"], seeds=[0], rounds=4)
    detail, summary = A.claims(one.curves, one.final)
    assert set(detail["verdict"]) == {"inconclusive"}  # one seed: CI undefined
    assert list(summary["verdict"]) == ["inconclusive"] * 9 and (summary["tested"] == 0).all()


def test_missing_setups_handled():
    data = synthetic_results(envs=["Taxi-v4"], setups=["collaborative_4"], seeds=[0, 1], rounds=3)
    detail, summary = A.claims(data.curves, data.final)
    assert detail.empty and list(summary["cells"]) == [18, 18, 2, 6, 6, 2, 2, 6, 6]  # the cells each names
    assert list(summary["missing"]) == list(summary["cells"])
    assert list(summary["verdict"]) == ["inconclusive"] * 9
    t = A.table1(data.final)
    assert t["n_seeds"].sum() == 2


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


def test_rounded_is_stable_text():
    df = pd.DataFrame({"a": [1.23456, math.nan], "b": ["x", "y"]})
    assert A.rounded(df) == "   a b\n1.23 x\n n/a y"


def test_run_costs_hand_computed():
    def row(env, setup, seed, agent, rnd, steps, wall):
        strategy = setup.split("_")[0]
        return {
            "env_id": env,
            "strategy": strategy,
            "n_agents": 2,
            "seed": seed,
            "setup": setup,
            "agent": agent,
            "round": rnd,
            "episode": 10 * rnd,
            "total_episodes": 20 * rnd,
            "env_steps": steps,
            "wall_time_s": wall,
            "train_return": -1.0,
            "val_return": -1.0,
            "copied_from": -1,
        }

    rows = [
        # two collaborative_2 runs of Acrobot: last round's steps summed over agents
        row("Acrobot-v1", "collaborative_2", 0, 0, 1, 100, 1.0),
        row("Acrobot-v1", "collaborative_2", 0, 1, 1, 120, 1.0),
        row("Acrobot-v1", "collaborative_2", 0, 0, 2, 200, 3.0),
        row("Acrobot-v1", "collaborative_2", 0, 1, 2, 260, 3.0),
        row("Acrobot-v1", "collaborative_2", 1, 0, 1, 300, 5.0),
        row("Acrobot-v1", "collaborative_2", 1, 1, 1, 340, 5.0),
        row("Acrobot-v1", "independent", 0, 0, 1, 50, 2.0),
        row("Acrobot-v1", "independent", 0, 1, 1, 70, 2.0),
        row("Taxi-v4", "sequential", 0, 0, 1, 30, 7.0),
    ]
    curves = frame("curves.csv", rows)
    got = A.run_costs(curves)
    assert got[["env_id", "setup"]].values.tolist() == [
        ["Acrobot-v1", "independent"],
        ["Acrobot-v1", "collaborative_2"],
        ["Acrobot-v1", "all"],
        ["Taxi-v4", "sequential"],
        ["Taxi-v4", "all"],
    ]
    c2 = got.iloc[1]
    assert (c2["runs"], c2["mean_s"], c2["total_s"], c2["env_steps"]) == (2, 4.0, 8.0, (460 + 640) / 2)
    assert got.iloc[2]["runs"] == 3 and got.iloc[2]["total_s"] == 10.0
    assert got.iloc[4]["total_s"] == 7.0


def test_selection_check_hand_computed():
    def rows(setup, seed, val, returns):
        return [
            {
                "env_id": "Taxi-v4",
                "strategy": setup.split("_")[0],
                "n_agents": 2,
                "seed": seed,
                "setup": setup,
                "selected_agent": 0,
                "selected_round": 3,
                "selected_val_return": val,
                "eval_episode": i,
                "return": r,
            }
            for i, r in enumerate(returns)
        ]

    final = frame(
        "final.csv",
        rows("collaborative_2", 0, 9.0, [8.0, 10.0])  # eval 9.0: not below
        + rows("collaborative_2", 1, 7.0, [6.0, -200.0])  # eval -97.0: below, worst episode -200
        + rows("independent", 0, 5.0, [6.0, 8.0]),
    )
    got = A.selection_check(final)
    assert got["setup"].tolist() == ["independent", "collaborative_2"]  # paper order
    c2 = got.iloc[1]
    assert c2["n_seeds"] == 2 and c2["val_selected"] == 8.0 and c2["eval"] == -44.0
    assert c2["gap"] == -52.0 and c2["seeds_below"] == 1 and c2["worst_episode"] == -200.0
    assert c2["failed_episodes"] == 1 and c2["eval_others"] == 8.0  # Taxi's -200: never delivered
    ind = got.iloc[0]
    assert (ind["eval"], ind["gap"], ind["seeds_below"], ind["worst_episode"]) == (7.0, 2.0, 0, 6.0)
    assert ind["failed_episodes"] == 0 and ind["eval_others"] == 7.0
    curves = _curves(
        {
            ("Taxi-v4", "collaborative_2", 0): [[9.0, 5.0], [9.0, 9.0]],  # 3 checkpoints at the best
            ("Taxi-v4", "collaborative_2", 1): [[7.0, 1.0], [2.0, 3.0]],  # 1
            ("Taxi-v4", "independent", 0): [[5.0, 4.0]],
        }
    )
    assert A.selection_check(final, curves)["tied"].tolist() == [1.0, 2.0]
    other_env = A.selection_check(final.assign(env_id="Pendulum-v1"))  # no failure return: none counted
    assert other_env["failed_episodes"].tolist() == [0, 0] and other_env["eval_others"].tolist() == [
        7.0,
        -44.0,
    ]


# ---------------------------------------------------------------- intervals, tests, Holm


def test_t_interval_matches_scipy_and_degenerate_cases():
    x = [1.0, 2.0, 4.0, 7.0]
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    assert A.t_interval(x) == pytest.approx((ci.low, ci.high))
    assert A.mean_ci([5.0, 5.0]) == (5.0, 5.0)
    assert all(math.isnan(v) for v in A.mean_ci([5.0]))
    with pytest.raises(ValueError, match="method"):
        A.mean_ci(x, method="normal")


def test_ratio_test_fieller_known_answer_and_consistency():
    a, b = np.array([12.0, 14.0, 16.0]), np.array([9.0, 10.0, 11.0])
    r = A.ratio_test(a, b)
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3  # 4/3 and 1/3
    est = 14 / 10
    df = (va + est**2 * vb) ** 2 / (va**2 / 2 + est**4 * vb**2 / 2)
    q = stats.t.ppf(0.975, df)
    # Fieller: the roots of (14 - theta 10)^2 = q^2 (va + theta^2 vb)
    roots = np.sort(np.roots([100 - q**2 * vb, -280, 196 - q**2 * va]))
    assert (r.estimate, r.ci_low, r.ci_high, r.df) == pytest.approx((est, *roots, df))
    # the p-value of a bound is the test level, inside it is larger, outside smaller
    assert A.ratio_test(a, b, theta0=r.ci_low).p_value == pytest.approx(0.05)
    assert A.ratio_test(a, b, theta0=1.4).p_value == pytest.approx(1.0)
    assert A.ratio_test(a, b, theta0=r.ci_high * 1.01).p_value < 0.05
    # a baseline not clearly away from 0: the set is unbounded, the interval undefined
    assert math.isnan(A.ratio_test(a, np.array([-1.0, 0.5, 1.0])).ci_low)


def test_relative_gain_and_reduction_map_the_ratio():
    a, b = np.array([-80.0, -85.0, -78.0]), np.array([-100.0, -110.0, -95.0])
    g = A.relative_gain_test(a, b, target=0.15)  # negative rewards: gain = 1 - ratio
    r = A.ratio_test(a, b, theta0=0.85)
    assert (g.estimate, g.ci_low, g.ci_high, g.p_value) == pytest.approx(
        (1 - r.estimate, 1 - r.ci_high, 1 - r.ci_low, r.p_value)
    )
    assert g.estimate == pytest.approx((-81 + 305 / 3) / (305 / 3))
    red = A.reduction_test([200.0, 200.0], [500.0, 500.0], target=0.4)
    assert (red.estimate, red.ci_low, red.ci_high, red.p_value) == (0.6, 0.6, 0.6, 0.0)
    w = A.welch_test([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    ref = stats.ttest_ind([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0], equal_var=False)
    assert (w.p_value, w.df) == pytest.approx((ref.pvalue, ref.df))


def test_spread_reduction_bootstrap_and_f_interval():
    a, b = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    boot = A.sd_reduction_bootstrap(a, b, target=0.25, n_boot=2000)
    assert boot.estimate == pytest.approx(0.5) and boot.ci_low < 0.5 < boot.ci_high
    assert boot == A.sd_reduction_bootstrap(a, b, target=0.25, n_boot=2000)  # seeded
    f = A.sd_reduction_test(a, b, target=0.25)
    lo = 1 - 0.5 / math.sqrt(stats.f.ppf(0.025, 4, 4))
    assert f.estimate == pytest.approx(0.5) and f.ci_low == pytest.approx(lo)
    assert math.isnan(A.sd_reduction_bootstrap(a, [3.0, 3.0, 3.0]).ci_low)  # baseline without spread
    assert A.mad_reduction_test(a, b).estimate == pytest.approx(0.5)  # a scale factor of 2


def test_holm_known_answer():
    # m = 4 tests: 0.01 x 4, 0.03 x 3, 0.04 x 2 (raised to 0.09: monotone), 0.5 x 1
    got = A.holm([0.01, 0.04, math.nan, 0.03, 0.5])
    assert got[[0, 1, 3, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5]) and math.isnan(got[2])
    assert A.holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # capped at 1
    assert np.isnan(A.holm([math.nan])).all()


def test_add_holm_keeps_only_verdicts_that_survive():
    detail = pd.DataFrame(
        {
            "claim": ["c"] * 3 + ["d"],
            "measure": ["m"] * 4,
            "p_value": [0.001, 0.02, 0.3, 0.02],
            "verdict": ["holds", "does not hold", "inconclusive", "holds"],
        }
    )
    out = A.add_holm(detail)
    assert out["p_holm"].tolist() == pytest.approx([0.003, 0.04, 0.3, 0.02])  # "d" is a family of one
    assert out["verdict_holm"].tolist() == ["holds", "does not hold", "inconclusive", "holds"]
    out = A.add_holm(detail.assign(p_value=[0.001, 0.03, 0.3, 0.02]))
    assert out["verdict_holm"].tolist() == ["holds", "inconclusive", "inconclusive", "holds"]  # 0.06


def test_seeds_needed():
    assert A.seeds_for_halfwidth(10.0, 5.0) == 18  # t(17) 10 / sqrt(18) = 4.97 <= 5 < t(16) 10 / sqrt(17)
    assert stats.t.ppf(0.975, 16) * 10 / math.sqrt(17) > 5
    assert A.seeds_for_halfwidth(0.0, 1.0) == 2
    # an interval that already excludes the target needs no more seeds; the estimate on it, infinitely many
    assert A.seeds_to_decide(0.5, 0.3, 0.7, 0.2, 5) == 5
    assert A.seeds_to_decide(0.2, 0.0, 0.4, 0.2, 5) == math.inf
    m = A.seeds_to_decide(0.1, -0.05, 0.25, 0.25, 5)  # half-width 0.15, gap 0.15: just not enough
    half = lambda k: stats.t.ppf(0.975, k - 1) * (0.15 / stats.t.ppf(0.975, 4) * math.sqrt(5)) / math.sqrt(k)  # noqa: E731
    assert half(m) < 0.15 <= half(m - 1)


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


# ---------------------------------------------------------------- coverage (benchmarks/coverage.py, small)


def test_coverage_t_beats_the_percentile_bootstrap_at_five_seeds(root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("coverage_bench", root / "benchmarks" / "coverage.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(7)
    rows = pd.DataFrame(bench.one_mean(300, 300, rng) + bench.relative_gain(200, 300, rng))
    cov = rows.set_index(["quantity", "method", "distribution", "n_seeds"])["coverage"]
    assert 0.91 <= cov["mean", "t", "normal", 5] <= 0.99
    for family in ("normal", "lognormal"):
        assert cov["mean", "t", family, 5] > cov["mean", "bootstrap percentile", family, 5] + 0.04
    assert cov["relative gain", "Fieller (Welch df)", "normal", 5] >= 0.91
    assert (
        cov["relative gain", "Fieller (Welch df)", "normal", 5]
        > cov["relative gain", "bootstrap percentile", "normal", 5]
    )


# ---------------------------------------------------------------- selection-free Table 1, figures folder


def _population_run(root, env, setup, seed, agents: dict[int, list[float]], config: bool = True) -> None:
    run = root / "runs" / env / setup / f"seed{seed}"
    run.mkdir(parents=True)
    rows = [{"agent": a, "episode": e, "return": r} for a, rs in agents.items() for e, r in enumerate(rs)]
    pd.DataFrame(rows).to_csv(run / "population_eval.csv", index=False)
    if config:
        strategy = setup.split("_")[0]
        n = int(setup.split("_")[1]) if strategy == "collaborative" else len(agents)
        (run / "config.json").write_text(
            f'{{"env_id": "{env}", "strategy": "{strategy}", "n_agents": {n}, "seed": {seed}}}'
        )


def test_population_table_from_run_folders(tmp_path):
    assert A.load_population_eval("x", data_dir=tmp_path).empty  # no file: nothing, no error
    assert A.table1_population(A.load_population_eval("x", data_dir=tmp_path)).empty
    env = "Acrobot-v1"
    # seed 0: agent means -80 and -100 (mean -90, pair spread 20/sqrt2); seed 1: -70 and -70
    _population_run(tmp_path, env, "collaborative_2", 0, {0: [-70.0, -90.0], 1: [-100.0, -100.0], -1: [0.0]})
    _population_run(tmp_path, env, "collaborative_2", 1, {0: [-70.0], 1: [-70.0]}, config=False)
    pop = A.load_population_eval("x", data_dir=tmp_path)
    assert set(pop["setup"]) == {"collaborative_2"} and sorted(pop["seed"].unique()) == [0, 1]
    t = A.table1_population(pop).iloc[0]
    assert (t["env_id"], t["setup"], t["n_seeds"], t["mean"]) == (env, "collaborative_2", 2, -80.0)
    assert t["agent_spread"] == pytest.approx((20 / math.sqrt(2) + 0) / 2)  # agent -1 is not a final agent
    best = A.table1(_final([(env, "collaborative_2", s, [-60.0]) for s in (0, 1)]))
    side = A.table1_beside(best, A.table1_population(pop)).iloc[0]
    assert side["difference"] == -20.0 and side["best_checkpoint"].startswith("-60.00")
    (tmp_path / "runs" / env / "collaborative_2" / "seed1" / "population_eval.csv").write_text(
        "agent,ret\n0,1\n"
    )
    with pytest.raises(ResultsError, match="missing columns"):
        A.load_population_eval("x", data_dir=tmp_path)


def test_figures_dir_honours_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAB_FIGURES_DIR", str(tmp_path / "elsewhere"))
    assert A.figures_dir("reduced", root=tmp_path) == tmp_path / "elsewhere" / "reduced"
    monkeypatch.delenv("COLLAB_FIGURES_DIR")
    assert A.figures_dir("reduced", root=tmp_path) == tmp_path / "figures" / "reduced"


def test_the_test_session_moves_the_figures_out_of_the_tree(root):
    moved = Path(os.environ["COLLAB_FIGURES_DIR"])  # set by conftest.py before nbval's kernels start
    assert not moved.resolve().is_relative_to(root.resolve())


# ---------------------------------------------------------------- named setups: order, matched compute


#: A study-like list of setups, deliberately not in the paper's order (what setups.json holds).
STUDY = [
    {"name": "pbt8", "strategy": "pbt", "n_agents": 8, "pbt_perturb": True},
    {"name": "independent_2", "strategy": "independent", "n_agents": 2},
    {"name": "collaborative_8", "strategy": "collaborative", "n_agents": 8},
    {"name": "independent", "strategy": "independent", "n_agents": 8},
    {"name": "collab8_sign_robust_1.05", "strategy": "collaborative", "n_agents": 8, "lam": 1.05,
     "rule": "sign_robust"},
]  # fmt: skip
STUDY_NAMES = [s["name"] for s in STUDY]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> A.ProfileData:
    """The study-like setups written with setups.json and loaded back."""
    data = synthetic_results(envs=["Acrobot-v1", "Taxi-v4"], setups=STUDY, seeds=[0, 1, 2], rounds=6)
    d = tmp_path_factory.mktemp("study")
    A.write_profile(data, d)
    return A.load_profile("study", data_dir=d)


def test_setups_json_orders_every_table(study, tmp_path):
    assert study.order == STUDY_NAMES
    assert study.setup_info[0] == STUDY[0]  # every field of setups.json kept
    assert A.load_setups("study", data_dir=tmp_path) is None  # no file: None

    def order(df):
        return list(dict.fromkeys(df["setup"]))

    paper = A.load_paper_table()
    t1 = A.table1(study.final, paper, setups=study.order)
    assert order(t1) == STUDY_NAMES and list(dict.fromkeys(t1["env_id"])) == ["Acrobot-v1", "Taxi-v4"]
    wide = A.table1_wide(t1)
    assert list(wide.columns) == ["Environment", "pbt8", "independent_2", "8 agents", "Independent",
                                  "collab8_sign_robust_1.05"]  # fmt: skip
    assert wide.loc[0, "8 agents"].endswith("/ -0.55†") and wide.loc[0, "Independent"].endswith("/ -87.39")
    assert "/" not in wide.loc[0, "pbt8"]  # no paper value for a setup the paper does not have
    assert "pbt8" in A.table1_markdown(t1) and "collab8\\_sign\\_robust\\_1.05" in A.table1_latex(t1)
    assert order(A.run_counts(study.final, setups=study.order)) == STUDY_NAMES
    assert order(A.run_costs(study.curves, setups=study.order).query("setup != 'all'")) == STUDY_NAMES
    assert order(A.selection_check(study.final, study.curves, setups=study.order)) == STUDY_NAMES
    assert order(A.learning_curves(study.curves, setups=study.order)) == STUDY_NAMES
    conv = A.convergence_both(study.curves, setups=study.order)
    assert order(A.convergence_summary(conv, setups=study.order)) == STUDY_NAMES
    assert order(A.performance_variance(study.curves, study.final, setups=study.order)) == STUDY_NAMES
    sharers = ["pbt8", "collaborative_8", "collab8_sign_robust_1.05"]
    assert order(A.share_counts(study.sharing, study.final, setups=study.order)) == sharers
    assert order(A.selectivity(study.sharing, study.curves, setups=study.order)) == sharers
    scores = A.normalised_scores(study.final)
    assert order(A.aggregate_metrics(scores, setups=study.order, n_boot=200)) == STUDY_NAMES
    assert order(A.scores_by_env(scores, setups=study.order)) == STUDY_NAMES
    imp = A.improvement(scores, setups=study.order, n_boot=200)
    assert order(imp) == [s for s in STUDY_NAMES if s != "independent"]  # no sequential here: skipped
    tl = A.share_timeline(study.sharing, setups=study.order)
    assert set(tl["setup"]) == {"pbt8"}  # the most agents, then the first setup in the profile's order


def test_without_setups_json_the_paper_first_then_first_appearance(tmp_path):
    specs = [{"name": "zeta", "strategy": "pbt", "n_agents": 2}, "collaborative_8", "independent"]
    specs += [{"name": "alpha", "strategy": "independent", "n_agents": 2}]
    data = synthetic_results(envs=["Pendulum-v1"], setups=specs, seeds=[0, 1], rounds=3)
    A.write_profile(A.ProfileData(*data[:3]), tmp_path)  # the frames only
    assert not (tmp_path / A.SETUPS_FILE).exists()
    loaded = A.load_profile("x", data_dir=tmp_path)
    assert loaded.order == ["independent", "collaborative_8", "zeta", "alpha"]
    assert A.ProfileData(*data[:3]).order == loaded.order  # the same, derived from the frames in memory
    assert {s["name"]: s["strategy"] for s in loaded.setup_info}["zeta"] == "pbt"
    assert list(A.table1(loaded.final)["setup"]) == loaded.order  # default: the same rule
    # setups.json naming only some setups: those first, in its order, then the others
    (tmp_path / A.SETUPS_FILE).write_text('[{"name": "alpha", "strategy": "independent", "n_agents": 2}]')
    assert A.load_profile("x", data_dir=tmp_path).order == ["alpha", "independent", "collaborative_8", "zeta"]
    assert A.setup_order(["b", "collaborative_2", "a", "independent"]) == [
        "independent",
        "collaborative_2",
        "b",
        "a",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": "x"}', "expected a JSON list"),
        ('[{"strategy": "pbt"}]', "entry 0 is not an object with a non-empty string 'name'"),
        ('[{"name": "a"}, {"name": "a"}]', "setup name 'a' appears twice"),
        ("[{", "not valid JSON"),
    ],
)
def test_bad_setups_json_names_the_file(tmp_path, text, message):
    (tmp_path / A.SETUPS_FILE).write_text(text)
    with pytest.raises(ResultsError, match=f"setups.json: {message}"):
        A.load_setups("x", data_dir=tmp_path)


def test_unknown_setups_in_table1_and_claims_do_not_fail(study):
    detail, summary = A.claims(study.curves, study.final)
    assert len(summary) == 9 and set(detail["setup"]) == {"collaborative_8"}  # the paper's claims only
    assert set(detail["env_id"]) == {"Acrobot-v1", "Taxi-v4"}
    # the claim functions take any setup and baseline
    reward = A.claim_reward(
        study.final, target=0.0, envs=["Taxi-v4"], setups=["pbt8"], baseline="independent_2"
    )
    assert list(reward["setup"]) == ["pbt8"]
    conv = A.claim_convergence(A.convergence_both(study.curves), setups=["pbt8"], baseline="independent_2")
    assert set(conv["setup"]) == {"pbt8"} and len(conv) == 4  # two envs x two measures
    var = A.claim_variance(study.curves, study.final, setups=["pbt8"], baseline="independent_2")
    assert set(var["setup"]) == {"pbt8"} and len(var) == 4
    frame_ = A.setups_frame(study.setup_info)
    assert list(frame_["matched_baseline"]) == ["independent", "", "independent", "", "independent"]
    assert list(frame_.columns[5:]) == ["pbt_perturb", "lam", "rule"]


def test_matched_compute_baselines():
    setups = [
        {"name": "independent", "strategy": "independent", "n_agents": 8},
        {"name": "independent_2", "strategy": "independent", "n_agents": 2},
        {"name": "sequential", "strategy": "sequential", "n_agents": 8},
        {"name": "collaborative_2", "strategy": "collaborative", "n_agents": 2},
        {"name": "collaborative_3", "strategy": "collaborative", "n_agents": 3},
        {"name": "collaborative_8", "strategy": "collaborative", "n_agents": 8},
        {"name": "pbt8", "strategy": "pbt", "n_agents": 8},
        {"name": "independent_8b", "strategy": "independent", "n_agents": 8},  # a second one: not chosen
    ]
    assert A.matched_baselines(setups) == {
        "sequential": "independent",
        "collaborative_2": "independent_2",
        "collaborative_3": None,
        "collaborative_8": "independent",
        "pbt8": "independent",
    }
    assert A.sharing_setups(setups) == ["collaborative_2", "collaborative_3", "collaborative_8", "pbt8"]
    pairs = A.baseline_pairs(setups)
    assert pairs[:4] == [
        ("matched compute", "sequential", "independent"),
        ("matched compute", "collaborative_2", "independent_2"),
        ("matched compute", "collaborative_8", "independent"),
        ("matched compute", "pbt8", "independent"),
    ]
    assert [p[1] for p in pairs[4:]] == [s["name"] for s in setups if s["name"] != "collaborative_8"]
    assert {p[2] for p in pairs[4:]} == {"collaborative_8"} and {p[0] for p in pairs[4:]} == {
        "vs collaborative_8"
    }
    without = [s for s in setups if s["name"] != "collaborative_8"]
    assert all(p[0] == "matched compute" for p in A.baseline_pairs(without))  # no paper setting: no such rows


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


# ---------------------------------------------------------------- selectivity of sharing


def _share(setup, seed, rnd, source, target, mean_source, mean_target, strategy="collaborative"):
    return {
        "env_id": "Pendulum-v1",
        "strategy": strategy,
        "n_agents": 4,
        "seed": seed,
        "setup": setup,
        "round": rnd,
        "episode": 10 * rnd,
        "source": source,
        "target": target,
        "ucb_source": math.nan if strategy == "pbt" else mean_source + 1,
        "ucb_target": math.nan if strategy == "pbt" else mean_target + 1,
        "mean_source": mean_source,
        "mean_target": mean_target,
    }


def test_selectivity_hand_computed():
    s = "collab4_sign_robust_1.1"
    rows = [
        _share(s, 0, 1, 2, 0, -100.0, -200.0),  # gap 100, relative 0.5
        _share(s, 0, 1, 2, 1, -100.0, -150.0),  # gap 50, relative 1/3
        _share(s, 0, 3, 1, 0, -90.0, -100.0),  # gap 10, relative 0.1
        _share(s, 1, 2, 3, 0, -50.0, -100.0),  # seed 1: gap 50, relative 0.5
        _share("pbt4", 0, 2, 1, 3, 10.0, 0.0, strategy="pbt"),  # mean_target 0: no relative gap
    ]
    sharing = frame("sharing.csv", rows)
    curves = []  # 4 agents x 4 rounds per run; seed 2 of s never shares; an independent run is ignored
    for setup, strategy, seed in ((s, "collaborative", 0), (s, "collaborative", 1), (s, "collaborative", 2),
                                  ("pbt4", "pbt", 0), ("independent", "independent", 0)):  # fmt: skip
        for agent in range(4):
            for r in range(1, 5):
                curves.append(
                    {"env_id": "Pendulum-v1", "strategy": strategy, "n_agents": 4, "seed": seed,
                     "setup": setup, "agent": agent, "round": r, "episode": 10 * r, "total_episodes": 40 * r,
                     "env_steps": 0, "wall_time_s": 0.0, "train_return": 0.0, "val_return": 0.0,
                     "copied_from": -1}
                )  # fmt: skip
    curves = frame("curves.csv", curves)
    per = A.run_selectivity(sharing, curves).set_index(["setup", "seed"])
    assert list(per.loc[s, "shares"]) == [3, 1, 0] and list(per.loc[s, "sources"]) == [2, 1, 0]
    assert list(per.loc[s, "shares_per_round"]) == [0.75, 0.25, 0.0]
    assert per.loc[(s, 0), "gap"] == pytest.approx(160 / 3)
    assert per.loc[(s, 0), "rel_gap"] == pytest.approx(1 / 3)  # median of 0.5, 1/3, 0.1
    assert math.isnan(per.loc[(s, 2), "gap"])  # no share: no gap
    assert math.isnan(per.loc[("pbt4", 0), "rel_gap"]) and per.loc[("pbt4", 0), "gap"] == 10.0
    assert "independent" not in per.index.get_level_values("setup")
    t = A.selectivity(sharing, curves).set_index("setup")
    assert list(t.index) == [s, "pbt4"]  # first appearance (no paper setup here)
    row = t.loc[s]
    assert (row["n_runs"], row["n_agents"], row["rounds"], row["n_shares"]) == (3, 4, 4.0, 4)
    assert row["shares_per_round"] == pytest.approx(1 / 3) and row["copy_rate"] == pytest.approx(1 / 12)
    assert row["sources"] == 1.0
    lo, hi = A.t_interval([0.75, 0.25, 0.0])
    assert (row["shares_per_round_ci_low"], row["shares_per_round_ci_high"]) == pytest.approx((lo, hi))
    assert row["gap"] == pytest.approx((160 / 3 + 50) / 2)  # over the two runs with shares
    assert row["rel_gap"] == pytest.approx((1 / 3 + 0.5) / 2)
    assert math.isnan(t.loc["pbt4", "gap_ci_low"])  # one run: no interval
    empty = A.selectivity(frame("sharing.csv", []), curves[curves["strategy"] == "independent"])
    assert empty.empty and list(empty.columns[:6]) == [
        "env_id",
        "setup",
        "n_runs",
        "n_agents",
        "rounds",
        "n_shares",
    ]


def test_save_selectivity_and_share_counts_of_pbt(study, tmp_path):
    t = A.selectivity(study.sharing, study.curves, setups=study.order)
    paths = A.save_selectivity(t, tmp_path)
    assert [p.name for p in paths] == ["selectivity.csv", "selectivity.md"]
    assert pd.read_csv(paths[0])["setup"].tolist() == t["setup"].tolist()
    pbt = study.sharing[study.sharing["strategy"] == "pbt"]
    assert len(pbt) and pbt["ucb_source"].isna().all() and "lr" in study.curves.columns
    counts = A.share_counts(study.sharing, study.final, setups=study.order)
    assert set(counts["setup"]) == {"pbt8", "collaborative_8", "collab8_sign_robust_1.05"}


def test_population_eval_takes_the_setup_from_the_file_or_the_config(tmp_path):
    run = tmp_path / "runs" / "Taxi-v4" / "collab8_reset" / "seed3"
    run.mkdir(parents=True)
    keys = {
        "env_id": "Taxi-v4",
        "strategy": "collaborative",
        "n_agents": 8,
        "seed": 3,
        "setup": "collab8_reset",
    }
    pd.DataFrame([keys | {"agent": 0, "round": 5, "episode": 0, "return": 7.0}]).to_csv(
        run / "population_eval.csv", index=False
    )
    (run / "config.json").write_text(
        '{"env_id": "Taxi-v4", "strategy": "collaborative", "n_agents": 8, "seed": 3}'
    )
    pop = A.load_population_eval("x", data_dir=tmp_path)
    assert (pop.loc[0, "setup"], pop.loc[0, "seed"]) == ("collab8_reset", 3)
    pd.DataFrame([{"agent": 0, "episode": 0, "return": 7.0}]).to_csv(run / "population_eval.csv", index=False)
    pop = A.load_population_eval("x", data_dir=tmp_path)  # without key columns: the folder names the setup
    assert pop.loc[0, "setup"] == "collab8_reset"
