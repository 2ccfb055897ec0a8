"""collab.analysis.study: per-environment verdicts against baselines, by hand-computed expectations."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from collab import analysis as A

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

SETUPS = [
    {"name": "independent", "strategy": "independent", "n_agents": 8},
    {"name": "independent_2", "strategy": "independent", "n_agents": 2},
    {"name": "collaborative_8", "strategy": "collaborative", "n_agents": 8},
    {"name": "robust", "strategy": "collaborative", "n_agents": 8, "rule": "sign_robust", "lam": 1.1},
    {"name": "pbt8", "strategy": "pbt", "n_agents": 8},
]
#: per setup, the per-seed values (each seed's two evaluation episodes are value - 1 and value + 1)
VALUES = {
    "independent": [10.0, 12.0, 14.0, 16.0],
    "independent_2": [11.0, 12.0, 13.0],
    "collaborative_8": [30.0, 31.0, 33.0, 34.0],  # clearly above independent
    "robust": [0.0, 2.0, 1.0, 3.0],  # clearly below independent
    "pbt8": [12.0, 20.0, 8.0, 16.0],
}


def _final(values: dict[str, list[float]] = VALUES, env: str = "Acrobot-v1") -> pd.DataFrame:
    rows = []
    for setup, per_seed in values.items():
        strategy = next(s["strategy"] for s in SETUPS if s["name"] == setup)
        for seed, v in enumerate(per_seed):
            for episode, r in enumerate((v - 1.0, v + 1.0)):
                rows.append(
                    {"env_id": env, "setup": setup, "strategy": strategy, "n_agents": 8, "seed": seed,
                     "selected_agent": 0, "selected_round": 1, "selected_val_return": v,
                     "eval_episode": episode, "return": r}
                )  # fmt: skip
    return pd.DataFrame(rows)


def _welch(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """Welch's difference, 95% interval and two-sided p-value, from the textbook formulas."""
    a, b = np.asarray(a), np.asarray(b)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    diff = a.mean() - b.mean()
    q = stats.t.ppf(0.975, df)
    return diff, diff - q * se, diff + q * se, 2 * stats.t.sf(abs(diff) / se, df)


def _seeds_by_hand(setup: str, base: str) -> int:
    """The fewest m > 4 seeds with t(m-1) s / sqrt(m) below |difference|, s being the per-seed scale of
    the present Welch interval (its half-width is t(3) s / sqrt(4) with 4 seeds a side)."""
    diff, lo, _, _ = _welch(VALUES[setup], VALUES[base])
    scale = (diff - lo) / stats.t.ppf(0.975, 3) * 2
    m = 5
    while stats.t.ppf(0.975, m - 1) * scale / math.sqrt(m) >= abs(diff):
        m += 1
    return m


def test_pairs_matched_compute_paper_setting_and_pbt_each_once() -> None:
    assert A.study_pairs(SETUPS) == [
        ("matched compute", "collaborative_8", "independent"),
        ("matched compute", "robust", "independent"),
        ("matched compute", "pbt8", "independent"),
        # vs collaborative_8: independent is already compared with it (the other way round)
        ("vs collaborative_8", "independent_2", "collaborative_8"),
        ("vs collaborative_8", "robust", "collaborative_8"),
        ("vs collaborative_8", "pbt8", "collaborative_8"),
        # vs pbt8: collaborative_8 is already compared with it
        ("vs pbt8", "robust", "pbt8"),
    ]


def test_verdicts_match_welch_by_hand_with_holm() -> None:
    table = A.env_verdicts(_final(), SETUPS)
    assert list(table.columns) == A.study.VERDICT_COLUMNS
    assert set(table["measure"]) == {"selected"}  # no population_eval rows given
    assert len(table) == 7
    for row in table.itertuples():
        diff, lo, hi, p = _welch(VALUES[row.setup], VALUES[row.baseline])
        assert row.difference == pytest.approx(diff)
        assert (row.ci_low, row.ci_high, row.p) == pytest.approx((lo, hi, p))
        assert row.setup_mean == pytest.approx(np.mean(VALUES[row.setup]))
        assert (row.n_setup, row.n_baseline) == (len(VALUES[row.setup]), len(VALUES[row.baseline]))
    by = table.set_index(["setup", "baseline"])
    assert by.loc[("collaborative_8", "independent"), "verdict"] == "better"  # +20, sd ~2.6 and ~1.8
    assert by.loc[("robust", "independent"), "verdict"] == "worse"
    assert by.loc[("pbt8", "independent"), "verdict"] == "inconclusive"
    assert by.loc[("collaborative_8", "independent"), "seeds_to_decide"] == 4  # already decided
    assert by.loc[("pbt8", "independent"), "seeds_to_decide"] == _seeds_by_hand("pbt8", "independent")
    # Holm over the 7 cells: p-values ranked (row 4 smallest ... row 2 largest) and multiplied by 7 ... 1;
    # these happen to increase already, so no running maximum changes them
    multiplier = [5, 4, 1, 6, 7, 3, 2]
    assert table["p"].rank().tolist() == [8 - k for k in multiplier]
    assert table["p_holm"].tolist() == pytest.approx((table["p"] * multiplier).tolist())
    assert table["verdict_holm"].tolist() == ["better", "worse", "inconclusive"] + ["worse"] * 4
    # Holm within each comparison (the family of one question): a family of m cells multiplies by m ... 1
    for _, fam in table.groupby("comparison"):
        order = fam["p"].rank(method="first").astype(int).to_numpy()
        want = np.maximum.accumulate(np.sort(fam["p"].to_numpy()) * (len(fam) - np.arange(len(fam))))
        assert fam["p_holm_comparison"].to_numpy() == pytest.approx(np.minimum(1, want)[order - 1])
    assert (table["p_holm_comparison"] <= table["p_holm"] + 1e-15).all()  # a smaller family adjusts less


def test_population_measure_ignores_the_selected_row_and_weights_agents_equally() -> None:
    rows = []
    for setup, per_seed in (("independent", [0.0, 2.0]), ("collaborative_8", [10.0, 14.0])):
        for seed, v in enumerate(per_seed):
            # agent 0: one episode at v - 1; agent 1: three episodes at v + 1 -> agent mean = v
            rows += [{"env_id": "Acrobot-v1", "setup": setup, "seed": seed, "agent": 0, "episode": 0,
                      "return": v - 1}]  # fmt: skip
            rows += [
                {
                    "env_id": "Acrobot-v1",
                    "setup": setup,
                    "seed": seed,
                    "agent": 1,
                    "episode": e,
                    "return": v + 1,
                }
                for e in range(3)
            ]
            rows += [
                {
                    "env_id": "Acrobot-v1",
                    "setup": setup,
                    "seed": seed,
                    "agent": -1,
                    "episode": 0,
                    "return": 1e6,
                }
            ]  # fmt: skip  (the selected checkpoint: not a final agent)
    pop = pd.DataFrame(rows)
    per_run = A.population_per_run(pop)
    assert per_run["mean_return"].tolist() == [10.0, 14.0, 0.0, 2.0]  # sorted by setup
    table = A.env_verdicts(_final({"independent": [1.0, 2.0], "collaborative_8": [3.0, 4.0]}), SETUPS, pop)
    row = table[table["measure"] == "population"].iloc[0]
    assert (row.setup, row.baseline, row.difference) == ("collaborative_8", "independent", 11.0)
    assert row.ci_low == pytest.approx(_welch([10, 14], [0, 2])[1])


def test_matrix_summary_and_extremes() -> None:
    table = A.env_verdicts(_final(), SETUPS)
    matrix = A.verdict_matrix(table)
    assert list(matrix.columns) == ["comparison", "setup", "Acrobot-v1"]
    cell = matrix.set_index("setup").loc["collaborative_8", "Acrobot-v1"]
    diff, lo, hi, _ = _welch(VALUES["collaborative_8"], VALUES["independent"])
    assert cell == f"{diff:+.1f} [{lo:+.1f}, {hi:+.1f}] **better**†"  # p_holm = 5 p < 0.05
    summary = A.verdict_summary(table).set_index("comparison")
    counts = summary.loc["matched compute", ["cells", "better", "worse", "inconclusive"]]
    assert counts.tolist() == [3, 1, 1, 1]
    words = A.verdict_sentences(table).splitlines()[0]
    assert words.startswith("- **selected agent, matched compute** (3 cells): better in 1: collaborative_8")
    assert f"on Acrobot-v1 ({diff:+.1f} [{lo:+.1f}, {hi:+.1f}]); worse in 1: robust vs independent" in words
    assert "; 1 inconclusive; after Holm" in words
    assert f"after Holm's adjustment: collaborative_8 vs independent on Acrobot-v1 ({diff:+.1f} " in words
    # a run without a finite value is left out of its cell
    nan_run = A.env_verdicts(_final({**VALUES, "pbt8": [12.0, 20.0, 8.0, float("nan")]}), SETUPS)
    row = nan_run[(nan_run["setup"] == "pbt8") & (nan_run["baseline"] == "independent")].iloc[0]
    assert (row.n_setup, row.setup_mean) == (3, pytest.approx(40 / 3))
    assert row.difference == pytest.approx(_welch([12.0, 20.0, 8.0], VALUES["independent"])[0])
    assert list(A.verdict_summary(table).columns) == A.SUMMARY_COLUMNS
    assert A.verdict_summary(table.iloc[:0]).columns.tolist() == A.SUMMARY_COLUMNS  # no rows: the columns
    # an environment asked for without runs, or without a finite return, is left out
    nan_env = _final({"independent": [float("nan")]}, env="Pendulum-v1")
    both = pd.concat([_final(), nan_env], ignore_index=True)
    assert set(A.extreme_runs(both, envs=["Acrobot-v1", "Pendulum-v1", "Taxi-v4"])["env_id"]) == {
        "Acrobot-v1"
    }
    extremes = A.extreme_runs(_final())
    best, worst = extremes.iloc[0], extremes.iloc[1]
    assert (best.which, best.setup, best.seed, best.mean_return) == ("best", "collaborative_8", 3, 34.0)
    assert (worst.which, worst.setup, worst.seed, worst.mean_return) == ("worst", "robust", 0, 0.0)


def test_record_pick_names_the_run_of_the_extreme_agent(tmp_path: Path, capsys) -> None:
    import record

    _final().to_csv(tmp_path / "final.csv", index=False)
    run = record.pick_run(str(tmp_path), "Acrobot-v1", "worst")
    assert run == tmp_path / "runs" / "Acrobot-v1" / "robust" / "seed0"
    assert "worst Acrobot-v1: robust seed 0" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="env='Pendulum-v1' has no runs"):
        record.pick_run(str(tmp_path), "Pendulum-v1", "best")


def test_population_scores_normalise_the_mean_of_all_final_agents() -> None:
    """Acrobot's random policy scores -500 and its reference -69.1: a run whose final agents average
    -500 + 0.5 * 430.9 scores 0.5; the frame is normalised_scores' and feeds the same comparisons."""
    mid = -500.0 + 0.5 * 430.9
    rows = [
        {"env_id": "Acrobot-v1", "setup": s, "seed": k, "agent": a, "episode": 0, "return": v}
        for s, base in (("independent", mid), ("collaborative_8", -69.1))
        for k in range(3)
        for a, v in ((0, base - 10.0 * (k + 1)), (1, base + 10.0 * (k + 1)), (-1, 1e6))
    ]
    scores = A.population_scores(pd.DataFrame(rows))
    assert list(scores.columns) == list(A.normalised_scores(_final()).columns)
    indep = scores[scores["setup"] == "independent"]
    assert indep["score"].to_numpy() == pytest.approx([0.5, 0.5, 0.5])
    assert scores[scores["setup"] == "collaborative_8"]["score"].to_numpy() == pytest.approx([1.0, 1.0, 1.0])
    cmp = A.compare_setups(scores, [("vs independent", "collaborative_8", "independent")], n_boot=200)
    poi = cmp[cmp["metric"] == "probability of improvement"].iloc[0]
    assert poi["estimate"] == 1.0
