"""What a comparison excludes: margin verdicts, TOST, power, and the equivalence table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_study import SETUPS, _final

from collab import analysis as A
from collab.paper import ScoreReference


@pytest.mark.parametrize(
    ("lo", "hi", "verdict"),
    [
        (0.01, 0.3, "better"),
        (-0.3, -0.01, "worse"),
        (-0.09, 0.09, "equivalent"),
        (-0.1, 0.05, "inconclusive"),  # a loss of the whole margin is not excluded
        (-0.05, 0.2, "inconclusive"),
        (math.nan, 0.0, "inconclusive"),
    ],
)
def test_margin_verdict(lo, hi, verdict):
    assert A.margin_verdict(lo, hi, 0.1) == verdict


def test_tost_by_hand():
    """a = [1, 3], b = [0, 2]: difference 1, se sqrt(2), Welch df 2, where the t cdf is
    1/2 + t / (2 sqrt(2 + t^2)). Margin 3: p = max(sf(4 / sqrt 2), cdf(-2 / sqrt 2)) = 0.146447."""
    sf_hi = 1 - (0.5 + (4 / math.sqrt(2)) / (2 * math.sqrt(2 + 8)))
    cdf_lo = 0.5 + (-2 / math.sqrt(2)) / (2 * math.sqrt(2 + 2))
    assert A.tost([1.0, 3.0], [0.0, 2.0], 3.0) == pytest.approx(max(sf_hi, cdf_lo), abs=1e-12)
    assert max(sf_hi, cdf_lo) == pytest.approx(0.146447, abs=1e-6)
    # at level alpha, TOST rejects exactly when the (1 - 2 alpha) Welch interval lies inside the margin
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.normal(0.0, 1.0, 8), rng.normal(0.2, 1.5, 7)
        ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
        inside = -1.0 < ci.low and ci.high < 1.0
        assert (A.tost(a, b, 1.0) < 0.05) == inside
    assert math.isnan(A.tost([1.0], [0.0, 2.0], 1.0))


def test_power_matches_a_simulation_and_the_textbook():
    """Power of the two-sided two-sample t-test at n = 10, effect = sd: the noncentral t against
    20,000 simulated experiments; 80% power for effect = sd takes 17 seeds per group."""
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 1.0, (20_000, 10))
    b = rng.normal(0.0, 1.0, (20_000, 10))
    simulated = float((stats.ttest_ind(a, b, axis=1).pvalue < 0.05).mean())
    assert A.power_two_sample(10, 1.0, 1.0) == pytest.approx(simulated, abs=0.01)
    assert A.power_two_sample(10, 1.0, 1.0) == pytest.approx(0.562, abs=0.002)
    assert A.seeds_for_power(1.0, 1.0) == 17.0
    assert A.seeds_for_power(2.0, 1.0) > A.seeds_for_power(1.0, 1.0)
    assert math.isnan(A.seeds_for_power(0.0, 1.0))


def test_equivalence_table_in_gap_units():
    """Differences divided by the random-to-reference gap (here 100 - 0), against independent and
    collaborative_8, each pair once; independent_2 (independent's first agents) is not compared with
    independent."""
    refs = {"Acrobot-v1": ScoreReference(0.0, 100.0, "test")}
    table = A.env_equivalence(_final(), SETUPS, references=refs, margin=0.1)
    pairs = list(zip(table["setup"], table["baseline"], strict=True))
    assert ("independent_2", "independent") not in pairs
    assert ("independent", "collaborative_8") not in pairs  # listed as collaborative_8 vs independent
    assert ("independent_2", "collaborative_8") in pairs
    row = table[(table["setup"] == "collaborative_8") & (table["baseline"] == "independent")].iloc[0]
    want = stats.ttest_ind([30.0, 31.0, 33.0, 34.0], [10.0, 12.0, 14.0, 16.0], equal_var=False)
    ci = want.confidence_interval(0.95)
    assert row["diff"] == pytest.approx(0.19)  # (32 - 13) / 100
    assert (row["diff_low"], row["diff_high"]) == pytest.approx((ci.low / 100, ci.high / 100))
    assert row["verdict"] == "better" and row["measure"] == "selected"
    robust = table[(table["setup"] == "robust") & (table["baseline"] == "independent")].iloc[0]
    assert robust["verdict"] == "worse"
    summary = A.equivalence_summary(table)
    assert summary["cells"].sum() == len(table)
    assert A.env_equivalence(_final(env="NoRef-v0"), SETUPS, references=refs).empty


def test_power_table_pools_the_setups_spread():
    refs = {"Acrobot-v1": ScoreReference(0.0, 100.0, "test")}
    values = {"independent": [10.0, 12.0, 14.0, 16.0], "collaborative_8": [30.0, 31.0, 33.0, 34.0]}
    power = A.power_table(_final(values), SETUPS, references=refs, margin=0.1).iloc[0]
    var = (np.var([10, 12, 14, 16], ddof=1) + np.var([30, 31, 33, 34], ddof=1)) / 2 / 100**2
    assert power["sd"] == pytest.approx(math.sqrt(var))
    assert power["seeds"] == A.seeds_for_power(math.sqrt(var), 0.1)


def _eq_table() -> pd.DataFrame:
    rows = [  # env, setup, diff, low, high, verdict, flag
        ("Acrobot-v1", "a", 0.01, -0.05, 0.07, "equivalent", ""),
        ("Pendulum-v1", "a", 0.20, 0.05, 0.35, "better", ""),
        ("Acrobot-v1", "b", -0.02, -0.30, 0.26, "inconclusive", ""),
        ("Taxi-v4", "b", 0.90, 0.80, 1.00, "better", "tie-break"),
    ]
    return pd.DataFrame(
        [{"env_id": e, "setup": s, "baseline": "independent", "measure": "selected", "diff": d,
          "diff_low": lo, "diff_high": hi, "margin": 0.1, "verdict": v, "flag": f}
         for e, s, d, lo, hi, v, f in rows]
    )  # fmt: skip


def test_equivalence_bounds_and_sentences_leave_flagged_cells_out() -> None:
    bounds = A.equivalence_bounds(_eq_table()).set_index("setup")
    assert bounds.loc["a", ["envs", "equivalent", "better"]].tolist() == [2, 1, 1]
    assert (bounds.loc["a", "gain_bound"], bounds.loc["a", "loss_bound"]) == (0.35, -0.05)
    # b's flagged Taxi cell (+1.00) does not set its bound
    assert (bounds.loc["b", "envs"], bounds.loc["b", "gain_bound"], bounds.loc["b", "loss_bound"]) == (
        1,
        0.26,
        -0.30,
    )
    text = A.equivalence_sentences(_eq_table())
    assert "(3 cells; 1 on Taxi-v4 flagged and left out)" in text
    assert "equivalent within ±10% of the gap in 1" in text
    assert "better in 1 (a on Pendulum-v1 +20.0% [+5.0%, +35.0%])" in text
    assert "excludes a gain above +35.0% of the gap and a loss beyond -30.0%" in text
