"""One run's learning curves and share timeline, and the small helpers every figure uses.

The training and exploration notebooks draw a run with :func:`plot_learning_curves` and
:func:`plot_share_timeline`, the explorer too. Each returns the matplotlib Figure
and never calls ``plt.show``.
"""

from __future__ import annotations

import textwrap

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


def _run_label(d: pd.DataFrame, keys: list[str]) -> str:
    return " ".join(f"seed {d[k].iloc[0]}" if k == "seed" else str(d[k].iloc[0]) for k in keys)


def plot_learning_curves(curves: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """``curves.csv`` rows of one run or several: val_return over training episodes, one line per run
    and agent.

    One run: a colour per agent, val_return solid and train_return dashed. Several runs (rows that
    differ in env_id, setup or seed): a colour per run and one val_return line per agent of it, with
    a title that names the runs.
    """
    fig, ax = axes_of(ax)
    if curves.empty:
        ax.text(0.5, 0.5, "no curves", ha="center", va="center", transform=ax.transAxes)
        return fig
    keys = [k for k in ("env_id", "setup", "seed") if k in curves.columns]
    varying = [k for k in keys if curves[k].nunique() > 1]
    cmap = plt.get_cmap("tab10")
    if not varying:
        agents = sorted(curves["agent"].unique())
        for k, agent in enumerate(agents):
            d = curves[curves["agent"] == agent].sort_values("episode")
            c = cmap(k % 10)
            ax.plot(d["episode"], d["val_return"], color=c, lw=1.5, label=f"agent {agent} val")
            ax.plot(
                d["episode"], d["train_return"], color=c, lw=1.0, ls="--", alpha=0.7,
                label=f"agent {agent} train",
            )  # fmt: skip
        title = _run_label(curves, keys)
        ax.legend(fontsize=7, ncols=2 if len(agents) > 2 else 1)
    else:
        labels = []
        styles = ["-", "--", ":", "-."]  # identical runs stay visible on top of each other
        for k, (_, run) in enumerate(curves.groupby(varying, sort=False)):
            label = _run_label(run, varying)
            labels.append(label)
            for i, (_, d) in enumerate(run.groupby("agent")):
                d = d.sort_values("episode")
                ax.plot(
                    d["episode"], d["val_return"], color=cmap(k % 10), ls=styles[k % 4], lw=1.2, alpha=0.8,
                    label=f"{label} (val, {run['agent'].nunique()} agents)" if i == 0 else None,
                )  # fmt: skip
        same = _run_label(curves, [k for k in keys if k not in varying])
        title = textwrap.fill((same + ": " if same else "") + " vs ".join(labels), 70)
        ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("training episodes per agent")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
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
