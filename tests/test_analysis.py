"""collab.analysis on small hand-made frames with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

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
    data = A.synthetic_results(envs=["Acrobot-v1"], setups=["independent"], seeds=[0], rounds=2)
    A.write_profile(data, tmp_path)
    (tmp_path / "final.csv").unlink()
    with pytest.raises(ResultsError, match="final.csv: file not found"):
        A.load_profile("smoke", data_dir=tmp_path)


def test_load_profile_missing_columns_named(tmp_path):
    data = A.synthetic_results(envs=["Acrobot-v1"], setups=["independent"], seeds=[0], rounds=2)
    A.write_profile(data, tmp_path)
    data.curves.drop(columns=["val_return", "episode"]).to_csv(tmp_path / "curves.csv", index=False)
    with pytest.raises(ResultsError, match=r"curves.csv: missing columns \['episode', 'val_return'\]"):
        A.load_profile("smoke", data_dir=tmp_path)


def test_load_profile_roundtrip_and_root(tmp_path):
    data = A.synthetic_results(envs=["Acrobot-v1"], setups=["independent", "collaborative_2"], seeds=[0, 1])
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
    t = A.table1(final, A.load_paper_table()).set_index(["env_id", "setup"])
    assert len(t) == 30  # six envs x five setups, even when most are missing
    ind = t.loc[("Acrobot-v1", "independent")]
    assert ind["mean"] == -90.0 and ind["ci_low"] == -90.0 and ind["ci_high"] == -90.0 and ind["n_seeds"] == 3
    c8 = t.loc[("Acrobot-v1", "collaborative_8")]
    assert c8["mean"] == pytest.approx(-90.0)
    assert -100.0 <= c8["ci_low"] <= -90.0 <= c8["ci_high"] <= -80.0
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


def test_convergence_claim_holds_and_fails():
    conv = A.episodes_to_threshold(_conv_curves())
    c = A.claim_convergence(conv).set_index("setup")
    # 1 - 200/500 = 0.6, every resample gives 0.6: holds
    assert c.loc["collaborative_2", "estimate"] == pytest.approx(0.6)
    assert c.loc["collaborative_2", "verdict"] == "holds"
    c = A.claim_convergence(conv, target=0.9).set_index("setup")
    assert c.loc["collaborative_2", "verdict"] == "does not hold"


# ---------------------------------------------------------------- variance


def test_variance_of_final_agent_returns():
    env = "CarRacing-v3"
    curves = _curves(
        {
            # last-round values: independent 0, 10 | 20, 30 -> std of (0, 10, 20, 30) = 12.9099
            (env, "independent", 0): [[5, 0], [5, 10]],
            (env, "independent", 1): [[5, 20], [5, 30]],
            # collaborative: 10, 12 | 14, 16 -> std 2.5820
            (env, "collaborative_2", 0): [[5, 10], [5, 12]],
            (env, "collaborative_2", 1): [[5, 14], [5, 16]],
        }
    )
    fa = A.final_agent_returns(curves)
    assert len(fa) == 8 and set(fa["val_return"]) == {0, 10, 20, 30, 12, 14, 16}
    v = A.performance_variance(curves).set_index("setup")
    assert v.loc["independent", "std"] == pytest.approx(np.std([0, 10, 20, 30], ddof=1))
    assert v.loc["collaborative_2", "std"] == pytest.approx(np.std([10, 12, 14, 16], ddof=1))
    assert v.loc["independent", "n_values"] == 4 and v.loc["independent", "n_seeds"] == 2
    c = A.claim_variance(curves).set_index("setup").loc["collaborative_2"]
    assert (
        c["estimate"] == pytest.approx(0.8) and c["target"] == 0.25 and c["claim"] == "variance >=25% lower"
    )
    c30 = A.claim_variance(curves, target=0.30, envs=A.COMPLEX_ENVS).set_index("setup").loc["collaborative_2"]
    assert c30["estimate"] == pytest.approx(0.8) and c30["claim"] == "variance >=30% lower"


def test_variance_claim_clearly_fails():
    env = "Acrobot-v1"
    curves = _curves(
        {(env, "independent", s): [[-100], [-100 - 2 * s]] for s in range(4)}
        | {(env, "collaborative_8", s): [[-100], [-100 - 20 * s]] for s in range(4)}
    )
    c = A.claim_variance(curves).set_index("setup").loc["collaborative_8"]
    assert c["estimate"] < 0 and c["verdict"] == "does not hold" and c["target"] == 0.25


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
    detail, summary = A.claims(curves, _final(rows), n_boot=200)
    line = summary.set_index("claim").loc["8 agents score higher than independent (Table 1, every env)"]
    # holds in Taxi, but the other five environments are missing: an "every env" claim cannot hold
    assert (line["cells"], line["missing"], line["holds"], line["verdict"]) == (6, 5, 1, "inconclusive")
    ind = detail[detail["claim"] == "8 agents score higher than independent (Table 1)"].iloc[0]
    assert ind["estimate"] == pytest.approx((-9.0 + 19.0) / 19.0) and ind["verdict"] == "holds"
    # the same numbers in all six environments
    every = [(env, *r[1:]) for env in A.ENVS for r in rows]
    curves = _curves({(e, st, sd): [[r[0], r[0]]] for e, st, sd, r in every})
    s = A.claims(curves, _final(every), n_boot=200)[1].set_index("claim")
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
    data = A.synthetic_results(seeds=[0, 1, 2], rounds=6)
    detail, summary = A.claims(data.curves, data.final, n_boot=500)
    assert len(summary) == 6 and set(summary["verdict"]) <= {"holds", "does not hold", "inconclusive"}
    assert set(detail["setup"]) == set(A.COLLAB_SETUPS)
    one = A.synthetic_results(envs=["CarRacing-v3"], seeds=[0], rounds=4)
    detail, summary = A.claims(one.curves, one.final, n_boot=200)
    assert set(detail["verdict"]) == {"inconclusive"}  # one seed: CI undefined
    assert list(summary["verdict"]) == ["inconclusive"] * 6


def test_missing_setups_handled():
    data = A.synthetic_results(envs=["Taxi-v4"], setups=["collaborative_4"], seeds=[0, 1], rounds=3)
    detail, summary = A.claims(data.curves, data.final, n_boot=100)
    assert detail.empty and list(summary["cells"]) == [18, 2, 6, 2, 6, 6]  # the cells each claim names
    assert list(summary["missing"]) == list(summary["cells"])
    assert list(summary["verdict"]) == ["inconclusive"] * 6
    t = A.table1(data.final)
    assert t["n_seeds"].sum() == 2


# ---------------------------------------------------------------- sharing


def test_share_timeline_and_counts():
    data = A.synthetic_results(envs=["Acrobot-v1"], seeds=[0, 1], rounds=6)
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


def test_two_sample_bootstrap_undefined_when_many_resamples_are_not_finite():
    ratio = lambda a, b: np.nanmean(a, axis=1) / np.nanmean(b, axis=1)  # noqa: E731
    # baseline seeds 0 and 1: a resample of only the 0-seed (1 in 4 here) divides by zero
    point, lo, hi = A.two_sample_bootstrap(
        [np.array([1.0]), np.array([2.0])], [np.array([0.0]), np.array([1.0])], ratio
    )
    assert point == pytest.approx(1.5 / 0.5) and math.isnan(lo) and math.isnan(hi)
    point, lo, hi = A.two_sample_bootstrap(
        [np.array([1.0]), np.array([2.0])], [np.array([4.0]), np.array([2.0])], ratio
    )
    assert point == pytest.approx(1.5 / 3.0) and 0.25 <= lo <= hi <= 1.0  # all resamples finite
