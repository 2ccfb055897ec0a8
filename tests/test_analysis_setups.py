"""collab.analysis.setups and .selectivity: named setups in every table, matched compute, how sharers copy."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from synthetic import synthetic_results

from collab import analysis as A
from collab.results import frame

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
    # no sequential here; independent_2 trains independent's first 2 agents: not compared with it
    assert order(imp) == [s for s in STUDY_NAMES if s not in ("independent", "independent_2")]
    tl = A.share_timeline(study.sharing, setups=study.order)
    assert set(tl["setup"]) == {"pbt8"}  # the most agents, then the first setup in the profile's order


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
