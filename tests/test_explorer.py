"""The explorer (collab.explorer, notebooks/explore.ipynb) driven without a browser, the per-round
callback and Stop of run_experiment, reuse of a finished out_dir, the compare plot, and the notebooks
leaving a repository's ``git status`` clean whatever the working directory."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY

from collab import ConfigError, ExperimentConfig, RunStopped, run_experiment
from collab.explorer import Explorer, LiveRun, copy_matrix, run_summary, varying_columns
from collab.results import RESULT_FILES, is_complete_run
from collab.run_plots import plot_learning_curves

RUN = {**TINY, "n_agents": 3, "episodes_per_agent": 6}  # 3 rounds of 2 episodes per agent


def test_callback_sees_every_round_and_the_shares(tmp_path):
    seen = []
    live = LiveRun(on_update=lambda lr: seen.append((lr.rounds, len(lr.curves), len(lr.sharing))))
    cfg = ExperimentConfig(strategy="collaborative", out_dir=str(tmp_path / "run"), **RUN)
    result = run_experiment(cfg, progress=False, on_round=live)
    assert [s[:2] for s in seen] == [(1, 3), (2, 6), (3, 9)]  # the curves grow by n rows a round
    per_round = result.sharing.groupby("round").size().reindex([1, 2, 3], fill_value=0).cumsum()
    assert [s[2] for s in seen] == per_round.tolist()  # the round's shares, as they happen
    pd.testing.assert_frame_equal(
        live.curves.drop(columns="wall_time_s"), result.curves.drop(columns="wall_time_s")
    )
    pd.testing.assert_frame_equal(live.sharing, result.sharing)


def test_stop_ends_at_a_round_boundary_and_writes_nothing(tmp_path):
    out = tmp_path / "run"

    def stop_after_two(lr: LiveRun) -> None:
        if lr.rounds == 2:
            lr.stop()

    live = LiveRun(on_update=stop_after_two)
    cfg = ExperimentConfig(strategy="collaborative", out_dir=str(out), **RUN)
    with pytest.raises(RunStopped, match="stopped after round 2; no result was written") as stopped:
        run_experiment(cfg, progress=False, on_round=live)
    assert stopped.value.round == 2 and sorted(stopped.value.curves["round"].unique()) == [1, 2]
    assert not out.exists() or not any(out.iterdir())


def test_explorer_stop_from_the_panel_in_a_background_thread(tmp_path):
    """Train runs in a thread; Stop (pressed here from the redraw after round 1, so the test controls
    the moment) ends the run at that round's end: no result, nothing written, Train usable again."""
    ex = Explorer(**{**RUN, "env_id": "CartPole-v1", "out_dir": str(tmp_path / "explore")})
    drawn = []
    redraw = ex.redraw

    def redraw_then_stop() -> None:
        redraw()
        drawn.append(ex._current.rounds if ex._current else None)
        ex.stop_button.click()

    ex.redraw = redraw_then_stop
    ex.train_button.click()
    ex.wait()
    assert drawn == [1] and ex.results == {}
    assert "stopped after round 1" in ex.status.value
    assert not ex.train_button.disabled and ex.stop_button.disabled
    assert not list((tmp_path / "explore").rglob("config.json"))


def test_explorer_trains_compares_and_fills_the_panel(tmp_path):
    ex = Explorer(**{**RUN, "compare_independent": True, "out_dir": str(tmp_path / "explore")})
    rounds = []
    redraw = ex.redraw
    ex.redraw = lambda: (redraw(), rounds.append(ex._current.rounds if ex._current else "end"))
    results = ex.train(block=True)
    assert list(results) == ["collaborative_3", "independent_3"]
    assert rounds == [1, 2, 3, 3, 1, 2, 3, 3]  # after every round of each run, and once more at its end
    for r in results.values():
        assert is_complete_run(Path(ex.configs[r.final["setup"].iloc[0]].out_dir)) and not r.reused
    assert all(len(img.value) > 1000 for img in ex.images.values())  # PNGs drawn
    curves = ex.figures()["curves"].axes[0]
    assert len(curves.lines) == 6  # one line per run and agent
    assert ex.watch_run.options == ("collaborative_3", "independent_3")
    assert ex.watch_agent.options == ("selected", 0, 1, 2)
    assert "collaborative_3" in ex.status.value and "shares" in ex.status.value
    again = ex.train(block=True)  # the same settings: loaded, not trained again
    assert all(r.reused for r in again.values())


def test_explorer_bad_settings_one_message_nothing_written(tmp_path):
    with pytest.raises(ConfigError, match="n_agents=0 is not allowed"):
        Explorer(n_agents=0, out_dir=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match=r"explorer settings=\['agents'\]"):
        Explorer(agents=3)
    ex = Explorer(**{**RUN, "out_dir": str(tmp_path / "x")})
    ex.controls["lam"].value = 0.5
    assert ex.train() == {}
    assert "lam=0.5 is not allowed" in ex.status.value and "color:#b00" in ex.status.value
    with pytest.raises(ConfigError, match="bad setting: lam=0.5"):
        ex.train(block=True)
    assert not (tmp_path / "x").exists()


def test_same_out_dir_reused_other_config_refused(tmp_path):
    out = tmp_path / "run"
    cfg = ExperimentConfig(strategy="collaborative", out_dir=str(out), **RUN)
    first = run_experiment(cfg, progress=False)
    before = {f: (out / f).read_bytes() for f in RESULT_FILES}
    again = run_experiment(cfg, progress=False)
    assert again.reused and not first.reused
    pd.testing.assert_frame_equal(again.final, first.final)
    with pytest.raises(
        ConfigError, match=r"already holds a complete run with other settings \(lam: 1.0 there, 1.1 here\)"
    ):
        run_experiment(ExperimentConfig(strategy="collaborative", out_dir=str(out), **{**RUN, "lam": 1.1}))
    assert {f: (out / f).read_bytes() for f in RESULT_FILES} == before  # nothing overwritten


def _curves(setup: str, agents: int, shift: float) -> pd.DataFrame:
    rows = [
        {"env_id": "CartPole-v1", "setup": setup, "seed": 0, "agent": a, "round": r, "episode": 10 * r + a,
         "val_return": shift + r + a, "train_return": shift + r}
        for a in range(agents) for r in (1, 2, 3)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_compare_plot_one_line_per_run_and_agent():
    both = pd.concat([_curves("collaborative_3", 3, 0.0), _curves("independent_3", 3, 100.0)])
    ax = plot_learning_curves(both).axes[0]
    assert len(ax.lines) == 6
    got = sorted((tuple(line.get_xdata()), tuple(line.get_ydata())) for line in ax.lines)
    want = sorted(
        (tuple(10 * r + a for r in (1, 2, 3)), tuple(s + r + a for r in (1, 2, 3)))
        for s in (0.0, 100.0) for a in range(3)
    )  # fmt: skip
    assert got == want  # no line mixes the two runs
    assert ax.get_title() == "CartPole-v1 seed 0: collaborative_3 vs independent_3"
    one = plot_learning_curves(_curves("collaborative_3", 2, 0.0)).axes[0]
    assert len(one.lines) == 4  # one run: validation and training line per agent


def test_summary_matrix_and_trimmed_share_table():
    sharing = pd.DataFrame(
        {"env_id": ["A"] * 3, "strategy": ["collaborative"] * 3, "n_agents": [3] * 3, "seed": [0] * 3,
         "setup": ["c3"] * 3, "round": [1, 1, 2], "episode": [10, 10, 20], "source": [2, 2, 0],
         "target": [0, 1, 2], "ucb_source": [1.0, 1.0, 2.0]}
    )  # fmt: skip
    assert list(varying_columns(sharing).columns) == ["round", "episode", "source", "target", "ucb_source"]
    m = copy_matrix(sharing, 3)
    assert m.to_numpy().tolist() == [[0, 0, 1], [0, 0, 0], [1, 1, 0]]

    class R:
        curves = pd.DataFrame(
            {"round": [1, 1, 2, 2], "agent": [0, 1, 0, 1], "episode": [10, 11, 20, 23],
             "total_episodes": [21, 21, 43, 43], "val_return": [-5.0, -4.0, -3.25, -2.0]}
        )  # fmt: skip
        final = pd.DataFrame(
            {"env_id": ["A", "A"], "setup": ["c2", "c2"], "seed": [0, 0], "selected_agent": [1, 1],
             "selected_round": [2, 2], "return": [-1.0, -2.0]}
        )  # fmt: skip
        sharing = pd.DataFrame({"round": [1]})
        reused = False

    assert run_summary(R) == (
        "A c2 seed 0: 43 training episodes (20 or more per agent, 2 rounds); last validation returns "
        "-3.2, -2.0; 1 shares; selected agent 1 (round 2) scored -1.5 over 2 evaluation episodes"
    )


def _repo_copy(tmp_path: Path) -> Path:
    """A git repository with this one's .gitignore and notebooks, everything committed."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "notebooks", repo / "notebooks", ignore=shutil.ignore_patterns("runs", ".ipynb*"))
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "copy"], check=True)
    return repo


@pytest.mark.parametrize("cwd", ["notebooks", "."])
def test_notebooks_from_any_folder_leave_git_status_clean(papermill, tmp_path, cwd):
    """explore.ipynb and train.ipynb with their default out_dir, run from notebooks/ and from the
    repository root: the runs land in git-ignored folders and nothing else is written."""
    repo = _repo_copy(tmp_path)
    small = {**TINY, "n_agents": 2}
    for name, params in [("train", small), ("explore", {**small, "compare_independent": True})]:
        r = papermill(name, params, root=repo, cwd=repo / cwd)
        assert r.returncode == 0, r.stderr[-3000:]
    runs = repo / cwd / "runs"
    assert is_complete_run(runs / "train")
    assert len(list((runs / "explore").rglob("config.json"))) == 2
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--ignored=no"], capture_output=True, text=True
    )
    assert status.stdout == ""
    assert np.isfinite(pd.read_csv(runs / "train" / "final.csv")["return"]).all()
