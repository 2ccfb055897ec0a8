"""collab.analysis.verdicts: the headline claims, their estimates, p-values, Holm and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from analysis_helpers import _conv_curves, _curves, _final, _final_from_curves
from scipy import stats
from synthetic import synthetic_results

from collab import analysis as A

# ---------------------------------------------------------------- verdicts, relative improvement


def test_verdict_rules():
    assert A.verdict(0.5, 0.7, 0.4) == "holds"
    assert A.verdict(0.1, 0.3, 0.4) == "does not hold"
    assert A.verdict(0.3, 0.5, 0.4) == "inconclusive"
    assert A.verdict(math.nan, math.nan, 0.4) == "inconclusive"
    assert A.combine_verdicts(["does not hold", "holds"], "any") == "holds"
    assert A.combine_verdicts(["does not hold", "holds"], "all") == "does not hold"
    assert A.combine_verdicts(["inconclusive", "holds"], "all") == "inconclusive"
    assert A.combine_verdicts([], "all") == "inconclusive"


def test_relative_improvement_sign_safe():
    f = A.relative_improvement
    assert f(np.array([[-50.0]]), np.array([[-100.0]]))[0] == pytest.approx(0.5)  # better, negative rewards
    assert f(np.array([[-150.0]]), np.array([[-100.0]]))[0] == pytest.approx(-0.5)  # worse
    assert f(np.array([[115.0]]), np.array([[100.0]]))[0] == pytest.approx(0.15)
    assert f(np.array([[19.66]]), np.array([[-72.17]]))[0] > 0


# ---------------------------------------------------------------- convergence claim


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


# ---------------------------------------------------------------- variance claim


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


# ---------------------------------------------------------------- reward claims, all claims, Holm


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
