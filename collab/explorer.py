"""The interactive explorer of ``notebooks/explore.ipynb``: controls, live curves, Train and Stop.

The notebook only wires this module to the screen; everything it shows comes from functions here,
which the tests drive without a browser:

* :func:`explorer_configs` turns the controls' values into the runs to train (the chosen setup and,
  with ``compare_independent``, an independent population of the same budget), each in its own
  folder below ``out_dir`` named after its settings, so that changed settings never overwrite an
  earlier run and identical ones reuse it (:func:`collab.run_experiment`).
* :class:`LiveRun` is the ``on_round`` callback of :func:`collab.run_experiment`: it keeps the rows
  of the rounds trained so far and stops the run at the next round boundary when asked.
* :class:`Explorer` is the panel (ipywidgets): environment, strategy, population size, lambda, c,
  rule and budget; Train (in a background thread, so that Stop stays clickable) and Stop; learning
  curves, the share timeline and a who-copied-whom matrix redrawn after every round; the final
  evaluation; and a player for any agent of the runs.
* :func:`run_summary` and :func:`varying_columns` make a saved notebook readable without widgets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import inspect
import io
import json
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from collab.config import ConfigError, ExperimentConfig
from collab.paper import ENVS as PAPER_ENVS
from collab.results import KEY_COLUMNS, setup_name
from collab.run_plots import plot_learning_curves, plot_share_timeline
from collab.sharing import RULES
from collab.strategies import get_strategy, setting_names, strategy_names


def _setup_label(strategy: str, n_agents: int, lam: float, c: float, rule: str) -> str:
    base = setup_name(strategy, n_agents) if strategy != "independent" else f"independent_{n_agents}"
    if strategy == "collaborative" and (lam, c, rule) != (1.0, 1.5, "literal"):
        base += f"_lam{lam:g}_c{c:g}_{rule}"
    return base


def explorer_configs(
    env_id: str = "Acrobot-v1",
    strategy: str = "collaborative",
    n_agents: int = 4,
    seed: int = 0,
    episodes_per_agent: int = 100,
    validate_every: int = 10,
    val_episodes: int = 3,
    eval_episodes: int = 5,
    c: float = 1.5,
    lam: float = 1.0,
    rule: str = "literal",
    max_episode_steps: int | None = None,
    compare_independent: bool = False,
    out_dir: str = "runs/explore",
) -> dict[str, ExperimentConfig]:
    """The validated runs the explorer trains, by name (the setup, and ``independent_<n>`` with
    ``compare_independent``). Each lands in ``out_dir/<env>/<setup>/seed<k>-<digest>``, the digest
    of its settings. A bad value raises :class:`collab.ConfigError` naming it; nothing is written."""
    from collab.spaces import check_experiment

    base = ExperimentConfig(  # the independent baseline: no c, lambda or rule of its own
        env_id=env_id,
        strategy="independent",
        n_agents=n_agents,
        seed=seed,
        episodes_per_agent=episodes_per_agent,
        validate_every=validate_every,
        val_episodes=val_episodes,
        eval_episodes=eval_episodes,
        max_episode_steps=max_episode_steps,
    )
    ruled = strategy in strategy_names() and "rule" in setting_names(strategy)  # a UCB rule to pass
    settings = {"rule": rule} if ruled else None
    chosen = dataclasses.replace(base, strategy=strategy, c=c, lam=lam, settings=settings)
    runs = {_setup_label(strategy, n_agents, lam, c, rule): chosen}
    if compare_independent and strategy != "independent":
        runs[f"independent_{n_agents}"] = base
    out: dict[str, ExperimentConfig] = {}
    for name, cfg in runs.items():
        settings = {k: v for k, v in cfg.validate(check_out_dir=False).to_dict().items() if k != "out_dir"}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:6]
        folder = f"{out_dir}/{env_id}/{name}/seed{seed}-{digest}"
        cfg = dataclasses.replace(cfg, setup=name, out_dir=folder).validate()
        check_experiment(cfg)
        out[name] = cfg
    return out


class LiveRun:
    """The ``on_round`` callback of :func:`collab.run_experiment` for a live view.

    After every round it holds the run's ``curves`` so far and every share event (``sharing``),
    calls ``on_update(self)``, and returns True (stop at this round boundary) once :meth:`stop`
    has been called; the run then raises :class:`collab.RunStopped` and writes nothing."""

    def __init__(self, on_update: Callable[[LiveRun], None] | None = None) -> None:
        self.curves = pd.DataFrame()
        self.sharing = pd.DataFrame()
        self.rounds = 0
        self.episodes: list[int] = []
        self.budget = 0
        self.on_update = on_update
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the run to stop at the end of the round it is training."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def __call__(self, report: Any) -> bool:
        self.rounds, self.episodes, self.budget = report.round, report.episodes, report.budget
        self.curves = report.curves
        if len(report.shares):
            self.sharing = pd.concat([self.sharing, report.shares], ignore_index=True)
        if self.on_update is not None:
            self.on_update(self)
        return self.stopping


def run_summary(result: Any) -> str:
    """One line on a finished run: its episodes, the last round's validation returns, its shares and
    the selected agent's evaluation (readable in a saved notebook, without widgets)."""
    curves, final = result.curves, result.final
    last = curves[curves["round"] == curves["round"].max()].sort_values("agent")
    first = final.iloc[0]
    vals = ", ".join(f"{v:.1f}" for v in last["val_return"])
    rounds, least = int(curves["round"].max()), int(last["episode"].min())
    return (
        f"{first['env_id']} {first['setup']} seed {first['seed']}: {int(last['total_episodes'].max())} "
        f"training episodes ({least} or more per agent, {rounds} rounds); "
        f"last validation returns {vals}; {len(result.sharing)} shares; selected agent "
        f"{first['selected_agent']} (round {first['selected_round']}) scored {final['return'].mean():.1f} "
        f"over {len(final)} evaluation episodes" + (" (reused from an earlier run)" if result.reused else "")
    )


def varying_columns(df: pd.DataFrame, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """``df`` without the run-key columns (:data:`collab.results.KEY_COLUMNS`) that hold one value
    (keeping ``keep``); an empty frame keeps its non-constant schema columns."""
    drop = [c for c in KEY_COLUMNS if c in df.columns and c not in keep and df[c].nunique() <= 1]
    return df.drop(columns=drop)


def copy_matrix(sharing: pd.DataFrame, n_agents: int) -> pd.DataFrame:
    """Copies per (source, target) pair: rows = source (copied from), columns = target."""
    if sharing.empty:
        return pd.DataFrame(0, index=range(n_agents), columns=range(n_agents))
    m = pd.crosstab(sharing["source"], sharing["target"])
    return m.reindex(index=range(n_agents), columns=range(n_agents), fill_value=0)


def plot_copy_matrix(counts: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """The who-copied-whom matrix (:func:`copy_matrix`) as an annotated heatmap."""
    n = len(counts)
    ax = ax if ax is not None else _axes((2.6 + 0.35 * n, 2.2 + 0.35 * n))
    fig = ax.figure
    values = counts.to_numpy()
    ax.imshow(values, cmap="Blues", vmin=0)
    dark = max(values.max(), 1) / 2  # white digits on the darker half of the colour scale
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > dark else "black")
    ax.set(xticks=range(n), yticks=range(n), xlabel="target (received)", ylabel="source (copied from)")
    ax.set_title(f"parameter copies ({int(counts.to_numpy().sum())})", fontsize=10)
    return fig


def _axes(figsize: tuple[float, float] = (5.2, 3.4)) -> Axes:
    """Axes of a figure outside pyplot (safe to draw from the training thread)."""
    return Figure(figsize=figsize, layout="constrained").subplots()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


class Explorer:
    """The explorer's panel: controls, Train/Stop, live figures, final evaluation and a player.

    ``Explorer(**defaults)`` takes the keyword arguments of :func:`explorer_configs` as the controls'
    starting values; ``display(explorer.panel)`` shows it; :meth:`train` runs what the controls say
    (``block=True``: in this thread, as Papermill does; else in a background thread)."""

    def __init__(self, **defaults: Any) -> None:
        import ipywidgets as w

        known = inspect.signature(explorer_configs).parameters
        unknown = sorted(set(defaults) - set(known))
        if unknown:
            raise ConfigError(f"explorer settings={unknown} are not allowed: names among {list(known)}")
        d = {**{k: p.default for k, p in known.items()}, **defaults}
        explorer_configs(**d)  # a bad starting value: one ConfigError here, before any widget
        self.out_dir = d["out_dir"]
        self.max_episode_steps = d["max_episode_steps"]
        self.controls = {
            "env_id": w.Combobox(
                value=d["env_id"], options=list(PAPER_ENVS), ensure_option=False, description="environment"
            ),
            "strategy": w.Dropdown(value=d["strategy"], options=strategy_names(), description="strategy"),
            "n_agents": w.IntText(value=d["n_agents"], description="agents n"),
            "lam": w.FloatText(value=d["lam"], step=0.01, description="lambda"),
            "c": w.FloatText(value=d["c"], step=0.1, description="c"),
            "rule": w.Dropdown(value=d["rule"], options=list(RULES), description="rule"),
            "episodes_per_agent": w.IntText(value=d["episodes_per_agent"], description="episodes k"),
            "validate_every": w.IntText(value=d["validate_every"], description="round V"),
            "val_episodes": w.IntText(value=d["val_episodes"], description="val. eps"),
            "eval_episodes": w.IntText(value=d["eval_episodes"], description="eval. eps"),
            "seed": w.IntText(value=d["seed"], description="seed"),
            "compare_independent": w.Checkbox(value=d["compare_independent"], description="also independent"),
        }
        self.train_button = w.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        self.progress = w.IntProgress(value=0, min=0, max=1, description="rounds")
        self.status = w.HTML("Set the controls and press Train.")
        self.images = {name: w.Image(format="png") for name in ("curves", "timeline", "matrix")}
        self.final_box = w.HTML()
        self.watch_run = w.Dropdown(description="run", options=[])
        self.watch_agent = w.Dropdown(description="agent", options=["selected"])
        self.watch_button = w.Button(description="Watch", icon="eye", disabled=True)
        self.watch_out = w.Output()
        self.watch_run.observe(lambda _: self._agents_of_run(), names="value")
        self.watch_button.on_click(lambda _: self._watch())
        grid = w.GridBox(
            list(self.controls.values()), layout=w.Layout(grid_template_columns="repeat(3, 320px)")
        )
        self.panel = w.VBox(
            [
                grid,
                w.HBox([self.train_button, self.stop_button, self.progress]),
                self.status,
                w.HBox([self.images["curves"], self.images["timeline"], self.images["matrix"]]),
                self.final_box,
                w.HBox([self.watch_run, self.watch_agent, self.watch_button]),
                self.watch_out,
            ]
        )
        self.configs: dict[str, ExperimentConfig] = {}
        self.results: dict[str, Any] = {}
        self.live: dict[str, LiveRun] = {}
        self._current: LiveRun | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        for control in self.controls.values():
            control.style.description_width = "110px"
        self.redraw()  # empty axes until the first round

    def values(self) -> dict[str, Any]:
        """The controls' values, as keyword arguments of :func:`explorer_configs`."""
        v = {name: c.value for name, c in self.controls.items()}
        return {**v, "max_episode_steps": self.max_episode_steps, "out_dir": self.out_dir}

    def train(self, block: bool = False) -> dict[str, Any]:
        """Train the runs the controls describe. ``block=False`` returns at once and trains in a
        background thread (Stop works); ``block=True`` trains here. Returns the finished results
        by run name (filled as runs finish). A bad control value shows one message in the status line
        (and, with ``block=True``, raises :class:`collab.ConfigError`)."""
        if self._thread is not None and self._thread.is_alive():
            self._say("A run is training; press Stop first.", error=True)
            return self.results
        try:
            self.configs = explorer_configs(**self.values())
        except ConfigError as err:
            self._say(f"bad setting: {err}", error=True)
            if block:
                raise ConfigError(f"bad setting: {err}") from None
            return self.results
        self.results, self.live, self._stopping = {}, {}, False
        self.final_box.value = ""  # nothing of an earlier training stays on show
        self.watch_button.disabled = True
        self.watch_run.options = []
        self.watch_out.clear_output()
        if block:
            self._train_all()
        else:
            self._thread = threading.Thread(target=self._train_all, daemon=True)
            self._thread.start()
        return self.results

    def stop(self) -> None:
        """Stop the training at the end of the current round (that run writes nothing; a run that
        has not started yet does not start)."""
        self._stopping = True
        if self._current is not None:
            self._current.stop()
        self._say("stopping at the end of this round ...")

    def wait(self) -> None:
        """Wait for a background training to end."""
        if self._thread is not None:
            self._thread.join()

    def _train_all(self) -> None:
        from collab.experiment import RunStopped, run_experiment

        self.train_button.disabled, self.stop_button.disabled = True, False
        try:
            for name, cfg in self.configs.items():
                if self._stopping:
                    self._say(f"{name}: not started (Stop); nothing was written.")
                    return
                live = self.live[name] = self._current = LiveRun(on_update=lambda _: self.redraw())
                self.progress.max = -(-get_strategy(cfg.strategy).budget(cfg) // cfg.validate_every)
                self.progress.value = 0
                self._say(f"training {name} ({cfg.out_dir}) ...")
                try:
                    result = run_experiment(cfg, progress=False, on_round=live)
                except RunStopped as stopped:
                    self._say(f"{name}: {stopped}.")
                    return
                self.results[name] = result
                live.curves, live.sharing = result.curves, result.sharing
                self.redraw()
            self._say("<br>".join(html.escape(run_summary(r)) for r in self.results.values()))
            self.final_box.value = final_table(self.results).to_html()
            self.watch_run.options = list(self.results)
            self.watch_run.value = next(iter(self.results))
            self._agents_of_run()
            self.watch_button.disabled = False
        except Exception as err:  # shown in the panel: a thread's error would go unseen
            self._say(f"{type(err).__name__}: {err}", error=True)
            if self._thread is None or threading.current_thread() is not self._thread:
                raise
        finally:
            self.train_button.disabled, self.stop_button.disabled = False, True
            self._current = None

    def figures(self) -> dict[str, Figure]:
        """The live figures: learning curves of every run so far, and the share timeline and the
        copy matrix of the first (the chosen setup)."""
        curves = [lr.curves for lr in self.live.values() if len(lr.curves)]
        first = next(iter(self.configs.values()), None)
        n = get_strategy(first.strategy).population(first) if first is not None else self._n_from_controls()
        sharing = next(iter(self.live.values())).sharing if self.live else pd.DataFrame()
        data = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
        fig_c = plot_learning_curves(data, ax=_axes())
        fig_t = plot_share_timeline(sharing, n_agents=n, ax=_axes())
        fig_m = plot_copy_matrix(copy_matrix(sharing, n))
        return {"curves": fig_c, "timeline": fig_t, "matrix": fig_m}

    def _n_from_controls(self) -> int:
        n = self.controls["n_agents"].value
        return n if isinstance(n, int) and 1 <= n <= 64 else 1

    def redraw(self) -> None:
        """Redraw the live figures and the round counter (after every round)."""
        if self._current is not None:
            self.progress.value = self._current.rounds
        for name, fig in self.figures().items():
            self.images[name].value = _png(fig)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.value = f'<span style="color:#b00">{html.escape(text)}</span>' if error else text

    def _agents_of_run(self) -> None:
        cfg = self.configs.get(self.watch_run.value)
        n = 0 if cfg is None else get_strategy(cfg.strategy).population(cfg)
        self.watch_agent.options = ["selected", *range(n)]

    def _watch(self) -> None:
        from IPython.display import display

        from collab.policy import watch

        self.watch_out.clear_output()
        with self.watch_out:
            display(watch(self.configs[self.watch_run.value].out_dir, agent=self.watch_agent.value))


def final_table(results: dict[str, Any]) -> pd.DataFrame:
    """Mean, std and count of each run's final evaluation returns, by run name."""
    rows = []
    for name, r in results.items():
        f = r.final
        rows.append(
            {
                "run": name,
                "selected agent": int(f["selected_agent"].iloc[0]),
                "selected round": int(f["selected_round"].iloc[0]),
                "mean return": f["return"].mean(),
                "std": f["return"].std(),
                "episodes": len(f),
            }
        )
    return pd.DataFrame(rows).set_index("run").round(1)
