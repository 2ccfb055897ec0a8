"""A strategy defined in this file alone, registered and run by name: through ``run_experiment``,
through ``train.ipynb`` with Papermill (its settings as one mapping, this module as a plug-in), and
through the workflow's grid check.

The toy strategy: every round the ``worst_copies`` worst agents (by the round's mean training return; an
agent that ended no episode in the round has none and does not copy) each copy an agent drawn
uniformly from the others.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY

from collab import ConfigError, ExperimentConfig, run_experiment
from collab.results import SHARE_SCORE_COLUMNS, read_csv_checked
from collab.strategies import Decision, RoundInfo, Strategy, register, shares, strategy_names


@dataclass(frozen=True)
class WorstCopiesSettings:
    worst_copies: int = 1
    """How many of the worst agents copy every round."""

    def validate(self) -> None:
        if (
            not isinstance(self.worst_copies, int)
            or isinstance(self.worst_copies, bool)
            or self.worst_copies < 1
        ):
            raise ConfigError(f"worst_copies={self.worst_copies!r} is not allowed: an integer >= 1")


@register
class WorstCopies(Strategy):
    name = "toy_worst_copies"
    Settings = WorstCopiesSettings
    shares = True
    score_columns = ("score_source", "score_target")

    def __init__(self, cfg, settings, n_agents, hyperparameters, seed):
        super().__init__(cfg, settings, n_agents, hyperparameters, seed)
        self.rng = np.random.default_rng(seed)

    @classmethod
    def check(cls, cfg, settings):
        if settings.worst_copies >= cfg.n_agents:
            raise ConfigError(
                f"worst_copies={settings.worst_copies!r} is not allowed: fewer than n_agents={cfg.n_agents}"
            )

    def decide(self, info: RoundInfo) -> Decision:
        scores = np.array([np.mean(r) if r else np.nan for r in info.train_returns])
        src = np.arange(self.n)
        events = []
        scored = [j for j in np.argsort(scores, kind="stable") if not np.isnan(scores[j])]  # NaN sorts last
        for j in scored[: self.settings.worst_copies]:
            others = [a for a in range(self.n) if a != j]
            i = int(self.rng.choice(others))
            src[j] = i
            events.append(
                {"round": info.round, "episode": info.episode, "source": i, "target": int(j),
                 "score_source": float(scores[i]), "score_target": float(scores[j])}
            )  # fmt: skip
        return Decision(src, events)


RUN = {**TINY, "n_agents": 3, "episodes_per_agent": 6}  # 3 rounds


def test_plugin_registers_and_the_registry_knows_it():
    assert "toy_worst_copies" in strategy_names() and shares("toy_worst_copies")
    with pytest.raises(ValueError, match="already registered"):

        @register
        class Other(Strategy):  # the same name, another class
            name = "toy_worst_copies"


def _check_toy_run(out: Path, copies: int) -> pd.DataFrame:
    sharing = read_csv_checked(out / "sharing.csv")
    curves = read_csv_checked(out / "curves.csv")
    assert list(sharing.columns[-6:]) == [*SHARE_SCORE_COLUMNS, "score_source", "score_target"]
    assert sharing[SHARE_SCORE_COLUMNS].isna().all().all()  # no UCB, no R_hat: empty
    expected = 0
    for rnd, rows in curves.groupby("round"):
        rows = rows.set_index("agent")
        worst = rows["train_return"].dropna().sort_values(kind="stable").index[:copies]
        expected += len(worst)
        events = sharing[sharing["round"] == rnd]
        assert sorted(events["target"]) == sorted(worst)  # the worst copy ...
        assert (events["source"] != events["target"]).all()  # ... another agent
        for e in events.itertuples():
            assert rows.loc[e.target, "copied_from"] == e.source
            assert e.score_target == pytest.approx(rows.loc[e.target, "train_return"])
    assert len(sharing) == expected > 0
    return sharing


def test_plugin_runs_by_name_through_run_experiment(tmp_path):
    cfg = ExperimentConfig(
        strategy="toy_worst_copies", settings={"worst_copies": 2}, out_dir=str(tmp_path / "a"), **RUN
    )
    result = run_experiment(cfg, progress=False)
    sharing = _check_toy_run(tmp_path / "a", copies=2)
    assert result.config["settings"] == {"worst_copies": 2}
    again = run_experiment(dataclasses.replace(cfg, out_dir=str(tmp_path / "b")), progress=False)
    pd.testing.assert_frame_equal(again.sharing, result.sharing)  # its own seeded draws: deterministic
    pd.testing.assert_frame_equal(sharing, read_csv_checked(tmp_path / "b" / "sharing.csv"))


def test_plugin_settings_are_validated(tmp_path):
    base = {**RUN, "strategy": "toy_worst_copies", "out_dir": str(tmp_path / "x")}
    with pytest.raises(ConfigError, match="worst_copies=0 is not allowed: an integer >= 1"):
        run_experiment(ExperimentConfig(**base, settings={"worst_copies": 0}), progress=False)
    with pytest.raises(ConfigError, match="worst_copies=3 is not allowed: fewer than n_agents=3"):
        run_experiment(ExperimentConfig(**base, settings={"worst_copies": 3}), progress=False)
    with pytest.raises(
        ConfigError, match=r"settings=\['rule'\] are not allowed with strategy='toy_worst_copies'"
    ):
        run_experiment(ExperimentConfig(**base, settings={"rule": "sign_robust"}), progress=False)
    assert not (tmp_path / "x").exists()


def test_plugin_runs_through_the_train_notebook(papermill, tmp_path):
    out = tmp_path / "nb"
    params = {**RUN, "strategy": "toy_worst_copies", "settings": {"worst_copies": 1}, "plugins": [__name__]}
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    r = papermill("train", {**params, "out_dir": str(out)}, env={"PYTHONPATH": path})
    assert r.returncode == 0, r.stderr[-3000:]
    _check_toy_run(out, copies=1)
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"] == "toy_worst_copies" and config["settings"] == {"worst_copies": 1}


def test_plugin_in_a_workflow_grid():
    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    try:
        from grid import load_grid
    finally:
        sys.path.pop(0)
    config = {
        "profile": "toy",
        "seeds": [0],
        "plugins": [__name__],
        "setups": {
            "worst2": {"strategy": "toy_worst_copies", "n_agents": 3, "settings": {"worst_copies": 2}}
        },
        "defaults": {k: v for k, v in RUN.items() if k not in ("env_id", "n_agents")},
        "envs": {"CartPole-v1": {}},
    }
    grid = load_grid(config, check_env=False)
    (cell,) = grid.cells
    args = cell.papermill_args("out")
    assert "-y '{settings: {worst_copies: 2}}'" in args and f"-y '{{plugins: [{__name__}]}}'" in args
