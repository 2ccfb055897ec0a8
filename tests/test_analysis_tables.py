"""collab.analysis.tables: Table 1 (and selection-free), achievability, run costs, the selection check."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from analysis_helpers import _curves, _final

from collab import analysis as A
from collab.results import ResultsError, frame

# ---------------------------------------------------------------- the paper's Table 1, achievability


def test_paper_table_copied_unchanged():
    paper = A.load_paper_table()
    assert len(paper) == 30
    got = paper.set_index(["env_id", "setup"])["paper"]
    assert got["Acrobot-v1", "collaborative_8"] == -0.55
    assert got["CarRacing-v3", "collaborative_8"] == 981.13
    assert got["Taxi-v4", "independent"] == -181.98
    assert set(paper["env_id_paper"]) >= {"LunarLander-v2", "CarRacing-v2", "Taxi-v1"}


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


# ---------------------------------------------------------------- Table 1


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
    # rows name the environment run, and the paper's name where it differs
    assert (
        wide.loc[0, "Environment"] == "Acrobot-v1"
        and wide.loc[5, "Environment"] == "Taxi-v4 (paper: Taxi-v1)"
    )


def test_save_table1_writes_three_files(tmp_path):
    final = _final([("Acrobot-v1", "independent", s, [-90.0 + s] * 10) for s in range(3)])
    paths = A.save_table1(A.table1(final, A.load_paper_table()), tmp_path)
    assert sorted(p.name for p in paths) == ["table1.csv", "table1.md", "table1.tex"]
    assert "| Acrobot-v1 |" in (tmp_path / "table1.md").read_text()
    assert r"\begin{tabular}" in (tmp_path / "table1.tex").read_text()
    assert not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------- run costs, selection check


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


# ---------------------------------------------------------------- selection-free Table 1


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
