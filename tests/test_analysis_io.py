"""collab.analysis.io: loading and writing a profile, population_eval.csv, setups.json, the figures folder."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest
from analysis_helpers import _final
from synthetic import synthetic_results

from collab import analysis as A
from collab.results import SCHEMA, ResultsError

# ---------------------------------------------------------------- loading and writing a profile


def test_load_profile_missing_file_names_it(tmp_path):
    data = synthetic_results(envs=["Acrobot-v1"], setups=["independent"], seeds=[0], rounds=2)
    A.write_profile(data, tmp_path)
    (tmp_path / "final.csv").unlink()
    with pytest.raises(ResultsError, match="final.csv: file not found"):
        A.load_profile("smoke", data_dir=tmp_path)


def test_load_profile_missing_columns_named(tmp_path):
    data = synthetic_results(envs=["Acrobot-v1"], setups=["independent"], seeds=[0], rounds=2)
    A.write_profile(data, tmp_path)
    data.curves.drop(columns=["val_return", "episode"]).to_csv(tmp_path / "curves.csv", index=False)
    with pytest.raises(ResultsError, match=r"curves.csv: missing columns \['episode', 'val_return'\]"):
        A.load_profile("smoke", data_dir=tmp_path)


def test_load_profile_roundtrip_and_root(tmp_path):
    data = synthetic_results(envs=["Acrobot-v1"], setups=["independent", "collaborative_2"], seeds=[0, 1])
    (tmp_path / "pyproject.toml").write_text("")
    A.write_profile(data, tmp_path / "data" / "smoke")
    (tmp_path / "notebooks").mkdir()
    root = A.project_root(tmp_path / "notebooks")
    assert root == tmp_path
    loaded = A.load_profile("smoke", root=root)
    assert len(loaded.curves) == len(data.curves) and len(loaded.sharing) == len(data.sharing)
    assert list(loaded.final.columns[: len(SCHEMA["final.csv"])]) == SCHEMA["final.csv"]


def test_functions_check_columns():
    with pytest.raises(ResultsError, match=r"final.csv: missing columns \['return'\]"):
        A.per_seed_final(_final([("Acrobot-v1", "independent", 0, [1.0])]).drop(columns="return"))


def test_rounded_is_stable_text():
    df = pd.DataFrame({"a": [1.23456, math.nan], "b": ["x", "y"]})
    assert A.rounded(df) == "   a b\n1.23 x\n n/a y"


# ---------------------------------------------------------------- population_eval.csv


def test_population_eval_takes_the_setup_from_the_file_or_the_config(tmp_path):
    run = tmp_path / "runs" / "Taxi-v4" / "collab8_reset" / "seed3"
    run.mkdir(parents=True)
    keys = {
        "env_id": "Taxi-v4",
        "strategy": "collaborative",
        "n_agents": 8,
        "seed": 3,
        "setup": "collab8_reset",
    }
    pd.DataFrame([keys | {"agent": 0, "round": 5, "episode": 0, "return": 7.0}]).to_csv(
        run / "population_eval.csv", index=False
    )
    (run / "config.json").write_text(
        '{"env_id": "Taxi-v4", "strategy": "collaborative", "n_agents": 8, "seed": 3}'
    )
    pop = A.load_population_eval("x", data_dir=tmp_path)
    assert (pop.loc[0, "setup"], pop.loc[0, "seed"]) == ("collab8_reset", 3)
    pd.DataFrame([{"agent": 0, "episode": 0, "return": 7.0}]).to_csv(run / "population_eval.csv", index=False)
    pop = A.load_population_eval("x", data_dir=tmp_path)  # without key columns: the folder names the setup
    assert pop.loc[0, "setup"] == "collab8_reset"
    # runs_of keeps only the runs an analysis aggregated (a run finished since, or another env, stays out)
    other = tmp_path / "runs" / "Acrobot-v1" / "collab8_reset" / "seed3"
    other.mkdir(parents=True)
    pd.DataFrame([keys | {"env_id": "Acrobot-v1", "agent": 1, "episode": 0, "return": -80.0}]).to_csv(
        other / "population_eval.csv", index=False
    )
    assert len(A.load_population_eval("x", data_dir=tmp_path)) == 2
    final = pd.DataFrame([{"env_id": "Taxi-v4", "setup": "collab8_reset", "seed": 3, "return": 1.0}] * 2)
    pop = A.load_population_eval("x", data_dir=tmp_path, runs_of=final)
    assert pop.to_dict("records") == [
        {"env_id": "Taxi-v4", "setup": "collab8_reset", "seed": 3, "agent": 0, "episode": 0, "return": 7.0}
    ]


# ---------------------------------------------------------------- setups.json


def test_without_setups_json_the_paper_first_then_first_appearance(tmp_path):
    specs = [{"name": "zeta", "strategy": "pbt", "n_agents": 2}, "collaborative_8", "independent"]
    specs += [{"name": "alpha", "strategy": "independent", "n_agents": 2}]
    data = synthetic_results(envs=["Pendulum-v1"], setups=specs, seeds=[0, 1], rounds=3)
    A.write_profile(A.ProfileData(*data[:3]), tmp_path)  # the frames only
    assert not (tmp_path / A.SETUPS_FILE).exists()
    loaded = A.load_profile("x", data_dir=tmp_path)
    assert loaded.order == ["independent", "collaborative_8", "zeta", "alpha"]
    assert A.ProfileData(*data[:3]).order == loaded.order  # the same, derived from the frames in memory
    assert {s["name"]: s["strategy"] for s in loaded.setup_info}["zeta"] == "pbt"
    assert list(A.table1(loaded.final)["setup"]) == loaded.order  # default: the same rule
    # setups.json naming only some setups: those first, in its order, then the others
    (tmp_path / A.SETUPS_FILE).write_text('[{"name": "alpha", "strategy": "independent", "n_agents": 2}]')
    assert A.load_profile("x", data_dir=tmp_path).order == ["alpha", "independent", "collaborative_8", "zeta"]
    assert A.setup_order(["b", "collaborative_2", "a", "independent"]) == [
        "independent",
        "collaborative_2",
        "b",
        "a",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": "x"}', "expected a JSON list"),
        ('[{"strategy": "pbt"}]', "entry 0 is not an object with a non-empty string 'name'"),
        ('[{"name": "a"}, {"name": "a"}]', "setup name 'a' appears twice"),
        ("[{", "not valid JSON"),
    ],
)
def test_bad_setups_json_names_the_file(tmp_path, text, message):
    (tmp_path / A.SETUPS_FILE).write_text(text)
    with pytest.raises(ResultsError, match=f"setups.json: {message}"):
        A.load_setups("x", data_dir=tmp_path)


# ---------------------------------------------------------------- figures folder


def test_figures_dir_honours_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAB_FIGURES_DIR", str(tmp_path / "elsewhere"))
    assert A.figures_dir("reduced", root=tmp_path) == tmp_path / "elsewhere" / "reduced"
    monkeypatch.delenv("COLLAB_FIGURES_DIR")
    assert A.figures_dir("reduced", root=tmp_path) == tmp_path / "figures" / "reduced"


def test_the_test_session_moves_the_figures_out_of_the_tree(root):
    moved = Path(os.environ["COLLAB_FIGURES_DIR"])  # set by conftest.py before nbval's kernels start
    assert not moved.resolve().is_relative_to(root.resolve())
