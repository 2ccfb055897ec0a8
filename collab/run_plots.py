"""One run's learning curves and share timeline, and the small helpers every figure uses.

The training and exploration notebooks draw a run with :func:`plot_learning_curves` and
:func:`plot_share_timeline`; :mod:`collab.plots` re-exports both. Each returns the matplotlib Figure
and never calls ``plt.show``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def axes_of(ax: Axes | None, figsize: tuple[float, float] = (6.4, 4.0)) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure with one axes of ``figsize``."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def plot_learning_curves(curves: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """One run's ``curves.csv``: val_return (solid) and train_return (dashed) per agent over episode."""
    fig, ax = axes_of(ax)
    if curves.empty:
        ax.text(0.5, 0.5, "no curves", ha="center", va="center", transform=ax.transAxes)
        return fig
    agents = sorted(curves["agent"].unique())
    cmap = plt.get_cmap("tab10")
    for k, agent in enumerate(agents):
        d = curves[curves["agent"] == agent].sort_values("episode")
        c = cmap(k % 10)
        ax.plot(d["episode"], d["val_return"], color=c, lw=1.5, label=f"agent {agent} val")
        ax.plot(
            d["episode"], d["train_return"], color=c, lw=1.0, ls="--", alpha=0.7, label=f"agent {agent} train"
        )
    title = ""
    if "env_id" in curves.columns and "setup" in curves.columns:
        title = f"{curves['env_id'].iloc[0]} {curves['setup'].iloc[0]}"
        if "seed" in curves.columns:
            title += f" seed {curves['seed'].iloc[0]}"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("training episodes per agent")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2 if len(agents) > 2 else 1)
    return fig


def plot_share_timeline(sharing: pd.DataFrame, n_agents: int | None = None, ax: Axes | None = None) -> Figure:
    """One run's ``sharing.csv``: an arrow from source to target agent at each share's episode.

    x = episodes per agent at the share (round when ``episode`` is absent), y = agent index.
    An empty frame gives an axes saying "no parameter shares".
    """
    fig, ax = axes_of(ax)
    n = n_agents
    if n is None and not sharing.empty:
        n = int(max(sharing["source"].max(), sharing["target"].max())) + 1
        if "n_agents" in sharing.columns:
            n = max(n, int(sharing["n_agents"].max()))
    if sharing.empty:
        ax.text(0.5, 0.5, "no parameter shares", ha="center", va="center", transform=ax.transAxes)
    else:
        xcol = "episode" if "episode" in sharing.columns else "round"
        xs = sharing[xcol].to_numpy(float)
        span = (xs.max() - xs.min()) or 1.0
        for rec in sharing.itertuples(index=False):
            x = float(getattr(rec, xcol))
            ax.annotate(
                "",
                xy=(x, rec.target),
                xytext=(x, rec.source),
                arrowprops={"arrowstyle": "->", "color": "tab:red", "alpha": 0.6, "lw": 1.0},
            )
        ax.scatter(xs, sharing["source"], s=14, color="tab:blue", label="source (copied)", zorder=3)
        ax.scatter(
            xs, sharing["target"], s=14, color="tab:red", marker="x", label="target (receives)", zorder=3
        )
        ax.set_xlim(xs.min() - 0.05 * span, xs.max() + 0.05 * span)
        ax.set_xlabel("episodes per agent" if xcol == "episode" else "round")
        ax.legend(fontsize=7, loc="upper right")
    if n:
        ax.set_yticks(range(n))
        ax.set_ylim(-0.5, n - 0.5)
    ax.set_ylabel("agent")
    ax.grid(alpha=0.3)
    ax.set_title(f"parameter shares ({len(sharing)})", fontsize=10)
    return fig
