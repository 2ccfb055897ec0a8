"""collab.plots runs headless and saves PNG + PDF."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from synthetic import synthetic_results  # noqa: E402

from collab import analysis as A  # noqa: E402
from collab import plots as P  # noqa: E402
from collab import run_plots as R  # noqa: E402
from collab.results import SCHEMA  # noqa: E402


@pytest.fixture(scope="module")
def data() -> A.ProfileData:
    return synthetic_results(envs=["Acrobot-v1", "CarRacing-v3"], seeds=[0, 1], rounds=4)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_figures_return_figures_and_save(data, tmp_path):
    lc = A.learning_curves(data.curves)
    conv = A.convergence_both(data.curves)
    summ = A.convergence_summary(conv)
    var = A.performance_variance(data.curves, data.final)
    tl = A.share_timeline(data.sharing)
    scores = A.normalised_scores(data.final)
    agg, imp = A.aggregate_metrics(scores, n_boot=100), A.improvement(scores, n_boot=100)
    figs = {
        "f1": P.plot_figure1(lc),
        "f1grid": P.plot_figure1_grid(lc),
        "f2": P.plot_convergence(conv, summ),
        "f2best": P.plot_convergence(conv, summ, measure="best agent"),
        "f3": P.plot_variance(var),
        "share": P.plot_share_timelines(tl),
        "aggregate": P.plot_aggregate(agg, imp, A.performance_profiles(scores, n_boot=100)),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure)
        paths = P.save_figure(fig, name, tmp_path / "figs")
        assert [p.suffix for p in paths] == [".png", ".pdf"]
        assert all(p.stat().st_size > 0 for p in paths)
    assert (tmp_path / "figs" / "f2.pdf").read_bytes().startswith(b"%PDF")
    assert not list((tmp_path / "figs").glob("*.tmp"))


def test_convergence_plot_shows_not_reached():
    conv = pd.DataFrame(
        {
            "env_id": ["Acrobot-v1"] * 2,
            "setup": ["independent", "collaborative_8"],
            "seed": [0, 0],
            "threshold": [-100.0] * 2,
            "episodes": [float("nan"), 300.0],
            "reached": [False, True],
            "budget": [500.0, 500.0],
        }
    )
    fig = P.plot_convergence(conv, A.convergence_summary(conv))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "not\nreached" in texts and "0/1" in texts and "1/1" in texts
    # with a measure column, only the rows of the measure asked for are drawn
    both = pd.concat(
        [conv.assign(measure="agent mean"), conv.assign(measure="best agent", reached=True, episodes=100.0)]
    )
    fig = P.plot_convergence(both, A.convergence_summary(both), measure="best agent")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "not\nreached" not in texts and texts.count("1/1") == 2


def test_aggregate_plot_draws_every_metric_and_baseline():
    cell = {"estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6}
    agg = pd.DataFrame(
        [
            {"setup": s, "metric": m, **cell}
            for s in ("independent", "collaborative_8")
            for m in ("IQM", "mean")
        ]
    )
    imp = pd.DataFrame(
        [
            {
                "setup": "collaborative_8",
                "baseline": "independent",
                "estimate": 0.4,
                "ci_low": 0.2,
                "ci_high": 0.6,
            }
        ]
    )
    fig = P.plot_aggregate(agg, imp)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["IQM", "mean", "P(setup > Independent)"]
    assert fig.axes[2].lines[0].get_xdata().tolist() == [0.2, 0.6]  # the interval drawn as given


def test_single_run_plots(data):
    run = data.curves.query("env_id == 'Acrobot-v1' and setup == 'collaborative_4' and seed == 0")
    fig = R.plot_learning_curves(run)
    assert len(fig.axes[0].lines) == 8  # 4 agents x (val, train)
    shares = data.sharing.query("env_id == 'Acrobot-v1' and setup == 'collaborative_4' and seed == 0")
    fig = R.plot_share_timeline(shares)
    assert fig.axes[0].get_ylim() == (-0.5, 3.5)
    _, ax = plt.subplots()
    assert R.plot_share_timeline(shares, n_agents=4, ax=ax) is ax.figure


def test_share_timeline_empty_frame(tmp_path):
    fig = R.plot_share_timeline(pd.DataFrame(columns=SCHEMA["sharing.csv"]), n_agents=2)
    assert "no parameter shares" in [t.get_text() for t in fig.axes[0].texts]
    fig = R.plot_share_timeline(pd.DataFrame(columns=SCHEMA["sharing.csv"]))
    P.save_figure(fig, "empty", tmp_path)
    fig = R.plot_learning_curves(pd.DataFrame(columns=SCHEMA["curves.csv"]))
    assert isinstance(fig, Figure)


def test_figure1_clip_sequential_limits_x_and_notes_the_end():
    rows = []
    for setup, xs in (("independent", [10, 20, 30]), ("sequential", [10, 100, 240])):
        for x in xs:
            rows.append({"env_id": "Acrobot-v1", "setup": setup, "x": x, "mean": -100.0, "ci_low": -110.0,
                         "ci_high": -90.0})  # fmt: skip
    lc = pd.DataFrame(rows)
    ax = P.plot_figure1(lc, env_id="Acrobot-v1", clip_sequential=True).axes[0]
    assert ax.get_xlim() == (0.0, 30.0)
    assert [t.get_text() for t in ax.texts] == ["sequential continues to 240"]
    ax = P.plot_figure1(lc, env_id="Acrobot-v1").axes[0]  # default: the whole sequential run
    assert ax.get_xlim()[1] >= 240 and not ax.texts
    grid = P.plot_figure1_grid(lc, clip_sequential=True)
    assert grid.axes[0].get_xlim() == (0.0, 30.0)


def test_figures_with_setups_the_paper_does_not_have(tmp_path):
    setups = [
        {"name": "pbt8", "strategy": "pbt", "n_agents": 8},
        {"name": "independent", "strategy": "independent", "n_agents": 8},
        {"name": "independent_2", "strategy": "independent", "n_agents": 2},
        {"name": "collaborative_8", "strategy": "collaborative", "n_agents": 8},
        {"name": "collab8_sign_robust_1.05", "strategy": "collaborative", "n_agents": 8},
        {"name": "collab8_reset", "strategy": "collaborative", "n_agents": 8},
    ]
    data = synthetic_results(envs=["Acrobot-v1", "Taxi-v4"], setups=setups, seeds=[0, 1], rounds=3)
    order = data.order
    assert order == [s["name"] for s in setups]
    lc = A.learning_curves(data.curves, setups=order)
    conv = A.convergence_both(data.curves, setups=order)
    scores = A.normalised_scores(data.final)
    agg = A.aggregate_metrics(scores, setups=order, n_boot=100)
    imp = A.improvement(scores, setups=order, n_boot=100)
    figs = {
        "f1": P.plot_figure1(lc, env_id="Taxi-v4", setups=order),
        "f1grid": P.plot_figure1_grid(lc, setups=order),
        "f2": P.plot_convergence(conv, A.convergence_summary(conv, setups=order), setups=order),
        "f3": P.plot_variance(A.performance_variance(data.curves, data.final, setups=order), setups=order),
        "share": P.plot_share_timelines(A.share_timeline(data.sharing, setups=order)),
        "aggregate": P.plot_aggregate(agg, imp, A.performance_profiles(scores, setups=order, n_boot=100)),
    }
    comp = A.matched_comparison(scores, data.setup_info, n_boot=100)
    figs["comparison"] = P.plot_comparison(comp, setups=order)
    for name, fig in figs.items():
        P.save_figure(fig, name, tmp_path)
    titles = [ax.get_title() for ax in figs["comparison"].axes]
    assert titles[0] == "matched compute: probability of improvement\n(setup vs Independent)"
    assert titles[1] == "vs collaborative_8: probability of improvement\n(setup vs 8 agents)"
    matched = [t.get_text() for t in figs["comparison"].axes[0].get_yticklabels()]
    assert matched == ["pbt8", "8 agents", "collab8_sign_robust_1.05", "collab8_reset"]
    assert isinstance(P.plot_comparison(comp.iloc[0:0]), Figure)  # nothing to compare: still a figure
    lines = figs["f1"].axes[0].get_lines()
    labels = [ln.get_label() for ln in lines]
    assert labels == [
        "pbt8",
        "Independent",
        "independent_2",
        "8 agents",
        "collab8_sign_robust_1.05",
        "collab8_reset",
    ]
    colours = [ln.get_color() for ln in lines]
    assert len(set(colours)) == len(colours)  # every setup its own colour
    assert colours[1] == P.SETUP_COLORS["independent"] and colours[3] == P.SETUP_COLORS["collaborative_8"]
    ticks = [t.get_text() for t in figs["f2"].axes[0].get_xticklabels()]
    assert ticks == labels
    assert len([ax for ax in figs["share"].axes if ax.get_visible()]) == 2  # only the envs present
    # default order without setups: the paper's five first, then the others
    assert [t.get_text() for t in P.plot_variance(A.performance_variance(data.curves, data.final)).axes[0]
            .get_xticklabels()][:2] == ["Independent", "8 agents"]  # fmt: skip


def test_setup_colors_are_stable_and_distinct():
    many = [f"s{i}" for i in range(len(P.EXTRA_COLORS))] + ["independent"]
    colours = P.setup_colors(many)
    assert len(set(colours.values())) == len(many)
    assert colours["independent"] == P.SETUP_COLORS["independent"]
    assert P.setup_colors(["s1", "s0"])["s1"] == P.EXTRA_COLORS[0]  # by position in the figure's setups


def test_saved_figures_have_the_usual_permissions(tmp_path):
    """PNG and PDF get 0666 less the umask, like the CSVs (they used to stay mkstemp's 0600)."""
    import os

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    old = os.umask(0o022)
    try:
        paths = P.save_figure(fig, "f", tmp_path)
    finally:
        os.umask(old)
        plt.close(fig)
    assert [p.name for p in paths] == ["f.png", "f.pdf"]
    assert {p.stat().st_mode & 0o777 for p in paths} == {0o644}
    assert not list(tmp_path.glob(".*tmp"))
