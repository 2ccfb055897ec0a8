"""notebooks/train.ipynb, explore.ipynb and watch.ipynb: clean, parameterized, and run through Papermill."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import TINY

from collab.results import SCHEMA, is_complete_run, read_csv_checked, setup_name

REQUIRED = [
    "env_id",
    "strategy",
    "n_agents",
    "seed",
    "episodes_per_agent",
    "validate_every",
    "eval_episodes",
    "c",
    "lam",
    "out_dir",
]
OPTIONAL = [
    "val_episodes",
    "max_episode_steps",
    "backend",
    "device",
    "torch_threads",
    "env_threads",
    "numerics",
    "rule",
    "source_choice",
    "stats_after_copy",
    "reward_estimate",
    "pbt_quantile",
    "pbt_perturb",
    "reeval_episodes",
    "reselect_top",
    "reselect_episodes",
    "checkpoint_every",
    "deadline",
    "setup",
    "settings",
    "plugins",
    "ppo",
]


@pytest.mark.parametrize("name", ["train", "explore", "watch"])
def test_committed_notebook_is_clean(root: Path, name: str) -> None:
    nb = nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}.ipynb cell {i} has outputs"
            assert cell.execution_count is None, f"{name}.ipynb cell {i} has an execution count"
        assert "papermill" not in cell.metadata, f"{name}.ipynb cell {i} carries papermill metadata"
    assert "papermill" not in nb.metadata
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}.ipynb needs exactly one cell tagged 'parameters'"


def test_train_parameters_are_typed_and_commented(root: Path) -> None:
    params = papermill.inspect_notebook(str(root / "notebooks" / "train.ipynb"))
    assert list(params) == REQUIRED + OPTIONAL
    for name, p in params.items():
        assert p["help"], f"parameter {name} has no comment"
        assert p["inferred_type_name"] != "None", f"parameter {name} has no type"
    assert params["c"]["default"] == "1.5"
    assert params["lam"]["default"] == "1.0"
    assert params["max_episode_steps"]["default"] == "None"
    assert params["backend"]["default"] == '"auto"'
    assert params["numerics"]["default"] == '"native"' and params["ppo"]["default"] == "None"
    assert params["strategy"]["default"].strip('"') in ("independent", "sequential", "collaborative")


def test_help_notebook_lists_parameters(root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "papermill", "--help-notebook", str(root / "notebooks" / "train.ipynb")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in REQUIRED + OPTIONAL:
        assert f"  {name}: " in out, f"{name} missing from --help-notebook:\n{out}"
    assert "UCB exploration constant" in out  # the comments are the help text
    assert "independent | sequential | collaborative" in out


def test_every_parameter_reaches_the_config(papermill, tmp_path: Path) -> None:
    """Each parameter lands in config.json: the fields as they are, a strategy's settings (given as
    parameters of their own, as earlier versions had them, or as the ``settings`` mapping) under
    ``settings``. Two runs: collaborative training, then PBT (whose settings a collaborative run
    refuses unless they hold their defaults)."""
    values = {
        "env_id": "Acrobot-v1",
        "strategy": "collaborative",
        "n_agents": 3,
        "seed": 7,
        "episodes_per_agent": 4,
        "validate_every": 2,
        "eval_episodes": 3,
        "c": 2.5,
        "lam": 1.25,
        "out_dir": str(tmp_path / "run"),
        "val_episodes": 2,
        "max_episode_steps": 15,
        "backend": "gymnasium",
        "device": "cpu",
        "torch_threads": 2,
        "env_threads": 2,
        "numerics": "native",
        "rule": "sign_robust",
        "source_choice": "random",
        "stats_after_copy": "reset",
        "reward_estimate": None,
        "pbt_quantile": None,
        "pbt_perturb": None,
        "reeval_episodes": 2,
        "reselect_top": 2,
        "reselect_episodes": 1,
        "checkpoint_every": 1,
        "deadline": None,  # a run's, not the configuration's (no SLURM job here)
        "setup": "my_setup",
        "settings": {"reward_estimate": "last_round"},
        "plugins": None,
        "ppo": {"ent_coef": 0.02, "num_envs": 2},
    }
    assert set(values) == set(REQUIRED + OPTIONAL)
    r = papermill("train", values)
    assert r.returncode == 0, r.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    settings = {"rule": "sign_robust", "source_choice": "random", "stats_after_copy": "reset"}
    assert config["settings"] == {**settings, "reward_estimate": "last_round"}
    for name, value in values.items():
        if name in (
            *settings,
            "settings",
            "plugins",
            "reward_estimate",
            "pbt_quantile",
            "pbt_perturb",
            "deadline",
        ):
            continue
        got = config[name]
        if name == "ppo":  # the resolved settings: the overrides over the environment's defaults
            got = {k: got[k] for k in value}
        assert got == value, f"{name}: notebook got {value!r}, config.json has {config[name]!r}"
    pbt = {
        **TINY,
        "strategy": "pbt",
        "pbt_quantile": 0.5,
        "pbt_perturb": False,
        "out_dir": str(tmp_path / "pbt"),
    }
    r = papermill("train", pbt)
    assert r.returncode == 0, r.stderr[-3000:]
    config = json.loads((tmp_path / "pbt" / "config.json").read_text())
    assert config["settings"] == {"pbt_quantile": 0.5, "pbt_perturb": False}


def test_another_strategys_setting_is_refused(papermill, tmp_path: Path) -> None:
    """A setting the run's strategy does not have would be silently ignored: one clear error."""
    out = tmp_path / "run"
    r = papermill("train", {**TINY, "strategy": "independent", "rule": "sign_robust", "out_dir": str(out)})
    assert r.returncode != 0
    assert "settings=['rule'] are not allowed with strategy='independent'" in r.stdout + r.stderr
    assert not out.exists()


@pytest.mark.parametrize("strategy", ["independent", "sequential", "collaborative"])
def test_each_strategy_writes_valid_results(papermill, tmp_path: Path, strategy: str) -> None:
    out = tmp_path / "run"
    params = {**TINY, "strategy": strategy, "seed": 1, "out_dir": str(out)}
    r = papermill("train", params)
    assert r.returncode == 0, r.stderr[-3000:]
    assert is_complete_run(out)
    frames = {name: read_csv_checked(out / name) for name in SCHEMA}  # raises on a missing column
    n = params["n_agents"]
    for name, df in frames.items():
        if df.empty:
            continue
        assert set(df["env_id"]) == {"CartPole-v1"}, name
        assert set(df["strategy"]) == {strategy}, name
        assert set(df["n_agents"]) == {n}, name
        assert set(df["seed"]) == {1}, name
        assert set(df["setup"]) == {setup_name(strategy, n)}, name
    curves, final, sharing = frames["curves.csv"], frames["final.csv"], frames["sharing.csv"]
    assert not curves.empty
    assert curves["agent"].nunique() == (1 if strategy == "sequential" else n)
    assert len(final) == params["eval_episodes"]
    if strategy != "collaborative":
        assert sharing.empty
    # the executed notebook shows the curves (and, when there are share events, their timeline)
    executed = nbformat.read(tmp_path / "train.out.ipynb", as_version=4)
    images = [
        o
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 1
    # and ends with the selected agent playing an episode (an inline HTML5 video), without warnings
    (watch_cell,) = [c for c in executed.cells if c.cell_type == "code" and "watch(" in c.source]
    assert _video_shown(watch_cell)


def _video_shown(cell) -> bool:
    """The cell shows an embedded video and writes nothing to stderr (no warnings)."""
    assert not [o for o in cell.outputs if o.get("name") == "stderr"], cell.outputs
    return any("<video" in o.get("data", {}).get("text/html", "") for o in cell.outputs)


def test_bad_input_stops_with_a_clear_message(papermill, tmp_path: Path) -> None:
    """One kernel: a bad value stops the validation cell; every other bad value is checked through the
    Python entry point (tests/test_strategies.py), which the notebook calls."""
    out = tmp_path / "run"
    r = papermill("train", {**TINY, "strategy": "collaborative", "out_dir": str(out), "lam": 0.5})
    assert r.returncode != 0
    assert "ConfigError: bad parameter: lam=0.5 is not allowed" in r.stderr, r.stderr[-3000:]
    assert not out.exists(), f"files written despite bad input: {list(out.rglob('*'))}"
    _assert_stopped_at_validation(tmp_path / "train.out.ipynb")


def _assert_stopped_at_validation(executed_path: Path) -> None:
    """The cell that failed is the validation cell; training never started."""
    nb = nbformat.read(executed_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    failed = [c for c in code if any(o.get("output_type") == "error" for o in c.outputs)]
    assert len(failed) == 1 and ".validate()" in failed[0].source
    train_cell = next(c for c in code if "run_experiment(cfg" in c.source)
    assert train_cell.execution_count is None


def test_explore_notebook_runs(papermill, tmp_path: Path) -> None:
    params = {
        "env_id": "CartPole-v1",
        "n_agents": 3,
        "episodes_per_agent": 4,
        "validate_every": 2,
        "val_episodes": 1,
        "eval_episodes": 2,
        "max_episode_steps": 20,
        "compare_independent": True,
        "out_dir": str(tmp_path / "explore"),
    }
    r = papermill("explore", params)
    assert r.returncode == 0, r.stderr[-3000:]
    for setup in ("collaborative_3", "independent_3"):  # one folder per setting: seed0-<digest>
        (run,) = (tmp_path / "explore" / "CartPole-v1" / setup).glob("seed0-*")
        assert is_complete_run(run)
    executed = nbformat.read(tmp_path / "explore.out.ipynb", as_version=4)
    assert _video_shown(executed.cells[-1])  # the agent picked at the end plays


def test_watch_parameters_are_typed_and_commented(root: Path) -> None:
    params = papermill.inspect_notebook(str(root / "notebooks" / "watch.ipynb"))
    assert list(params) == ["run_dir", "agent", "episodes"]
    for name, p in params.items():
        assert p["help"], f"parameter {name} has no comment"
        assert p["inferred_type_name"] != "None", f"parameter {name} has no type"
    assert params["agent"]["default"] == '"selected"' and params["episodes"]["default"] == "1"
    default = root / "notebooks" / json.loads(params["run_dir"]["default"])
    assert (default / "selected.safetensors").is_file()  # the committed example run has its agents


def test_watch_notebook_shows_an_agent(papermill, tmp_path: Path) -> None:
    from collab import ExperimentConfig, run_experiment

    run = tmp_path / "run"
    cfg = {k: v for k, v in TINY.items() if k != "max_episode_steps"}
    run_experiment(ExperimentConfig(**cfg, max_episode_steps=20, out_dir=str(run)), progress=False)
    r = papermill("watch", {"run_dir": str(run), "agent": "1", "episodes": 2})
    assert r.returncode == 0, r.stderr[-3000:]
    executed = nbformat.read(tmp_path / "watch.out.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert "agent=1, agent_index=1" in "".join(o.get("text", "") for o in code[-2].outputs)
    assert _video_shown(code[-1])
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [
            "config.json",
            "curves.csv",
            "final.csv",
            "sharing.csv",
            "selected.safetensors",
            "population.safetensors",
        ]
    )  # watching writes nothing into the run folder
