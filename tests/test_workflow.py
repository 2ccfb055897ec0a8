"""workflow/Snakefile: the grid each profile lists, early config errors, resuming after an interruption."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from collab.config import ConfigError
from collab.paper import ENVS as PAPER_ENVS
from collab.results import RESULT_FILES, VOLATILE_COLUMNS, is_complete_run, read_csv_checked

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
from grid import WorkflowConfigError, load_grid  # noqa: E402

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile")]
SETUPS = {"independent", "sequential", "collaborative_2", "collaborative_4", "collaborative_8"}
EXPECTED = {  # profile -> number of seeds
    "smoke": 2,
    "reduced": 5,
    "paper": 5,
}


def snakemake(
    workdir: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints (dry run or real run)."""
    table = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("profile", ["smoke", "reduced", "paper"])
def test_dry_run_lists_the_grid(tmp_path: Path, profile: str) -> None:
    configfile = ROOT / "workflow" / "config" / f"{profile}.yaml"
    r = snakemake(tmp_path, "-n", "--configfile", str(configfile))
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    n_seeds = EXPECTED[profile]
    counts = job_counts(out)
    assert counts["train"] == len(PAPER_ENVS) * len(SETUPS) * n_seeds
    assert counts["aggregate"] == 1 and counts["analysis"] == 2
    # smoke also records the selected agent of each environment's first run (agent_gifs: true)
    assert counts.get("agent_gif", 0) == (len(PAPER_ENVS) if profile == "smoke" else 0)
    runs = set(re.findall(rf"data/{profile}/runs/([\w.-]+)/(\w+)/seed(\d+)/config\.json", out))
    expected = {(e, s, str(k)) for e in PAPER_ENVS for s in SETUPS for k in range(n_seeds)}
    assert runs == expected
    assert f"runs/{profile}/notebooks/table1.ipynb" in out
    assert f"runs/{profile}/notebooks/figures.ipynb" in out


def test_profile_budgets() -> None:
    paper = load_grid(yaml.safe_load((ROOT / "workflow/config/paper.yaml").read_text()), check_env=False)
    for cell in paper.cells:
        assert cell.params["episodes_per_agent"] == 5000
        assert cell.params["validate_every"] == 100
        assert cell.params["eval_episodes"] == 10
        assert cell.params["c"] == 1.5 and cell.params["lam"] == 1.0
    smoke = load_grid(yaml.safe_load((ROOT / "workflow/config/smoke.yaml").read_text()), check_env=False)
    for env in ("CarRacing-v3", "BipedalWalker-v3", "LunarLander-v3"):
        cell = next(c for c in smoke.cells if c.env_id == env)
        assert cell.params["max_episode_steps"] is not None, env
    reduced_text = (ROOT / "workflow/config/reduced.yaml").read_text()
    assert "provisional" not in reduced_text.lower()
    reduced = load_grid(yaml.safe_load(reduced_text), check_env=False)
    budgets = {c.env_id: (c.params["episodes_per_agent"], c.params["validate_every"]) for c in reduced.cells}
    assert budgets == {  # as listed in REPRODUCTION.md
        "Acrobot-v1": (500, 10),
        "Pendulum-v1": (500, 10),
        "BipedalWalker-v3": (200, 10),
        "LunarLander-v3": (1000, 20),
        "CarRacing-v3": (30, 3),
        "Taxi-v4": (1500, 30),
    }
    assert all(c.params["max_episode_steps"] is None for c in reduced.cells)  # the environments' own limits


def _base_config() -> dict:
    return yaml.safe_load((ROOT / "workflow/config/smoke.yaml").read_text())


BAD_CONFIGS = [
    # (change to the smoke config, error type, text the message must contain)
    (lambda c: c["envs"].update({"NoSuchEnv-v0": {}}), ConfigError, "env_id='NoSuchEnv-v0' is not allowed"),
    (lambda c: c["setups"].append({"strategy": "greedy", "n_agents": 2}), ConfigError, "strategy='greedy'"),
    (lambda c: c["setups"].append({"strategy": "collaborative", "n_agents": 0}), ConfigError, "n_agents=0"),
    (lambda c: c["defaults"].update(episodes_per_agent=0), ConfigError, "episodes_per_agent=0"),
    (lambda c: c["envs"].update({"Acrobot-v1": {"validate_every": -1}}), ConfigError, "validate_every=-1"),
    (lambda c: c["defaults"].update(eval_episodes=0), ConfigError, "eval_episodes=0"),
    (lambda c: c["defaults"].update(c=-1.0), ConfigError, "c=-1.0"),
    (lambda c: c["defaults"].update(lam=0.5), ConfigError, "lam=0.5"),
    (lambda c: c["defaults"].update(max_episode_steps=0), ConfigError, "max_episode_steps=0"),
    (lambda c: c["defaults"].update(episodes=3), WorkflowConfigError, "defaults keys=['episodes']"),
    (lambda c: c.update(seeds=[0, -1]), WorkflowConfigError, "seeds=[0, -1]"),
    (lambda c: c.update(seeds=[]), WorkflowConfigError, "seeds=[]"),
    (lambda c: c.pop("envs"), WorkflowConfigError, "envs=None"),
    (lambda c: c.update(colour="red"), WorkflowConfigError, "config keys=['colour']"),
    (
        lambda c: c.update(setups={"a": {"strategy": "independent", "n_agents": 2, "lamda": 1.1}}),
        WorkflowConfigError,
        "setups.a keys=['lamda'] is not allowed: ExperimentConfig fields among",
    ),
    (
        lambda c: c.update(setups={"../up": {"strategy": "independent", "n_agents": 2}}),
        WorkflowConfigError,
        "setup name='../up' is not allowed",
    ),
    (
        lambda c: c.update(setups={"p": {"strategy": "pbt", "n_agents": 4, "pbt_quantile": 0.7}}),
        ConfigError,
        "pbt_quantile=0.7 is not allowed",
    ),
    (
        lambda c: c.update(setups={"p": {"strategy": "pbt", "n_agents": 1}}),
        ConfigError,
        "n_agents=1 is not allowed",
    ),
    (
        lambda c: c["setups"].append({"strategy": "independent", "n_agents": 8}),
        WorkflowConfigError,
        "Table 1 column 'independent' repeats",
    ),
    (
        lambda c: c.update(agent_gifs="yes"),
        WorkflowConfigError,
        "agent_gifs='yes' is not allowed: true, false or best_worst",
    ),
    (
        lambda c: c.update(only_envs=["Acrobot-v2"]),
        WorkflowConfigError,
        "only_envs=['Acrobot-v2'] is not allowed",
    ),
    (lambda c: c.update(only_envs=[]), WorkflowConfigError, "only_envs=[] is not allowed"),
    (
        lambda c: c.update(agent_gif_envs="Taxi-v9"),
        WorkflowConfigError,
        "agent_gif_envs='Taxi-v9' is not allowed: environments of this config (Acrobot-v1, Pendulum-v1,",
    ),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD_CONFIGS, ids=[m for _, _, m in BAD_CONFIGS])
def test_bad_workflow_config_is_rejected(change, error, message: str) -> None:
    config = _base_config()
    change(config)
    with pytest.raises(error, match=re.escape(message)) as info:
        load_grid(config, source="my.yaml")
    assert str(info.value).startswith("my.yaml: ")
    assert "is not allowed" in str(info.value)


def test_a_budget_key_the_train_notebook_lacks_is_refused(monkeypatch) -> None:
    """A budget key reaches a run only through a train.ipynb parameter: every one has its parameter,
    and a key the notebook had none for would be refused instead of ignored."""
    import grid

    declared = grid.train_parameters()
    assert set(grid.BUDGET_KEYS) <= declared
    monkeypatch.setattr(grid, "train_parameters", lambda: declared - {"lam"})
    with pytest.raises(WorkflowConfigError, match=r"defaults\.lam=1\.0 is not allowed: unset: train\.ipynb"):
        load_grid(_base_config(), source="my.yaml")


def test_bad_config_stops_snakemake_before_any_job(tmp_path: Path) -> None:
    config = _base_config()
    config["envs"]["Taxi-v9"] = {}
    configfile = write_config(tmp_path / "bad.yaml", config)
    r = snakemake(tmp_path, "--cores", "1", "--configfile", str(configfile))
    assert r.returncode != 0
    assert f"{configfile}: envs.Taxi-v9" in r.stderr
    assert "env_id='Taxi-v9' is not allowed" in r.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


TINY_WORKFLOW = {
    "profile": "tiny",
    "seeds": [0, 1],
    "setups": [{"strategy": "independent", "n_agents": 2}, {"strategy": "collaborative", "n_agents": 2}],
    "defaults": {
        "episodes_per_agent": 4,
        "validate_every": 2,
        "val_episodes": 1,
        "eval_episodes": 2,
        "max_episode_steps": 20,
    },
    "envs": {"CartPole-v1": {}},
}
CELLS = [("independent", 0), ("independent", 1), ("collaborative_2", 0), ("collaborative_2", 1)]


def _run_dir(workdir: Path, setup: str, seed: int, env_id: str = "CartPole-v1") -> Path:
    return workdir / "data" / "tiny" / "runs" / env_id / setup / f"seed{seed}"


def _mtimes(d: Path) -> dict[str, int]:
    return {f: (d / f).stat().st_mtime_ns for f in RESULT_FILES}


def test_workflow_runs_and_resumes_without_recomputing(tmp_path: Path) -> None:
    configfile = write_config(tmp_path / "tiny.yaml", TINY_WORKFLOW)
    args = ["grid", "--cores", "2", "--rerun-incomplete", "--configfile", str(configfile)]
    r = snakemake(tmp_path, *args)
    assert r.returncode == 0, r.stderr[-4000:]
    assert job_counts(r.stderr + r.stdout)["train"] == 4
    for setup, seed in CELLS:
        assert is_complete_run(_run_dir(tmp_path, setup, seed))
        assert (
            tmp_path / "runs" / "tiny" / "notebooks" / "train" / "CartPole-v1" / setup / f"seed{seed}.ipynb"
        ).is_file()
    final = read_csv_checked(tmp_path / "data" / "tiny" / "final.csv")
    assert set(zip(final["setup"], final["seed"], strict=True)) == set(CELLS)

    # An interrupted run: one cell never finished (no config.json), another was never started.
    half = _run_dir(tmp_path, "collaborative_2", 1)
    (half / "config.json").unlink()
    for f in RESULT_FILES:
        (_run_dir(tmp_path, "independent", 1) / f).unlink()
    kept = {cell: _mtimes(_run_dir(tmp_path, *cell)) for cell in [("independent", 0), ("collaborative_2", 0)]}

    r = snakemake(tmp_path, *args)
    assert r.returncode == 0, r.stderr[-4000:]
    assert job_counts(r.stderr + r.stdout)["train"] == 2  # only the two missing cells
    for cell, mtimes in kept.items():
        assert _mtimes(_run_dir(tmp_path, *cell)) == mtimes, f"finished cell {cell} was recomputed"
    for setup, seed in CELLS:
        assert is_complete_run(_run_dir(tmp_path, setup, seed))

    r = snakemake(tmp_path, "-n", *args)  # nothing left to do
    assert r.returncode == 0 and "Nothing to be done" in r.stdout + r.stderr

    # agent_gifs: best_worst records the run whose selected agent scored lowest, without retraining.
    # Capped at 20 steps every tiny run returns 20: one run's returns are lowered in final.csv (an output
    # Snakemake does not remake) so that the rule must find that run and not merely break a tie.
    final_csv = tmp_path / "data" / "tiny" / "final.csv"
    final = read_csv_checked(final_csv)
    final.loc[(final["setup"] == "collaborative_2") & (final["seed"] == 1), "return"] = 3.0
    final.to_csv(final_csv, index=False)
    gifs = write_config(tmp_path / "tiny_gifs.yaml", {**TINY_WORKFLOW, "agent_gifs": "best_worst"})
    target = "figures/tiny/agents/CartPole-v1_worst.gif"
    r = snakemake(tmp_path, target, "--cores", "1", "--configfile", str(gifs))
    assert r.returncode == 0, r.stderr[-4000:]
    assert "train" not in job_counts(r.stderr + r.stdout)
    assert (tmp_path / target).read_bytes()[:6] == b"GIF89a"
    log = (tmp_path / "runs" / "tiny" / "logs" / "agents" / "CartPole-v1_worst.log").read_text()
    assert "worst CartPole-v1: collaborative_2 seed 1, final evaluation 3.0" in log


GATE = Path(__file__).resolve().parent / "gate"  # sitecustomize.py: GateCartPole-v1 (see its docstring)


def gated(gate: Path) -> dict[str, str]:
    """The environment of a process whose GateCartPole-v1 runs wait for tickets in ``gate``."""
    gate.mkdir(exist_ok=True)
    path = os.pathsep.join(p for p in (str(GATE), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "COLLAB_TEST_GATE": str(gate)}


def wait_until(condition, what, proc: subprocess.Popen | None = None, limit_s: float = 600) -> None:
    """Poll ``condition`` until it holds; fail if ``proc`` ends first or after a generous ``limit_s``
    (a hang guard only: the test, not the clock, decides when each run may start). ``what`` names the
    awaited state in the failure message (a callable: evaluated when it fails)."""
    waited = 0.0
    while not condition():
        said = what() if callable(what) else what
        assert proc is None or proc.poll() is None, f"the workflow ended before {said}"
        assert waited < limit_s, f"no {said} after {limit_s} s"
        time.sleep(0.1)
        waited += 0.1


@pytest.mark.slow
def test_killed_workflow_resumes(tmp_path: Path) -> None:
    """Ctrl-C while the second run of the grid trains, then the same command with --rerun-incomplete.

    The runs are gated (GateCartPole-v1): one ticket lets exactly one run through, so the interrupt
    comes when one run is finished and the next is blocked, on a fast machine as on a slow one.
    """
    gate = tmp_path / "gate"
    env = gated(gate)
    configfile = write_config(tmp_path / "tiny.yaml", {**TINY_WORKFLOW, "envs": {"GateCartPole-v1": {}}})
    args = ["grid", "--cores", "1", "--rerun-incomplete", "--configfile", str(configfile)]

    def finished() -> list[tuple[str, int]]:
        return [c for c in CELLS if is_complete_run(_run_dir(tmp_path, *c, env_id="GateCartPole-v1"))]

    (gate / "ticket-0").touch()
    proc = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(tmp_path), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    try:
        wait_until(lambda: len(finished()) == 1 and any(gate.glob("waiting-*")), "blocked second run", proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done = finished()
    assert len(done) == 1, done
    kept = {cell: _mtimes(_run_dir(tmp_path, *cell, env_id="GateCartPole-v1")) for cell in done}

    (gate / "open").touch()
    r = snakemake(tmp_path, *args, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    assert finished() == CELLS
    assert {cell: _mtimes(_run_dir(tmp_path, *cell, env_id="GateCartPole-v1")) for cell in done} == kept, (
        "a finished run was recomputed"
    )
    assert job_counts(r.stderr + r.stdout)["train"] == len(CELLS) - 1


def test_interim_lists_only_complete_runs_and_rejects_bad_profile(tmp_path, capsys):
    import interim

    done = tmp_path / "data" / "reduced" / "runs" / "Acrobot-v1" / "independent" / "seed0"
    partial = tmp_path / "data" / "reduced" / "runs" / "Acrobot-v1" / "independent" / "seed1"
    for d in (done, partial):
        d.mkdir(parents=True)
    for f in RESULT_FILES:
        (done / f).write_text("x")
    (partial / "curves.csv").write_text("x")  # config.json missing: an interrupted run
    assert interim.complete_runs("reduced", root=tmp_path) == [done]
    assert interim.complete_runs("paper", root=tmp_path) == []
    assert interim.main("full") == 2
    assert "profile='full' is not allowed" in capsys.readouterr().err


def test_report_fills_generated_blocks_and_refuses_missing_files(tmp_path):
    import report

    (tmp_path / "table1.md").write_text("| a |\n|---|\n| 1 |\n")
    text = "intro\n<!-- generated:table1 -->\nPending.\n<!-- /generated:table1 -->\nend\n"
    filled, names = report.fill(text, tmp_path)
    assert names == ["table1"]
    assert filled.startswith("intro\n<!-- generated:table1 -->\n<!-- from ")
    assert filled.endswith(
        "table1.md by workflow/scripts/report.py -->\n| a |\n|---|\n| 1 |\n<!-- /generated:table1 -->\nend\n"
    )
    assert report.fill(filled, tmp_path)[0] == filled  # filling again changes nothing
    with pytest.raises(report.ReportError, match="claims.md"):
        report.fill(text + "<!-- generated:claims -->\n<!-- /generated:claims -->\n", tmp_path)
    with pytest.raises(report.ReportError, match="no <!-- generated"):
        report.fill("nothing to fill\n", tmp_path)
    # another profile's block: figures/<other>/<name>.md beside the report's profile folder
    (tmp_path / "reduced").mkdir()
    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "table1.md").write_text("| paper |\n")
    other = "<!-- generated:paper/table1 -->\n<!-- /generated:paper/table1 -->\n"
    filled, names = report.fill(other, tmp_path / "reduced")
    assert names == ["paper/table1"]
    assert filled.endswith(
        "paper/table1.md by workflow/scripts/report.py -->\n| paper |\n<!-- /generated:paper/table1 -->\n"
    )


def test_named_setups_two_of_one_strategy() -> None:
    """A setup is a name plus ExperimentConfig fields: two independent setups of different sizes, a
    selective-sharing variant and PPO overrides (passed to Papermill as YAML) live in one grid."""
    config = _base_config()
    config["setups"] = {
        "independent": {"strategy": "independent", "n_agents": 8},
        "independent_2": {"strategy": "independent", "n_agents": 2},
        "collab8_sign_robust_1.05": {
            "strategy": "collaborative",
            "n_agents": 8,
            "rule": "sign_robust",
            "lam": 1.05,
        },
        "ent": {"strategy": "collaborative", "n_agents": 2, "ppo": {"ent_coef": 0.02}},
    }
    grid = load_grid(config, check_env=False)
    assert list(grid.setups) == list(config["setups"])
    cells = {c.setup: c for c in grid.cells if c.env_id == "Acrobot-v1" and c.seed == 0}
    assert cells["independent_2"].n_agents == 2 and cells["independent_2"].params["setup"] == "independent_2"
    assert "setup" not in cells["independent"].params  # the paper's name is the derived one
    robust = cells["collab8_sign_robust_1.05"].params
    assert robust["lam"] == 1.05 and robust["rule"] == "sign_robust"
    args = cells["ent"].papermill_args("out")
    assert "-y '{ppo: {ent_coef: 0.02}}'" in args and "-r setup ent" in args
    order = [d["name"] for d in json.loads(grid.setups_json())]
    assert order == list(config["setups"])


def test_study_dry_run_lists_its_jobs(tmp_path: Path) -> None:
    configfile = ROOT / "workflow" / "config" / "study.yaml"
    study = yaml.safe_load(configfile.read_text())
    r = snakemake(tmp_path, "-n", "--configfile", str(configfile))
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert job_counts(out)["train"] == len(study["envs"]) * len(study["setups"]) * len(study["seeds"]) == 550
    runs = set(re.findall(r"data/study/runs/([\w.-]+)/([\w.-]+)/seed(\d+)/config\.json", out))
    assert {s for _, s, _ in runs} == set(study["setups"])
    assert ("Pendulum-v1", "collab8_sign_robust_1.05", "9") in runs
    # agent_gifs: best_worst -> the best and the worst selected agent of each environment
    gifs = set(re.findall(r"figures/study/agents/([\w.-]+)_(best|worst)\.gif", out))
    assert gifs == {(e, w) for e in study["agent_gif_envs"] for w in ("best", "worst")}
    assert set(study["agent_gif_envs"]) < set(study["envs"])  # agent_gif_envs leaves Taxi out


def test_only_envs_restricts_the_grid(tmp_path: Path) -> None:
    """``--config only_envs=...`` runs and analyses only those environments (a string or a list)."""
    configfile = ROOT / "workflow" / "config" / "study.yaml"
    r = snakemake(tmp_path, "-n", "--configfile", str(configfile), "--config", "only_envs=Taxi-v4,Acrobot-v1")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert job_counts(out)["train"] == 2 * 11 * 10
    assert set(re.findall(r"data/study/runs/([\w.-]+)/", out)) == {"Taxi-v4", "Acrobot-v1"}
    bad = snakemake(tmp_path, "-n", "--configfile", str(configfile), "--config", "only_envs=Taxi-v9")
    assert bad.returncode != 0
    assert (
        "study.yaml + --config only_envs=Taxi-v9: only_envs='Taxi-v9' is not allowed"
        in bad.stdout + bad.stderr
    )
    config = _base_config()  # smoke: the six environments, Acrobot first, Taxi last
    for only, expected in [
        ("Acrobot-v1", ["Acrobot-v1"]),
        ("Taxi-v4, Acrobot-v1,", ["Acrobot-v1", "Taxi-v4"]),
        (["Taxi-v4", "Acrobot-v1"], ["Acrobot-v1", "Taxi-v4"]),
    ]:
        grid = load_grid({**config, "only_envs": only}, check_env=False)
        assert grid.envs == expected  # in the config's order
        assert {c.env_id for c in grid.cells} == set(expected)


def test_runs_that_pause_before_their_deadline_finish_through_retries(tmp_path: Path) -> None:
    """A run with checkpoints inside a SLURM job whose time is up (a stand-in ``squeue`` on PATH says
    0:00 left) pauses at every checkpoint (RunPaused: the job fails); Snakemake's retries continue it
    one segment per attempt, and the results equal the same grid without a deadline. No clock decides
    anything here: with no time left, every attempt pauses at its first checkpoint."""
    grid = {**TINY_WORKFLOW, "setups": [{"strategy": "collaborative", "n_agents": 2}], "seeds": [0]}
    grid["defaults"] = {**TINY_WORKFLOW["defaults"], "episodes_per_agent": 6, "checkpoint_every": 1}
    configfile = write_config(tmp_path / "tiny.yaml", grid)
    reference, work, bin_dir = tmp_path / "reference", tmp_path / "work", tmp_path / "bin"
    for d in (reference, work, bin_dir):
        d.mkdir()
    r = snakemake(reference, "grid", "--cores", "1", "--configfile", str(configfile))
    assert r.returncode == 0, r.stderr[-4000:]
    squeue = bin_dir / "squeue"
    squeue.write_text("#!/bin/sh\necho 0:00\n")
    squeue.chmod(0o755)
    env = {**os.environ, "SLURM_JOB_ID": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    r = snakemake(work, "grid", "--cores", "1", "--configfile", str(configfile), "--retries", "2", env=env)
    output = r.stdout + r.stderr
    assert r.returncode == 0, output[-4000:]
    assert output.count("Error in rule train") == 2, output[-4000:]  # paused after rounds 1 and 2
    got, want = _run_dir(work, "collaborative_2", 0), _run_dir(reference, "collaborative_2", 0)
    for name in ("curves.csv", "final.csv", "sharing.csv"):
        a, b = (pd.read_csv(d / name).drop(columns=VOLATILE_COLUMNS) if name == "curves.csv" else
                pd.read_csv(d / name) for d in (got, want))  # fmt: skip
        pd.testing.assert_frame_equal(a, b, obj=name)
    assert (got / "population.safetensors").read_bytes() == (want / "population.safetensors").read_bytes()
    assert [r["round"] for r in json.loads((got / "config.json").read_text())["resumed"]] == [1, 2]
