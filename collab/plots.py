"""Figures 1-3, the aggregate metrics, setup comparisons and the share timelines, drawn from the frames
of :mod:`collab.analysis` (one run's curves and shares: :mod:`collab.run_plots`).

Every function returns the matplotlib Figure and never calls ``plt.show``; :func:`save_figure`
writes PNG and PDF atomically. Not-reached runs in Figure 2 are drawn explicitly, never as zero.
Setups are drawn in the order given (``setups``; default: those in the frame, the paper's five first),
the paper's five with their fixed colours and Table 1 labels, any other with a colour of its own
(:func:`setup_colors`) and its name as label.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from collab.analysis.setups import present_setups, setup_label
from collab.paper import ENVS, PAPER_ENV_NAMES
from collab.results import atomic_path
from collab.run_plots import axes_of as _axes
from collab.run_plots import plot_share_timeline

#: One colour per setup of the paper, the same in every figure.
SETUP_COLORS: dict[str, str] = {
    "independent": "#4c72b0",
    "sequential": "#8c8c8c",
    "collaborative_2": "#dd8452",
    "collaborative_4": "#55a868",
    "collaborative_8": "#c44e52",
}
#: Colours for any other setup, handed out in the order of the figure's setups (then repeated).
EXTRA_COLORS: tuple[str, ...] = (
    "#8172b3",
    "#937860",
    "#da8bc3",
    "#ccb974",
    "#64b5cd",
    "#2f4b7c",
    "#a05195",
    "#ff7c43",
    "#2ca02c",
    "#17becf",
    "#bcbd22",
    "#7f3c8d",
)
LEGEND_COLUMNS = 5  #: legend columns at most (figures with many setups wrap their legend)


def setup_colors(setups: Sequence[str]) -> dict[str, str]:
    """A colour per setup: the paper's fixed ones (``SETUP_COLORS``), the others from ``EXTRA_COLORS``
    in the order of ``setups``."""
    others = [s for s in dict.fromkeys(setups) if s not in SETUP_COLORS]
    extra = {s: EXTRA_COLORS[i % len(EXTRA_COLORS)] for i, s in enumerate(others)}
    return {s: SETUP_COLORS.get(s) or extra[s] for s in dict.fromkeys(setups)}


def _order(df: pd.DataFrame, setups: Sequence[str] | None) -> list[str]:
    """``setups`` as given, or the setups of ``df`` (the paper's five first, then first appearance)."""
    return list(setups) if setups is not None else present_setups(df)


def _ticks(ax: Axes, setups: Sequence[str]) -> None:
    """Setup labels on the x axis (slanted more, right-aligned, when there are many)."""
    labels = [setup_label(s) for s in setups]
    if len(setups) <= 5:
        ax.set_xticks(range(len(setups)), labels, rotation=30, fontsize=8)
    else:
        ax.set_xticks(range(len(setups)), labels, rotation=45, ha="right", fontsize=7)


def _grid(n: int, ncols: int = 3, panel: tuple[float, float] = (4.2, 3.2)) -> tuple[Figure, np.ndarray]:
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained", squeeze=False
    )
    for extra in axes.flat[n:]:
        extra.set_visible(False)
    return fig, axes


def _title(env: str) -> str:
    paper = PAPER_ENV_NAMES.get(env, env)
    return env if paper == env else f"{env} (paper: {paper})"


def _present(df: pd.DataFrame, envs: Sequence[str]) -> list[str]:
    """The requested environments, plus any others in the frame, in order."""
    found = list(dict.fromkeys(df["env_id"])) if "env_id" in df.columns else []
    return [e for e in envs if e in found] + [e for e in found if e not in envs]


# --------------------------------------------------------------------------------------------
# Figure 1


def _draw_curves(ax: Axes, stats: pd.DataFrame, setups: Sequence[str], legend: bool = True) -> None:
    colors = setup_colors(setups)
    for setup in setups:
        d = stats[stats["setup"] == setup].sort_values("x")
        if d.empty:
            continue
        ax.plot(d["x"], d["mean"], color=colors[setup], label=setup_label(setup), lw=1.6)
        ok = d["ci_low"].notna()
        if ok.any():
            ax.fill_between(
                d["x"][ok], d["ci_low"][ok], d["ci_high"][ok], color=colors[setup], alpha=0.2, lw=0
            )
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _clip_sequential(ax: Axes, stats: pd.DataFrame) -> None:
    """Limit x to the population setups' range; note where the sequential curve (n x k) goes on."""
    others = stats.loc[stats["setup"] != "sequential", "x"]
    seq = stats.loc[stats["setup"] == "sequential", "x"]
    if others.empty or seq.empty or seq.max() <= others.max():
        return
    ax.set_xlim(0, others.max())
    ax.text(
        0.98, 0.03, f"sequential continues to {seq.max():,.0f}", ha="right", va="bottom",
        fontsize=7, color=SETUP_COLORS["sequential"], transform=ax.transAxes,
    )  # fmt: skip


def plot_figure1(
    curve_stats: pd.DataFrame,
    env_id: str = "CarRacing-v3",
    setups: Sequence[str] | None = None,
    x_label: str = "training episodes per agent",
    ax: Axes | None = None,
    clip_sequential: bool = False,
) -> Figure:
    """Figure 1: one environment's mean validation return over training, 95% CI band, one line per setup.

    ``curve_stats`` is :func:`collab.analysis.learning_curves`. ``clip_sequential``: show x only up
    to the longest population setup (sequential's single agent trains n x k episodes per agent,
    which would squeeze the other curves into the first 1/n of the axis); a note gives its end.
    """
    fig, ax = _axes(ax)
    setups = _order(curve_stats, setups)
    stats = curve_stats[curve_stats["env_id"] == env_id]
    if stats.empty:
        ax.text(0.5, 0.5, f"no data for {env_id}", ha="center", va="center", transform=ax.transAxes)
    _draw_curves(ax, stats, setups)
    if clip_sequential:
        _clip_sequential(ax, stats)
    ax.set_title(f"{_title(env_id)}: mean validation return (95% CI over seeds)", fontsize=10)
    ax.set_xlabel(x_label)
    ax.set_ylabel("validation return")
    return fig


def plot_figure1_grid(
    curve_stats: pd.DataFrame,
    envs: Sequence[str] = ENVS,
    setups: Sequence[str] | None = None,
    x_label: str = "training episodes per agent",
    clip_sequential: bool = False,
) -> Figure:
    """Figure 1 for every environment: a 2x3 grid of learning-curve panels (shared legend).

    ``clip_sequential`` as in :func:`plot_figure1`, per panel.
    """
    envs = _present(curve_stats, envs) or list(envs)
    setups = _order(curve_stats, setups)
    fig, axes = _grid(len(envs))
    for ax, env in zip(axes.flat, envs, strict=False):
        stats = curve_stats[curve_stats["env_id"] == env]
        _draw_curves(ax, stats, setups, legend=False)
        if clip_sequential:
            _clip_sequential(ax, stats)
        ax.set_title(_title(env), fontsize=10)
        ax.set_xlabel(x_label, fontsize=8)
        ax.set_ylabel("validation return", fontsize=8)
    colors = setup_colors(setups)
    handles = [plt.Line2D([], [], color=colors[s], label=setup_label(s)) for s in setups]
    ncols = max(1, min(len(setups), LEGEND_COLUMNS))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=9)
    fig.suptitle("Mean validation return over training (95% CI over seeds)")
    return fig


# --------------------------------------------------------------------------------------------
# Figure 2


def _draw_convergence(ax: Axes, conv: pd.DataFrame, summary: pd.DataFrame, setups: Sequence[str]) -> None:
    xt = ax.get_xaxis_transform()
    colors = setup_colors(setups)
    for i, setup in enumerate(setups):
        runs = conv[conv["setup"] == setup]
        s = summary[summary["setup"] == setup]
        if runs.empty:
            ax.text(i, 0.5, "no runs", ha="center", va="center", fontsize=7, transform=xt)
            continue
        row = s.iloc[0]
        if row["n_reached"] > 0:
            err = None
            if pd.notna(row["ci_low"]):
                err = [[row["mean_reached"] - row["ci_low"]], [row["ci_high"] - row["mean_reached"]]]
            ax.bar(i, row["mean_reached"], color=colors[setup], alpha=0.7, yerr=err, capsize=3)
        else:
            ax.text(i, 0.5, "not\nreached", ha="center", va="center", fontsize=7, color="red", transform=xt)
        reached = runs[runs["reached"]]
        jitter = np.linspace(-0.15, 0.15, max(len(runs), 1))[: len(reached)]
        ax.scatter(i + jitter, reached["episodes"], s=12, color="black", zorder=3)
        cens = runs[~runs["reached"]]
        if len(cens):
            ax.scatter(
                np.full(len(cens), i + 0.25),
                cens["budget"],
                marker="^",
                s=22,
                facecolors="none",
                edgecolors="red",
                zorder=3,
                label="not reached (at budget)",
            )
        ax.text(
            i,
            1.02,
            f"{int(row['n_reached'])}/{int(row['n_runs'])}",
            ha="center",
            va="bottom",
            fontsize=7,
            transform=xt,
        )
    _ticks(ax, setups)
    ax.set_xlim(-0.6, len(setups) - 0.4)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")


def plot_convergence(
    conv: pd.DataFrame,
    summary: pd.DataFrame,
    envs: Sequence[str] = ENVS,
    setups: Sequence[str] | None = None,
    measure: str = "agent mean",
) -> Figure:
    """Figure 2: episodes to reach the env's threshold, per setup (2x3 grid, one panel per env).

    Bars: mean over the runs that reached it, with 95% CI; black dots: those runs; red open
    triangles at the run's budget: runs that never reached it; "k/n" above each bar: runs that
    reached it. ``conv`` is :func:`collab.analysis.episodes_to_threshold`, ``summary``
    :func:`collab.analysis.convergence_summary`; where they have a ``measure`` column, only the rows
    of ``measure`` ('agent mean' or 'best agent') are drawn.
    """
    if "measure" in conv.columns:
        conv = conv[conv["measure"] == measure]
    if "measure" in summary.columns:
        summary = summary[summary["measure"] == measure]
    envs = _present(conv, envs) or list(envs)
    setups = _order(conv, setups)
    fig, axes = _grid(len(envs), panel=(4.2, 3.6))
    for ax, env in zip(axes.flat, envs, strict=False):
        _draw_convergence(ax, conv[conv["env_id"] == env], summary[summary["env_id"] == env], setups)
        thr = conv.loc[conv["env_id"] == env, "threshold"]
        sub = f"threshold {thr.iloc[0]:.1f}" if len(thr) else "no data"
        ax.set_title(f"{_title(env)}\n{sub}", fontsize=9, pad=14)
        ax.set_ylabel("episodes per agent", fontsize=8)
    fig.suptitle(f"Episodes to reach 90% of the reward range, {measure} (k/n: runs that reached it)")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color="black", label="run (reached)"),
        plt.Line2D(
            [], [], marker="^", ls="", mfc="none", color="red", label="run not reached (at its budget)"
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# Figure 3


def plot_variance(
    var_stats: pd.DataFrame, envs: Sequence[str] = ENVS, setups: Sequence[str] | None = None
) -> Figure:
    """Figure 3: per setup, the spread within a run (solid) and between seeds (hatched), with 95% CIs.

    ``var_stats`` is :func:`collab.analysis.performance_variance`: ``within`` = the expected sd of two
    agents of a run (final validation returns), ``between`` = the sd over seeds of a run's Table 1
    value. Sequential has one agent, so no within-run spread ("n/a").
    """
    envs = _present(var_stats, envs) or list(envs)
    setups = _order(var_stats, setups)
    colors = setup_colors(setups)
    fig, axes = _grid(len(envs))
    for ax, env in zip(axes.flat, envs, strict=False):
        d = var_stats[var_stats["env_id"] == env]
        for i, setup in enumerate(setups):
            r = d[d["setup"] == setup]
            if r.empty:
                ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=7)
                continue
            r = r.iloc[0]
            for offset, col, hatch in ((-0.2, "within", None), (0.2, "between", "//")):
                v = r[col]
                if pd.isna(v):
                    ax.text(i + offset, 0, "n/a", ha="center", va="bottom", fontsize=6)
                    continue
                err = None
                if pd.notna(r[f"{col}_ci_low"]):  # a spread is >= 0: the bar stops there
                    err = [[v - max(r[f"{col}_ci_low"], 0.0)], [r[f"{col}_ci_high"] - v]]
                ax.bar(
                    i + offset, v, width=0.4, color=colors[setup], alpha=0.8, hatch=hatch,
                    edgecolor="white" if hatch else None, yerr=err, capsize=2,
                )  # fmt: skip
        _ticks(ax, setups)
        ax.set_title(_title(env), fontsize=10)
        ax.set_ylabel("spread of returns", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    handles = [
        Patch(facecolor="grey", label="within a run (two agents' sd)"),
        Patch(facecolor="grey", edgecolor="white", hatch="//", label="between seeds (sd of results)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle("Spread within a run and between seeds (95% CIs)")
    return fig


# --------------------------------------------------------------------------------------------
# Aggregate metrics


def plot_aggregate(
    agg: pd.DataFrame,
    imp: pd.DataFrame,
    profiles: pd.DataFrame | None = None,
    setups: Sequence[str] | None = None,
) -> Figure:
    """The aggregate metrics with 95% stratified-bootstrap intervals, the probability of improvement,
    and (with ``profiles``) the performance profiles, in one row of panels.

    ``agg`` is :func:`collab.analysis.aggregate_metrics`, ``imp`` :func:`collab.analysis.improvement`,
    ``profiles`` :func:`collab.analysis.performance_profiles`.
    """
    metrics = list(dict.fromkeys(agg["metric"])) if not agg.empty else []
    bases = list(dict.fromkeys(imp["baseline"])) if not imp.empty else []
    ncols = max(len(metrics), len(bases) + (2 if profiles is not None else 0), 1)
    top = [f"m{i}" for i in range(len(metrics))] + ["."] * (ncols - len(metrics))
    bottom = [f"b{i}" for i in range(len(bases))] + (["p", "p"] if profiles is not None else [])
    bottom += ["."] * (ncols - len(bottom))
    fig, named = plt.subplot_mosaic(
        [top, bottom], figsize=(2.9 * ncols + 0.6, 6.4), layout="constrained", empty_sentinel="."
    )
    axes = [named[f"m{i}"] for i in range(len(metrics))] + [named[f"b{i}"] for i in range(len(bases))]
    if profiles is not None:
        axes.append(named["p"])
    if setups is None:
        setups = present_setups(pd.concat([agg[["setup"]], imp[["setup"]]]) if len(imp) else agg)
    colors = setup_colors(setups)
    present = [s for s in setups if s in set(agg["setup"])] if not agg.empty else []
    labels = [setup_label(s) for s in present]
    for ax, metric in zip(axes, metrics, strict=False):
        d = agg[agg["metric"] == metric].set_index("setup")
        for y, setup in enumerate(present):
            r = d.loc[setup]
            ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=colors[setup], lw=6, alpha=0.5)
            ax.plot([r["estimate"]], [y], "|", color=colors[setup], ms=14, mew=2)
        ax.set_yticks(
            range(len(present)), labels if metric == metrics[0] else [""] * len(present), fontsize=8
        )
        ax.set_title(metric + (" (lower is better)" if metric == "optimality gap" else ""), fontsize=9)
        ax.set_xlabel("normalised score", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    for ax, base in zip(axes[len(metrics) :], bases, strict=False):
        d = imp[imp["baseline"] == base]
        rows = [s for s in setups if s in set(d["setup"])]
        for y, setup in enumerate(rows):
            r = d[d["setup"] == setup].iloc[0]
            ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=colors[setup], lw=6, alpha=0.5)
            ax.plot([r["estimate"]], [y], "|", color=colors[setup], ms=14, mew=2)
        ax.axvline(0.5, color="black", lw=0.8, ls="--")
        ax.set_xlim(0, 1)
        ax.set_yticks(range(len(rows)), [setup_label(s) for s in rows], fontsize=8)
        ax.set_title(f"P(setup > {setup_label(base)})", fontsize=9)
        ax.set_xlabel("probability of improvement", fontsize=8)
        ax.grid(alpha=0.3, axis="x")
    if profiles is not None:
        ax = axes[-1]
        for setup in setups:
            d = profiles[profiles["setup"] == setup].sort_values("tau")
            if d.empty:
                continue
            ax.plot(d["tau"], d["estimate"], color=colors[setup], label=setup_label(setup), lw=1.4)
            ax.fill_between(d["tau"], d["ci_low"], d["ci_high"], color=colors[setup], alpha=0.15, lw=0)
        ax.set_title("performance profile", fontsize=9)
        ax.set_xlabel("normalised score tau", fontsize=8)
        ax.set_ylabel("fraction of runs > tau", fontsize=8)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no environment with two runs of every setup", ha="center", va="center",
                    fontsize=7, transform=ax.transAxes)  # fmt: skip
    fig.suptitle("Across environments: normalised scores (0 = random policy, 1 = reference), 95% CIs")
    return fig


def plot_comparison(
    comp: pd.DataFrame,
    setups: Sequence[str] | None = None,
    metrics: Sequence[str] = ("probability of improvement", "IQM difference"),
) -> Figure:
    """Each setup against its matched-compute baseline and against the paper's setting: one column per
    comparison, one row per metric, 95% stratified-bootstrap intervals.

    ``comp`` is :func:`collab.analysis.matched_comparison` (or :func:`collab.analysis.compare_setups`).
    Dashed line: no difference (0.5 for the probability of improvement, 0 for a difference).
    """
    kinds = list(dict.fromkeys(comp["comparison"])) if not comp.empty else []
    setups = _order(comp, setups)
    colors = setup_colors(setups)
    ncols = max(len(kinds), 1)
    fig, axes = plt.subplots(
        len(metrics), ncols, figsize=(4.6 * ncols, 0.4 * max(len(setups), 3) * len(metrics) + 1.2),
        layout="constrained", squeeze=False,
    )  # fmt: skip
    if not kinds:
        axes[0, 0].text(0.5, 0.5, "no pair of setups to compare", ha="center", va="center",
                        transform=axes[0, 0].transAxes)  # fmt: skip
    for j, kind in enumerate(kinds):
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            d = comp[(comp["comparison"] == kind) & (comp["metric"] == metric)]
            rows = [s for s in setups if s in set(d["setup"])]
            for y, setup in enumerate(rows):
                r = d[d["setup"] == setup].iloc[0]
                ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=colors[setup], lw=6, alpha=0.5)
                ax.plot([r["estimate"]], [y], "|", color=colors[setup], ms=14, mew=2)
            bases = list(dict.fromkeys(d["baseline"]))
            against = setup_label(bases[0]) if len(bases) == 1 else "its matched baseline"
            ax.axvline(0.5 if metric == "probability of improvement" else 0.0, color="black", lw=0.8, ls="--")
            if metric == "probability of improvement":
                ax.set_xlim(0, 1)
            ax.set_yticks(range(len(rows)), [setup_label(s) for s in rows], fontsize=8)
            ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
            ax.set_title(f"{kind}: {metric}\n(setup vs {against})", fontsize=9)
            ax.set_xlabel(
                metric if metric == "probability of improvement" else "normalised score", fontsize=8
            )
            ax.grid(alpha=0.3, axis="x")
    fig.suptitle("Each setup against its matched-compute baseline and the paper's setting (95% CIs)")
    return fig


# --------------------------------------------------------------------------------------------
# One run: learning curves and share timeline (also used by the training notebook)


def plot_share_timelines(timeline: pd.DataFrame, envs: Sequence[str] = ENVS) -> Figure:
    """The share timeline of one run per environment (:func:`collab.analysis.share_timeline`), 2x3 grid.

    The environments of ``envs`` present in ``timeline``, then any other it has (all of ``envs`` when
    it is empty)."""
    envs = _present(timeline, envs) or list(envs)
    fig, axes = _grid(len(envs))
    for ax, env in zip(axes.flat, envs, strict=False):
        d = timeline[timeline["env_id"] == env] if not timeline.empty else timeline
        n = int(d["n_agents"].iloc[0]) if len(d) else None
        plot_share_timeline(d, n_agents=n, ax=ax)
        run = f"{d['setup'].iloc[0]} seed {d['seed'].iloc[0]}" if len(d) else "no shares"
        ax.set_title(f"{_title(env)}\n{run}: {len(d)} shares", fontsize=9)
    fig.suptitle("Who copied whom, when (one run per environment)")
    return fig


# --------------------------------------------------------------------------------------------
# Saving


def save_figure(fig: Figure, name: str, out_dir: str | os.PathLike, dpi: int = 150) -> list[Path]:
    """Save ``fig`` as ``<out_dir>/<name>.png`` and ``.pdf``, each to a temporary file then renamed."""
    out = Path(out_dir)
    paths = []
    for fmt in ("png", "pdf"):
        path = out / f"{name}.{fmt}"
        meta = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
        paths.append(path)
    return paths
