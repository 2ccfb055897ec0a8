"""collab.analysis.protocol and the flag of a tie-break selection, by hand-computed expectations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_helpers import _curves, _final

from collab import analysis as A

TAXI, ACRO = "Taxi-v4", "Acrobot-v1"


def _reselection(runs: dict[tuple[str, str, int], tuple[int, int]]) -> pd.DataFrame:
    """reselection.csv rows: {(env, setup, seed): (candidates, the chosen candidate)}; candidate c has
    the fresh-episode return 10 c."""
    rows = []
    for (env, setup, seed), (n, chosen) in runs.items():
        for c in range(n):
            rows.append({"env_id": env, "setup": setup, "seed": seed, "candidate": c, "agent": c,
                         "round": 1, "val_return": 0.0, "reselect_return": 10.0 * c,
                         "selected": c == chosen})  # fmt: skip
    return pd.DataFrame(rows)


def _tied_curves() -> pd.DataFrame:
    # Taxi: run 0 has 3 checkpoints at the best value 9 (rounds 2-3 of agent 0, round 3 of agent 1),
    # run 1 has 4, run 2 has 1; Acrobot: one best checkpoint per run
    return _curves(
        {
            (TAXI, "independent", 0): [[1, 9, 9], [2, 3, 9]],
            (TAXI, "independent", 1): [[9, 9, 9], [9, 3, 4]],
            (TAXI, "independent", 2): [[1, 2, 9], [2, 3, 4]],
            (ACRO, "independent", 0): [[-90, -80, -70], [-95, -85, -75]],
        }
    )


def test_ties_count_checkpoints_at_the_best_validation_return_against_the_candidates() -> None:
    curves = _tied_curves()
    ties = A.selection_ties(curves)
    assert ties["tied"].tolist() == [3, 4, 1, 1]
    assert ties["candidates"].tolist() == [1, 1, 1, 1]
    assert ties["tie_broken"].tolist() == [True, True, False, False]
    envs = A.tie_broken_envs(curves)
    taxi = envs.set_index("env_id").loc[TAXI]
    assert (taxi["runs"], taxi["tie_broken"], taxi["median_tied"], taxi["flagged"]) == (3, 2, 3.0, True)
    assert "2 of 3 runs" in taxi["reason"]
    assert not envs.set_index("env_id").loc[ACRO, "flagged"]
    assert list(A.flags(envs)) == [TAXI]
    # re-selection among 4 candidates separates run 0's 3 ties and run 1's 4: no longer a tie-break
    rs = _reselection({(TAXI, "independent", 0): (4, 2), (TAXI, "independent", 1): (4, 0)})
    ties = A.selection_ties(curves, rs)
    assert ties["candidates"].tolist() == [4, 4, 1, 1]
    assert not ties["tie_broken"].any()
    assert A.flags(A.tie_broken_envs(curves, rs)) == {}


def test_selection_check_reports_what_reselection_chose() -> None:
    final = _final([(ACRO, "independent", 0, [-60.0, -80.0]), (ACRO, "independent", 1, [-100.0, -100.0])])
    rs = _reselection({(ACRO, "independent", 0): (3, 2), (ACRO, "independent", 1): (3, 0)})
    got = A.selection_check(final, reselection=rs).iloc[0]
    # eval = mean(-70, -100) = -85; chosen fresh-episode returns 20 and 0: mean 10
    assert got["eval"] == -85.0 and got["reselect_return"] == 10.0
    assert got["gap_reselect"] == -95.0 and got["changed"] == 1
    assert "reselect_return" not in A.selection_check(final).columns


def test_evaluation_noise_by_hand() -> None:
    first, second = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]  # correlation 0.8 exactly
    rows = [
        (ACRO, "independent", s, [a] * 10 + [b] * 10)
        for s, (a, b) in enumerate(zip(first, second, strict=True))
    ]
    noise = A.evaluation_noise(_final(rows)).iloc[0]
    assert noise["n_episodes"] == 20 and noise["runs"] == 4
    assert noise["r_10"] == pytest.approx(0.8) and noise["r_half"] == pytest.approx(0.8)
    assert noise["reliability"] == pytest.approx(2 * 0.8 / 1.8)  # Spearman-Brown to twice the episodes
    # 10 episodes: no two 10-episode evaluations; halves of 5, equal within each run here
    short = A.evaluation_noise(_final([(r[0], r[1], r[2], r[3][:10]) for r in rows])).iloc[0]
    assert math.isnan(short["r_10"]) and short["r_half"] == pytest.approx(1.0)


def test_evaluation_noise_of_the_population_uses_each_episode_s_mean_over_agents() -> None:
    rows = []
    for seed, (a, b) in enumerate([(0.0, 1.0), (2.0, 2.0), (4.0, 6.0)]):
        for agent in range(2):  # agent 1 adds 1 everywhere: the run's mean moves, the halves' order not
            for ep in range(4):
                rows.append({"env_id": ACRO, "setup": "independent", "seed": seed, "agent": agent,
                             "episode": ep, "return": (a if ep < 2 else b) + agent})  # fmt: skip
    pop = pd.DataFrame(rows + [{**rows[0], "agent": -1, "return": 1e6}])  # the selected row is ignored
    final = _final([(ACRO, "independent", s, [0.0, 1.0]) for s in range(3)])
    got = A.evaluation_noise(final, pop).set_index("measure").loc["population"]
    assert got["n_episodes"] == 4
    assert got["r_half"] == pytest.approx(np.corrcoef([0.5, 2.5, 4.5], [1.5, 2.5, 6.5])[0, 1])


def test_spearman_brown() -> None:
    assert A.spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert A.spearman_brown(0.5, 1) == pytest.approx(0.5)
    assert math.isnan(A.spearman_brown(0.0, 2)) and math.isnan(A.spearman_brown(float("nan"), 2))


def test_table1_episodes_sets_the_paper_s_first_10_beside_all() -> None:
    rows = [(ACRO, "independent", s, [float(s)] * 10 + [10.0 + s] * 10) for s in range(3)]
    got = A.table1_episodes(_final(rows)).iloc[0]
    assert got["first_mean"] == 1.0 and got["all_mean"] == 6.0 and got["n_episodes"] == 20
    # seeds 0, 1, 2: sd 1, half-width t(0.975, 2) / sqrt 3
    assert got["first_ci_low"] == pytest.approx(1.0 - 4.302652729911275 / math.sqrt(3))
    assert math.isnan(got["population_mean"])


SETUPS = [
    {"name": "independent", "strategy": "independent", "n_agents": 8},
    {"name": "collaborative_8", "strategy": "collaborative", "n_agents": 8},
]


def _two_env_final() -> pd.DataFrame:
    rows = []
    for env in (ACRO, TAXI):
        for seed in range(4):
            rows.append((env, "independent", seed, [float(seed)]))
            rows.append((env, "collaborative_8", seed, [10.0 + seed + (seed % 2)]))
    return _final(rows)


def test_flagged_cells_are_shown_but_out_of_holm_and_the_counts() -> None:
    final = _two_env_final()
    flagged = {TAXI: "tie-break"}
    plain = A.env_verdicts(final, SETUPS)
    table = A.env_verdicts(final, SETUPS, flagged=flagged)
    taxi, acro = table[table["env_id"] == TAXI].iloc[0], table[table["env_id"] == ACRO].iloc[0]
    assert taxi["flag"] == A.TIE_BREAK and acro["flag"] == ""
    assert taxi["verdict"] == "better" and taxi["verdict_holm"] == "flagged" and math.isnan(taxi["p_holm"])
    # Acrobot alone in its family: its adjusted p-value is its own p (with Taxi it was doubled)
    assert acro["p_holm"] == pytest.approx(acro["p"])
    assert plain[plain["env_id"] == ACRO].iloc[0]["p_holm"] == pytest.approx(2 * acro["p"])
    summary = A.verdict_summary(table).iloc[0]
    assert (summary["cells"], summary["better"], summary["flagged"]) == (1, 1, 1)
    assert "1 more on Taxi-v4 left out" in A.verdict_sentences(table)
    assert "(tie-break)" in A.verdict_matrix(table).iloc[0][TAXI]
    eq = A.env_equivalence(final, SETUPS, flagged=flagged)
    assert eq.set_index("env_id").loc[TAXI, "flag"] == A.TIE_BREAK
    counts = A.equivalence_summary(eq).iloc[0]
    assert (counts["cells"], counts["flagged"]) == (1, 1)


def test_holm_disagreements_lists_cells_whose_verdict_depends_on_the_family() -> None:
    table = pd.DataFrame(
        {"measure": "selected", "env_id": ACRO, "comparison": ["a", "b"], "setup": ["x", "y"],
         "baseline": "independent", "difference": [1.0, 2.0], "p": [0.01, 0.02], "p_holm": [0.02, 0.06],
         "verdict_holm": ["better", "inconclusive"], "p_holm_comparison": [0.01, 0.02],
         "verdict_holm_comparison": ["better", "better"]}
    )  # fmt: skip
    got = A.holm_disagreements(table)
    assert got["setup"].tolist() == ["y"] and got["verdict_holm_comparison"].tolist() == ["better"]


def test_claims_leave_out_the_selected_agent_cells_of_a_flagged_environment() -> None:
    envs = ("BipedalWalker-v3", TAXI)
    curves = _curves(
        {
            (env, setup, seed): [[1.0 + seed, 2.0 + seed], [1.5 + seed, 2.5 + seed]]
            for env in envs
            for setup in ("independent", "collaborative_8")
            for seed in range(3)
        }
    )
    final = _final([(e, st, sd, [float(sd) + (st == "independent")]) for e in envs
                    for st in ("independent", "collaborative_8") for sd in range(3)])  # fmt: skip
    detail, summary = A.claims(curves, final, flagged={TAXI: "tie-break"})
    taxi = detail[(detail["env_id"] == TAXI) & detail["measure"].isin(A.SELECTED_MEASURES)]
    assert len(taxi) and (taxi["note"] == "left out: tie-break").all() and taxi["estimate"].isna().all()
    assert (taxi["verdict"] == "inconclusive").all()
    kept = detail[(detail["env_id"] == TAXI) & (detail["measure"] == "within run")]
    assert kept["estimate"].notna().all()  # the agents' spread is not a selected-agent measure
    line = summary[summary["claim"].str.startswith("8 agents score higher than independent")].iloc[0]
    assert line["flagged"] == 1 and line["tested"] == 1
    _, unflagged = A.claims(curves, final)
    assert unflagged["flagged"].sum() == 0


def test_load_reselection_reads_every_run_folder(tmp_path: Path) -> None:
    rs = _reselection({(ACRO, "independent", 0): (2, 1), (ACRO, "pbt8", 3): (2, 0)})
    for (env, setup, seed), g in rs.groupby(["env_id", "setup", "seed"]):
        run = tmp_path / "runs" / env / setup / f"seed{seed}"
        run.mkdir(parents=True)
        g.to_csv(run / "reselection.csv", index=False)
    got = A.load_reselection("any", data_dir=tmp_path)
    assert len(got) == 4 and sorted(set(got["setup"])) == ["independent", "pbt8"]
    only = A.load_reselection("any", data_dir=tmp_path, runs_of=rs[rs["setup"] == "pbt8"])
    assert set(only["setup"]) == {"pbt8"}


def test_reeval_beside_sets_the_re_evaluation_beside_the_run_s_own_evaluation() -> None:
    own = _final([(ACRO, "independent", s, [-100.0 - s] * 10) for s in range(3)])
    own = pd.concat([own, _final([(ACRO, "pbt8", 0, [-50.0] * 10)])], ignore_index=True)
    reeval = _final([(ACRO, "independent", s, [-90.0 + s] * 20) for s in range(3)])
    got = A.reeval_beside(own, reeval)
    assert got["setup"].tolist() == ["independent"]  # only the re-evaluated runs
    row = got.iloc[0]
    assert (row["eval_mean"], row["reeval_mean"], row["difference"]) == (-101.0, -89.0, 12.0)
    assert (row["eval_episodes"], row["reeval_episodes"], row["n_seeds"]) == (10, 20, 3)


def test_reevaluate_script_refuses_bad_arguments_and_finds_committed_agents(capsys) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow" / "scripts"))
    import reevaluate

    assert reevaluate.main(["full"]) == 2
    assert "profile='full' is not allowed" in capsys.readouterr().err
    assert reevaluate.main(["paper", "--episodes", "0"]) == 2
    assert reevaluate.main(["paper", "--envs", "Pong-v5"]) == 2
    assert "environments of the profile are" in capsys.readouterr().err
    agents = reevaluate.tracked_agents("paper")
    assert agents and all(p.name == "selected.safetensors" and p.is_file() for p in agents)
    assert not any("Taxi-v4" in str(p) for p in agents)  # Taxi's agents are not committed
