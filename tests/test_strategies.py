"""The three strategies end to end on a cheap environment; budgets; determinism; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collab import ConfigError, ExperimentConfig, run_experiment
from collab.results import RUN_METADATA_KEYS, SCHEMA, VOLATILE_COLUMNS, read_csv_checked

BASE = {
    "env_id": "CartPole-v1",
    "n_agents": 3,
    "episodes_per_agent": 10,
    "validate_every": 4,
    "val_episodes": 2,
    "eval_episodes": 3,
    "max_episode_steps": 40,
}


@pytest.mark.parametrize("strategy", ["independent", "sequential", "collaborative"])
def test_strategy_end_to_end(strategy, tmp_path):
    out = tmp_path / strategy
    run_experiment(ExperimentConfig(strategy=strategy, out_dir=str(out), **BASE), progress=False)
    curves = read_csv_checked(out / "curves.csv")
    final = read_csv_checked(out / "final.csv")
    sharing = read_csv_checked(out / "sharing.csv")
    cfg = json.loads((out / "config.json").read_text())
    assert (out / "config.json").stat().st_mode & 0o644 == 0o644  # readable like any other file
    assert cfg["strategy"] == strategy and cfg["ppo"]["learning_rate"] == 5e-4
    n_pop = 1 if strategy == "sequential" else 3
    budget = 30 if strategy == "sequential" else 10
    # round r ends once every agent has min(4r, budget) episodes; episodes ending at the same step
    # as the one that reaches the target count too, so an agent may be over by < num_envs (4)
    assert sorted(curves["agent"].unique()) == list(range(n_pop))
    target = np.minimum(curves["round"] * 4, budget)
    assert (curves["episode"] >= target).all() and (curves["episode"] < target + 4).all()
    assert curves["round"].max() == -(-budget // 4)
    assert (
        curves.groupby("round")["total_episodes"].first() == curves.groupby("round")["episode"].sum()
    ).all()
    assert len(final) == 3 and final["selected_agent"].nunique() == 1
    # the selected checkpoint is the best validation return of the run
    assert final["selected_val_return"].iloc[0] == curves["val_return"].max()
    if strategy != "collaborative":
        assert sharing.empty and (curves["copied_from"] == -1).all()
    else:
        for _, row in sharing.iterrows():
            hit = curves[(curves["round"] == row["round"]) & (curves["agent"] == row["target"])]
            assert hit["copied_from"].item() == row["source"]
            assert row["ucb_source"] > row["ucb_target"]


def test_same_config_same_csvs(tmp_path):
    frames = []
    for name in ("a", "b"):
        out = tmp_path / name
        cfg = ExperimentConfig(strategy="collaborative", seed=5, out_dir=str(out), **BASE)
        run_experiment(cfg, progress=False)
        frames.append(
            {f: pd.read_csv(out / f).drop(columns=VOLATILE_COLUMNS, errors="ignore") for f in SCHEMA}
        )
    for f in SCHEMA:
        pd.testing.assert_frame_equal(frames[0][f], frames[1][f])
    other = tmp_path / "c"
    run_experiment(
        ExperimentConfig(strategy="collaborative", seed=6, out_dir=str(other), **BASE), progress=False
    )
    assert not np.array_equal(
        pd.read_csv(other / "curves.csv")["val_return"], frames[0]["curves.csv"]["val_return"]
    )


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("env_id", "NoSuchEnv-v0", "env_id='NoSuchEnv-v0'"),
        ("strategy", "greedy", "strategy='greedy'"),
        ("n_agents", 0, "n_agents=0"),
        ("episodes_per_agent", 0, "episodes_per_agent=0"),
        ("validate_every", -1, "validate_every=-1"),
        ("eval_episodes", 0, "eval_episodes=0"),
        ("c", -1.0, "c=-1.0"),
        ("lam", 0.9, "lam=0.9"),
        ("env_threads", 0, "env_threads=0"),
        ("torch_threads", True, "torch_threads=True"),
        ("numerics", "exact", "numerics='exact'"),
        ("reselect_top", 1, "reselect_top=1"),
        ("reselect_episodes", 3, "reselect_episodes=3"),
        ("ppo", {"lr": 1e-3}, r"ppo settings=\['lr'\]"),
    ],
)
def test_bad_input_one_clear_error_and_nothing_written(field, value, needle, tmp_path):
    out = tmp_path / "out"
    cfg = ExperimentConfig(**{**BASE, "strategy": "collaborative", "out_dir": str(out), field: value})
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")) as e:
        run_experiment(cfg, progress=False)
    assert "not allowed" in str(e.value)
    assert not out.exists()


def test_reselection_picks_the_best_revalidated_of_the_top_candidates(tmp_path):
    """With reselect_top the run trains exactly as without; its candidates are the k best validated
    checkpoints (candidate 0 the paper's selection), and it selects the best of them on fresh episodes."""
    runs = {}
    for k in (0, 4):
        out = tmp_path / f"k{k}"
        cfg = ExperimentConfig(
            strategy="independent",
            seed=3,
            out_dir=str(out),
            reselect_top=k,
            reselect_episodes=3 if k else 0,
            **BASE,
        )
        runs[k] = run_experiment(cfg, progress=False)
    paper, re = runs[0], runs[4]
    assert paper.reselection is None and len(re.reselection) == 4
    pd.testing.assert_frame_equal(
        paper.curves.drop(columns=VOLATILE_COLUMNS), re.curves.drop(columns=VOLATILE_COLUMNS)
    )
    cands = read_csv_checked(tmp_path / "k4" / "reselection.csv")
    assert not (tmp_path / "k0" / "reselection.csv").exists()
    assert list(cands["candidate"]) == [0, 1, 2, 3] and cands["selected"].sum() == 1
    # the k best (agent, round) validation returns of the run, best first, earlier rounds first among ties
    c = paper.curves
    ranked = c.assign(r=-c["round"], a=-c["agent"]).sort_values(["val_return", "r", "a"], ascending=False)
    assert list(zip(cands["agent"], cands["round"], strict=True)) == list(
        zip(ranked["agent"][:4], ranked["round"][:4], strict=True)
    )
    assert np.array_equal(cands["val_return"], ranked["val_return"][:4])
    first = paper.final.iloc[0]
    assert (cands["agent"][0], cands["round"][0]) == (first["selected_agent"], first["selected_round"])
    pick = cands[cands["selected"]].iloc[0]
    assert pick["reselect_return"] == cands["reselect_return"].max()
    assert pick["candidate"] == cands.index[cands["reselect_return"] == pick["reselect_return"]][0]
    chosen = re.final.iloc[0]
    assert (chosen["selected_agent"], chosen["selected_round"], chosen["selected_val_return"]) == (
        pick["agent"],
        pick["round"],
        pick["val_return"],
    )


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="out_dir"):
        run_experiment(ExperimentConfig(out_dir=str(blocker / "sub"), **BASE), progress=False)


def test_any_gymnasium_env_works_with_defaults(tmp_path):
    # MountainCarContinuous: not one of the six; Box actions, default hyperparameters
    cfg = ExperimentConfig(
        env_id="MountainCarContinuous-v0",
        strategy="collaborative",
        n_agents=2,
        episodes_per_agent=4,
        validate_every=4,
        val_episodes=1,
        eval_episodes=1,
        max_episode_steps=30,
        out_dir=str(tmp_path / "mc"),
    )
    res = run_experiment(cfg, progress=False)
    assert len(res.curves) == 2 and len(res.final) == 1


DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.mark.parametrize("cell", ["reduced/runs/Pendulum-v1/collaborative_2/seed0"])  # a full run (~15 s)
def test_committed_runs_reproduce(cell, tmp_path):
    """Committed data comes from this code: rerunning a cell from its config.json gives the same CSVs.

    Native numerics reproduce bit for bit only on a machine that runs the same kernels as one where
    the data reproduced (``data/<profile>/machine.json``); elsewhere this test is skipped and
    ``tests/test_numerics.py`` reruns the committed portable runs instead, whose kernels do not depend
    on the CPU's vendor. If a change alters training on purpose, data/reduced no longer matches
    this code (REPRODUCTION.md).
    """
    from collab.numerics import NATIVE_KEY, fingerprint, same_native_kernels

    run = DATA / cell
    recorded = json.loads((DATA / cell.split("/")[0] / "machine.json").read_text())
    here = fingerprint()
    if not same_native_kernels(recorded, here):
        diff = {k: (recorded.get(k), here.get(k)) for k in NATIVE_KEY if recorded.get(k) != here.get(k)}
        pytest.skip(f"native kernels differ from the machine that reproduced this data (data, here): {diff}")
    cfg = json.loads((run / "config.json").read_text())
    for key in RUN_METADATA_KEYS:  # how the run went, not its configuration
        cfg.pop(key, None)
    cfg["out_dir"] = str(tmp_path)
    run_experiment(ExperimentConfig.from_dict(cfg), progress=False)
    for name in ("curves.csv", "final.csv", "sharing.csv"):
        old = pd.read_csv(run / name).drop(columns=VOLATILE_COLUMNS, errors="ignore")
        new = pd.read_csv(tmp_path / name).drop(columns=VOLATILE_COLUMNS, errors="ignore")
        pd.testing.assert_frame_equal(old, new)


def test_parse_overrides_values_and_errors():
    from collab.config import parse_overrides

    got = parse_overrides(["ppo.num_envs=16", "ppo.norm_obs=TRUE", "ppo.clip_coef=0.1"], prefix="ppo.")
    assert got == {"num_envs": 16, "norm_obs": True, "clip_coef": 0.1}
    for bad in (["num_envs=16"], ["ppo.=3"], ["ppo.num_envs"]):  # no prefix, no field, no value
        with pytest.raises(ConfigError, match=r"override=.* is not allowed: ppo\.FIELD=VALUE"):
            parse_overrides(bad, prefix="ppo.")


def test_ppo_config_for_overrides():
    from collab.config import ppo_config_for

    base = ppo_config_for("Acrobot-v1")
    cfg = ppo_config_for("Acrobot-v1", {"num_envs": 16})
    assert cfg.num_envs == 16 and cfg.gae_lambda == base.gae_lambda == 0.94 and base.num_envs == 4
    with pytest.raises(ConfigError, match=r"ppo settings=\['lr'\] is not allowed"):
        ppo_config_for("Acrobot-v1", {"lr": 1e-3})
    with pytest.raises(ConfigError, match="num_envs=0 is not allowed"):
        ppo_config_for("Acrobot-v1", {"num_envs": 0})
    d = ExperimentConfig().to_dict()
    d["ppo"] = {"lr": 1e-3}  # a typo in a config.json's ppo block: a ConfigError, not a TypeError
    with pytest.raises(ConfigError, match=r"ppo settings=\['lr'\]"):
        ExperimentConfig.from_dict(d)


def test_old_config_json_with_retired_fields():
    d = ExperimentConfig().to_dict()
    assert ExperimentConfig.from_dict({**d, "compile_loss": False}) == ExperimentConfig.from_dict(d)
    with pytest.raises(ConfigError, match=r"compile_loss=True is not allowed: False: this version"):
        ExperimentConfig.from_dict({**d, "compile_loss": True})


@pytest.mark.parametrize(("env_id", "steps"), [("CartPole-v1", 40), ("Pendulum-v1", 30)])
def test_the_first_evaluation_episodes_do_not_depend_on_their_count(env_id, steps, tmp_path):
    """Evaluation episode i is seeded the same however many there are, and evaluating more at once
    changes none of its digits: the first 10 of 25 are the paper's 10 (collab.analysis.first_episodes)."""
    from collab import analysis as A

    finals = []
    for n in (10, 25):
        cfg = {**BASE, "env_id": env_id, "max_episode_steps": steps, "eval_episodes": n, "seed": 2}
        finals.append(
            run_experiment(ExperimentConfig(out_dir=str(tmp_path / str(n)), **cfg), progress=False).final
        )
    ten, more = finals
    assert len(more) == 25
    pd.testing.assert_frame_equal(A.first_episodes(more, 10).reset_index(drop=True), ten)
    assert not np.array_equal(more["return"][10:20], ten["return"])  # other episodes follow
    with pytest.raises(ValueError, match="k=0 is not allowed"):
        A.first_episodes(ten, 0)


def test_run_restores_the_callers_torch_threads(tmp_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = ExperimentConfig(strategy="independent", torch_threads=1, out_dir=str(tmp_path), **BASE)
        run_experiment(cfg, progress=False)
        assert torch.get_num_threads() == 2  # was left at the run's 1
    finally:
        torch.set_num_threads(before)


def test_importing_collab_leaves_the_warning_filters_alone():
    """No module installs a process-wide warnings filter at import (collab.optim used to), and a run
    with every warning turned into an error still trains: the one expected warning (autograd's
    gradient layout, see collab.ppo) is silenced where it arises."""
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "import gymnasium, numpy, pandas, torch, tqdm  # third-party filters of their own\n"
        "before = list(warnings.filters)\n"
        "import collab.optim, collab.ppo, collab.strategies\n"
        "assert warnings.filters == before, [f for f in warnings.filters if f not in before]\n"
        "from collab import ExperimentConfig, run_experiment\n"
        "cfg = ExperimentConfig(env_id='CartPole-v1', n_agents=3, episodes_per_agent=2, validate_every=2,"
        " val_episodes=1, eval_episodes=1, max_episode_steps=10)\n"
        "run_experiment(cfg, write=False, progress=False)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_strategy_settings_as_keywords_and_as_a_mapping(tmp_path):
    """The settings earlier versions had as fields: keywords moved into ``settings``, readable as
    attributes, changeable with ``dataclasses.replace``; another strategy's setting at its default is
    dropped, at another value refused."""
    import dataclasses

    cfg = ExperimentConfig(strategy="collaborative", rule="sign_robust", pbt_quantile=0.25)
    assert cfg.settings == {"rule": "sign_robust"} and cfg.rule == "sign_robust"
    assert cfg.stats_after_copy == "keep" and cfg.pbt_perturb is True  # defaults, no check
    resolved = cfg.validate(check_out_dir=False)
    defaults = {"source_choice": "best", "stats_after_copy": "keep", "reward_estimate": "cumulative"}
    assert resolved.settings == {"rule": "sign_robust", **defaults}
    assert dataclasses.replace(resolved, rule="literal").validate(check_out_dir=False).rule == "literal"
    independent = dataclasses.replace(resolved, strategy="independent", rule="literal")
    assert independent.validate(check_out_dir=False).settings == {}
    with pytest.raises(ConfigError, match=r"settings=\['rule'\] are not allowed with strategy='independent'"):
        dataclasses.replace(resolved, strategy="independent").validate(check_out_dir=False)
    old = resolved.to_dict()
    flat = {k: v for k, v in old.items() if k != "settings"} | old["settings"]  # an earlier config.json
    assert ExperimentConfig.from_dict(flat).validate(check_out_dir=False) == resolved
    settings = {"rule": "sign_robust"}
    given = ExperimentConfig(settings=settings)
    settings["rule"] = "literal"
    assert given.settings == {"rule": "sign_robust"}  # the config keeps what it was made with


def test_a_finished_run_is_reused_whatever_its_env_threads(tmp_path):
    cfg = ExperimentConfig(strategy="independent", out_dir=str(tmp_path), **BASE)
    run_experiment(cfg, progress=False)
    import dataclasses

    assert run_experiment(dataclasses.replace(cfg, env_threads=2), progress=False).reused


def test_a_setting_named_like_a_config_field_is_refused():
    from dataclasses import dataclass

    from collab.strategies import Strategy, register

    @dataclass(frozen=True)
    class Clash:
        seed: int = 0

        def validate(self) -> None:
            pass

    class Bad(Strategy):
        name = "bad_settings"
        Settings = Clash

    with pytest.raises(ValueError, match=r"settings \['seed'\] are ExperimentConfig fields"):
        register(Bad)
