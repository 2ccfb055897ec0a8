"""Saved agents: checkpoints in every run folder, reloaded with identical actions, re-evaluated
(final.csv reproduced), recorded into GIF/MP4; bad input stops with one clear error and writes nothing."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio3
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import collab
from collab import ConfigError, ExperimentConfig, run_experiment
from collab.checkpoints import CheckpointError, checkpoint_bytes, load_agent, parse_checkpoint
from collab.config import ppo_config_for
from collab.envpool_backend import envpool_ids
from collab.envs import PopulationEnv
from collab.numerics import NumericsError, fingerprint
from collab.policy import evaluate_run, load_policy, record
from collab.ppo import PopulationPPO
from collab.results import CHECKPOINT_FILES, OPTIONAL_SCHEMA, SCHEMA, VOLATILE_COLUMNS, read_csv_checked

ROOT = Path(__file__).resolve().parent.parent
#: One environment per kind of agent: discrete actions with observation normalisation, continuous
#: actions (normalised observations and rewards), pixels (CNN, frame skip 2, 2 stacked frames) and
#: Taxi with action masks; episodes cut short to keep the runs to seconds.
KINDS = {
    "discrete": ("Acrobot-v1", 30),
    "continuous": ("Pendulum-v1", 30),
    "pixels": ("CarRacing-v3", 24),
    "masked": ("Taxi-v4", 20),
}
BASE = {
    "strategy": "collaborative",
    "n_agents": 2,
    "episodes_per_agent": 4,
    "validate_every": 2,
    "val_episodes": 2,
    "eval_episodes": 3,
    "reeval_episodes": 2,
    "backend": "gymnasium",
}


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    """A tiny run per kind (on Gymnasium, re-evaluating its population), made once per module."""
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            out = tmp_path_factory.mktemp(kind) / "run"
            if kind == "envpool":  # the default backend where envpool is installed
                kw = {**BASE, "env_id": "CartPole-v1", "max_episode_steps": 30, "backend": "auto"}
            else:
                env_id, steps = KINDS[kind]
                kw = {**BASE, "env_id": env_id, "max_episode_steps": steps}
            run_experiment(ExperimentConfig(**kw, out_dir=str(out)), progress=False)
            made[kind] = out
        return made[kind]

    return get


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# -- saving and reloading ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_save_reload_gives_identical_actions(kind):
    """Agents trained for a rollout, saved and reloaded, act exactly as the saved state does in the
    final evaluation's setting (a one-agent population), on a batch of observations they met."""
    env_id, steps = KINDS[kind]
    ppo = dataclasses.replace(
        ppo_config_for(env_id), num_envs=2, num_steps=16, num_minibatches=2, update_epochs=1
    )
    env = PopulationEnv.for_ppo(env_id, 3, ppo, 1, backend="gymnasium", max_episode_steps=steps)
    agents = PopulationPPO(env.spec, ppo, [11, 12, 13])
    agents.collect_and_update(env, np.ones(3, dtype=np.int64))  # trained weights, observation statistics
    obs, masks = [], []
    o = env.reset()
    for _ in range(8):
        obs.append(o)
        masks.append(env.action_mask())
        o = env.step(agents.act(o, mask=masks[-1], deterministic=False))[0]
    env.close()
    x = torch.cat(obs, dim=1)  # [3 agents, 16 observations, ...]
    mask = torch.cat(masks, dim=1) if masks[0] is not None else None
    assert (mask is not None) == (kind == "masked")
    data = checkpoint_bytes(
        agents,
        range(3),
        kind="population",
        env_id=env_id,
        time_limit=steps,
        max_episode_steps=steps,
        agent_ids=range(3),
        rounds=[1, 1, 1],
        val_returns=[0.0, 1.0, 2.0],
        run={},
    )
    ckpt = parse_checkpoint(data, "memory", env_id)
    if ppo.norm_obs:  # the statistics travel with the agent
        assert not torch.equal(ckpt.tensors["obs_rms.mean"], torch.zeros_like(ckpt.tensors["obs_rms.mean"]))
    else:
        assert "obs_rms.mean" not in ckpt.tensors
    population = agents.act(x, mask=mask)
    for a in range(3):
        ref = PopulationPPO(env.spec, ppo, [0])  # how run_experiment builds the evaluated agent
        ref.load_snapshot(0, agents.snapshot(a))
        loaded = load_agent(ckpt, a)
        ma = mask[a : a + 1] if mask is not None else None
        want = ref.act(x[a : a + 1], mask=ma)
        got = loaded.act(x[a : a + 1], mask=ma)
        assert torch.equal(got, want), kind
        torch.testing.assert_close(got[0].float(), population[a].float(), atol=1e-5, rtol=0)
        if kind == "masked":
            assert mask[a].gather(-1, got[0].long().unsqueeze(-1)).all()  # only legal actions


@pytest.mark.parametrize("kind", ["discrete", "masked"])
def test_run_folder_holds_its_agents(make_run, kind):
    run = make_run(kind)
    cfg = json.loads((run / "config.json").read_text())
    final = read_csv_checked(run / "final.csv")
    assert set(CHECKPOINT_FILES) <= set(_files(run))
    saved = cfg["checkpoints"]
    assert saved["selected.safetensors"] == {
        "agent": int(final["selected_agent"][0]),
        "round": int(final["selected_round"][0]),
        "val_return": float(final["selected_val_return"][0]),
    }
    last = int(read_csv_checked(run / "curves.csv")["round"].max())
    assert saved["population.safetensors"] == {"agents": 2, "round": last}
    policy = load_policy(run)
    assert (policy.agent_index, policy.round) == (final["selected_agent"][0], final["selected_round"][0])
    assert load_policy(run, agent=1).agent_index == 1 and load_policy(run, 1).round == last
    assert policy.env_id == cfg["env_id"] and policy.ppo.mask_actions == (kind == "masked")


@pytest.mark.parametrize("kind", ["discrete", "continuous", "pixels", "masked", "envpool"])
def test_evaluate_run_reproduces_final_csv(make_run, kind):
    if kind == "envpool" and envpool_ids() is None:
        pytest.skip("envpool is not installed")
    run = make_run(kind)
    pd.testing.assert_frame_equal(evaluate_run(run), read_csv_checked(run / "final.csv"))


@pytest.mark.parametrize("kind", ["discrete", "pixels"])
def test_evaluate_run_with_episodes_reproduces_the_population_re_evaluation(make_run, kind):
    """``episodes=N`` plays the episodes of population_eval.csv: seeded apart from the final evaluation."""
    run = make_run(kind)
    pop = read_csv_checked(run / "population_eval.csv")
    assert sorted(pop["agent"].unique()) == [-1, 0, 1] and len(pop) == 3 * 2
    for agent, who in ((0, 0), (1, 1), ("selected", -1)):
        got = evaluate_run(run, episodes=2, agent=agent)
        assert list(got["return"]) == list(pop.loc[pop["agent"] == who, "return"]), agent
    longer = evaluate_run(run, episodes=4)
    assert len(longer) == 4 and list(longer["eval_episode"]) == [0, 1, 2, 3]


def test_checkpoints_and_re_evaluation_leave_the_csvs_alone(tmp_path):
    """Saving agents draws no random numbers: the CSVs are those of a run without re-evaluation; and
    a rerun into a folder with an earlier run's files but no config.json (not complete) leaves none of
    them behind; a complete run of other settings there is refused, not overwritten."""
    env_id, steps = KINDS["continuous"]
    cfg = ExperimentConfig(**{**BASE, "env_id": env_id, "max_episode_steps": steps, "seed": 3})
    run_experiment(dataclasses.replace(cfg, out_dir=str(tmp_path / "a")), progress=False)
    run_experiment(dataclasses.replace(cfg, reeval_episodes=0, out_dir=str(tmp_path / "b")), progress=False)
    for name in SCHEMA:
        a = pd.read_csv(tmp_path / "a" / name).drop(columns=VOLATILE_COLUMNS, errors="ignore")
        b = pd.read_csv(tmp_path / "b" / name).drop(columns=VOLATILE_COLUMNS, errors="ignore")
        pd.testing.assert_frame_equal(a, b)
    assert "population_eval.csv" in _files(tmp_path / "a") and "population_eval.csv" not in _files(
        tmp_path / "b"
    )
    assert (
        list(read_csv_checked(tmp_path / "a" / "population_eval.csv").columns)
        == OPTIONAL_SCHEMA["population_eval.csv"]
    )
    rerun = dataclasses.replace(cfg, reeval_episodes=0, out_dir=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="reeval_episodes: 2 there, 0 here"):
        run_experiment(rerun, progress=False)
    (tmp_path / "a" / "config.json").unlink()  # as if the earlier run had been interrupted
    run_experiment(rerun, progress=False)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    for name in CHECKPOINT_FILES:  # the same agents, byte for byte
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


# -- watching ---------------------------------------------------------------------------------------


def test_record_mp4_and_gif_have_the_expected_frames(make_run, tmp_path):
    run = make_run("discrete")
    mp4 = record(run, tmp_path / "a.mp4", episodes=2, agent=1)
    assert mp4.frames == sum(mp4.lengths) + 2  # the first frame of each episode, then one per step
    reader = iio2.get_reader(mp4.path, format="FFMPEG")
    assert reader.count_frames() == mp4.frames and reader.get_meta_data()["fps"] == mp4.fps == 15
    reader.close()
    gif = record(run, tmp_path / "sub" / "a.gif", scale=0.5, every=2)
    assert gif.frames == (gif.lengths[0] + 1 + 1) // 2
    frames = iio3.imread(gif.path, index=None)
    assert frames.shape[1:3] == (250, 250) and 1 <= len(frames) <= gif.frames
    # identical consecutive frames are merged; their display times add up to the whole recording
    with Image.open(gif.path) as im:
        durations = [im.seek(i) or im.info["duration"] for i in range(im.n_frames)]
    assert sum(durations) == pytest.approx(gif.frames * 2 * 1000 / 15, abs=10 * gif.frames)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.gif", "a.mp4"]  # no temp file


@pytest.mark.parametrize("kind", ["discrete", "pixels", "masked"])
def test_recorded_episodes_are_the_evaluation_episodes(make_run, tmp_path, kind):
    """On a Gymnasium run, recorded episode j is evaluation episode j: the policy sees raw observations
    through the training preprocessing (one-hot states, grayscale stacked frames, frame skip)."""
    run = make_run(kind)
    rec = record(run, tmp_path / "x.gif", episodes=3)
    final = read_csv_checked(run / "final.csv")
    np.testing.assert_allclose(rec.returns, final["return"], rtol=1e-5, atol=1e-4)


def test_policy_preprocessing_matches_the_training_environments(make_run):
    import gymnasium as gym

    policy = load_policy(make_run("pixels"))
    ppo = policy.ppo
    assert (ppo.frame_skip, ppo.frame_stack) == (2, 2)
    pool = PopulationEnv.for_ppo("CarRacing-v3", 1, ppo, 5, 2, backend="gymnasium", max_episode_steps=24)
    envs = [gym.make("CarRacing-v3", max_episode_steps=24) for _ in range(2)]
    x = pool.reset()
    raw = [e.reset(seed=s)[0] for e, s in zip(envs, pool.seeds, strict=True)]
    policies = [load_policy(make_run("pixels")) for _ in envs]
    for t in range(6):
        for j, (p, r) in enumerate(zip(policies, raw, strict=True)):
            assert torch.equal(p.preprocess(r), x[0, j]), (t, j)
        action = torch.tensor([[[0.0, 0.5, 0.0], [-0.3, 0.2, 0.1]]])
        x = pool.step(action)[0]
        for e, j in zip(envs, range(2), strict=True):
            for _ in range(2):  # frame skip
                raw[j] = e.step(action[0, j].numpy())[0]
    pool.close()


# -- bad input --------------------------------------------------------------------------------------


def test_run_without_checkpoints_one_clear_error(tmp_path):
    old = ROOT / "data" / "reduced" / "runs" / "Acrobot-v1" / "independent" / "seed0"
    run = tmp_path / "old"
    shutil.copytree(old, run)
    before = _files(run)
    for call in (
        lambda: load_policy(run),
        lambda: evaluate_run(run),
        lambda: record(run, tmp_path / "v.gif"),
    ):
        with pytest.raises(
            CheckpointError, match=r"selected\.safetensors: not found: this run folder has no saved agents"
        ):
            call()
    with pytest.raises(CheckpointError, match=r"population\.safetensors: not found"):
        load_policy(run, agent=0)
    assert _files(run) == before and not (tmp_path / "v.gif").exists()
    with pytest.raises(CheckpointError, match=r"run_dir=.* is not allowed: a complete run folder"):
        load_policy(tmp_path / "nothing")


def test_checkpoint_of_another_environment_one_clear_error(make_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(make_run("discrete"), run)
    shutil.copy(make_run("continuous") / "selected.safetensors", run / "selected.safetensors")
    with pytest.raises(
        CheckpointError,
        match=r"selected\.safetensors: a checkpoint for env_id='Pendulum-v1', but the run is for "
        r"env_id='Acrobot-v1'",
    ):
        record(run, tmp_path / "v.mp4")
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.parametrize("keep", [0.5, 0.99, 10])
def test_truncated_checkpoint_one_clear_error(make_run, tmp_path, keep):
    run = tmp_path / "run"
    shutil.copytree(make_run("masked"), run)
    path = run / "population.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    with pytest.raises(
        CheckpointError, match=r"population\.safetensors: not a readable safetensors checkpoint"
    ):
        evaluate_run(run, agent=1)
    with pytest.raises(CheckpointError, match=r"population\.safetensors: not a readable"):
        record(run, tmp_path / "v.gif", agent=0)
    assert not (tmp_path / "v.gif").exists()
    load_policy(run)  # the selected checkpoint is intact


def test_foreign_safetensors_file_one_clear_error(make_run, tmp_path):
    from safetensors.torch import save

    run = tmp_path / "run"
    shutil.copytree(make_run("masked"), run)
    (run / "selected.safetensors").write_bytes(save({"w": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"selected\.safetensors: not a collab checkpoint"):
        load_policy(run)


@pytest.mark.parametrize(
    ("agent", "needle"),
    [
        (2, r"agent=2 is not allowed: 'selected' or an index of the final population, 0\.\.1 \(.*population"),
        (-1, r"agent=-1 is not allowed: 'selected' .* or an index of the final population"),
        ("best", r"agent='best' is not allowed"),
        (True, r"agent=True is not allowed"),
        (1.0, r"agent=1\.0 is not allowed"),
    ],
)
def test_agent_out_of_range_one_clear_error(make_run, tmp_path, agent, needle):
    run = make_run("discrete")
    before = _files(run)
    for call in (
        lambda: load_policy(run, agent),
        lambda: evaluate_run(run, agent=agent),
        lambda: record(run, tmp_path / "v.gif", agent=agent),
    ):
        with pytest.raises(CheckpointError, match=needle):
            call()
    assert _files(run) == before and _files(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"path": "agent.avi"}, r"path='.*agent\.avi' is not allowed: a file name ending in \.gif .*, \.mp4"),
        ({"path": "agent"}, r"path='.*agent' is not allowed"),
        ({"episodes": 0}, r"episodes=0 is not allowed: an integer >= 1"),
        ({"scale": 0}, r"scale=0 is not allowed"),
        ({"every": 0}, r"every=0 is not allowed"),
    ],
)
def test_bad_record_arguments_one_clear_error_nothing_written(make_run, tmp_path, kwargs, needle):
    out = tmp_path / "out"
    kw = {"path": "agent.gif", **kwargs}
    kw["path"] = out / kw["path"]
    with pytest.raises(ValueError, match=needle):
        record(make_run("discrete"), **kw)
    assert not out.exists()


def test_bad_evaluate_episodes_and_reeval_episodes(make_run, tmp_path):
    with pytest.raises(ValueError, match=r"episodes=0 is not allowed: an integer >= 1"):
        evaluate_run(make_run("discrete"), episodes=0)
    for bad in (-1, True, 1.5):
        out = tmp_path / "out"
        cfg = ExperimentConfig(env_id="CartPole-v1", reeval_episodes=bad, out_dir=str(out))
        with pytest.raises(ConfigError, match=rf"reeval_episodes={bad!r} is not allowed: an integer >= 0"):
            run_experiment(cfg, progress=False)
        assert not out.exists()


def test_exported_from_the_package():
    assert collab.load_policy is load_policy
    assert collab.evaluate_run is evaluate_run
    assert collab.record is record
    assert {"load_policy", "evaluate_run", "record"} <= set(collab.__all__)


def test_record_script_writes_a_gif(make_run, tmp_path, capsys):
    import sys

    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    from record import main

    assert main([str(make_run("masked")), str(tmp_path / "taxi.gif"), "--agent", "0", "--scale", "0.5"]) == 0
    assert (
        "taxi.gif: " in capsys.readouterr().out and len(iio3.imread(tmp_path / "taxi.gif", index=None)) >= 1
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_pixel_checkpoints_are_git_ignored_mlp_ones_committed():
    import subprocess

    def ignored(path: str) -> bool:
        r = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True)
        return r.returncode == 0

    for setup in ("independent/seed0", "collaborative_8/seed4"):
        assert ignored(f"data/reduced/runs/CarRacing-v3/{setup}/selected.safetensors")
        assert ignored(f"data/paper/runs/CarRacing-v3/{setup}/population.safetensors")
        assert not ignored(f"data/reduced/runs/CarRacing-v3/{setup}/final.csv")
        for env in ("Acrobot-v1", "Pendulum-v1", "BipedalWalker-v3", "LunarLander-v3", "Taxi-v4"):
            assert not ignored(f"data/reduced/runs/{env}/{setup}/population.safetensors"), env


@pytest.mark.skipif(
    "avx2" not in fingerprint()["cpu_isa"], reason="portable numerics need an x86-64 CPU with AVX2"
)
def test_evaluate_run_of_a_portable_run_applies_its_numerics(tmp_path):
    """A run made with numerics='portable' is re-evaluated in portable mode: exactly, in a fresh
    process; a process that already ran PyTorch natively gets one clear error."""
    import subprocess
    import sys

    run = tmp_path / "portable"
    env_id, steps = KINDS["continuous"]
    cfg = {**BASE, "env_id": env_id, "max_episode_steps": steps, "numerics": "portable", "out_dir": str(run)}
    code = (
        "import json, sys\n"
        "from collab import ExperimentConfig, run_experiment, evaluate_run\n"
        "from collab.results import read_csv_checked\n"
        "cfg = json.loads(sys.argv[1])\n"
        "if sys.argv[2] == 'train':\n"
        "    run_experiment(ExperimentConfig(**cfg), progress=False)\n"
        "else:\n"
        "    got = evaluate_run(cfg['out_dir'])\n"
        "    want = read_csv_checked(cfg['out_dir'] + '/final.csv')\n"
        "    assert got.equals(want), (got, want)\n"
    )
    for step in ("train", "evaluate"):  # each in a fresh process
        proc = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", code, json.dumps(cfg), step],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    torch.ones(2).tanh()  # this process runs native kernels
    with pytest.raises(NumericsError, match=r"numerics='portable' is not allowed in this process"):
        evaluate_run(run)
