"""Resumable runs (collab.resume): a run killed at any moment and started again equals the run that
was never interrupted (CSVs and agents), and bad checkpoints or settings are refused."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from collab import ConfigError, ExperimentConfig, run_experiment
from collab.experiment import RunStopped
from collab.results import VOLATILE_COLUMNS
from collab.resume import (
    CHECKPOINT_FILE,
    ResumeError,
    RunPaused,
    _seconds,
    checkpoint_round,
    slurm_deadline,
)

CHILD = Path(__file__).resolve().parent / "resume_child.py"
TABLES = ["curves.csv", "final.csv", "sharing.csv", "population_eval.csv", "reselection.csv"]
AGENTS = ["population.safetensors", "selected.safetensors"]
#: 8 rounds, checkpoints after rounds 2, 4 and 6; the selection protocol of the study (re-selection,
#: re-evaluation) so that its state (candidates) is saved too.
RUN = {
    "env_id": "CartPole-v1",
    "strategy": "collaborative",
    "n_agents": 3,
    "episodes_per_agent": 16,
    "validate_every": 2,
    "val_episodes": 2,
    "eval_episodes": 3,
    "reeval_episodes": 2,
    "reselect_top": 2,
    "reselect_episodes": 2,
    "max_episode_steps": 40,
    "checkpoint_every": 2,
}


def run(out_dir: Path, **changes) -> None:
    run_experiment(ExperimentConfig(out_dir=str(out_dir), **{**RUN, **changes}), progress=False)


def assert_same_run(got: Path, want: Path) -> None:
    """The same tables (wall times aside) and byte-identical agents."""
    for name in TABLES:
        a, b = (pd.read_csv(d / name).drop(columns=VOLATILE_COLUMNS, errors="ignore") for d in (got, want))
        pd.testing.assert_frame_equal(a, b, obj=name)
    for name in AGENTS:
        assert (got / name).read_bytes() == (want / name).read_bytes(), name
    assert not (got / CHECKPOINT_FILE).exists(), "a complete run keeps no checkpoint"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run without interruption."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run(out)
    return out


def files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())} if d.exists() else {}


def start_child(out: Path, *hold: str, **changes) -> subprocess.Popen:
    cmd = [sys.executable, str(CHILD), str(out), json.dumps({**RUN, **changes}), *hold]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_when_held(proc: subprocess.Popen, held: Path) -> None:
    """SIGKILL the child once it says it is held (the test, not the clock, picks the moment)."""
    waited = 0.0
    while not held.exists():
        assert proc.poll() is None, f"the run ended before it was held:\n{proc.stdout.read()}"
        assert waited < 300, "the run was not held within 300 s"
        time.sleep(0.05)
        waited += 0.05
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def finish_child(out: Path, first_round: int) -> None:
    """The same command again, to the end; it must continue with round ``first_round``."""
    proc = start_child(out)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert f"first round {first_round}\n" in output, output


@pytest.mark.parametrize("after_round", [3, 6])
def test_killed_run_resumes_bit_identical(tmp_path: Path, reference: Path, after_round: int) -> None:
    """SIGKILL after a checkpoint (round 2, or 6, the last), then the same command: the same run."""
    out = tmp_path / "run"
    kill_when_held(start_child(out, "--hold-after-round", str(after_round)), tmp_path / "held")
    assert checkpoint_round(out) == after_round // 2 * 2
    assert not (out / "config.json").exists()
    finish_child(out, first_round=after_round // 2 * 2 + 1)
    assert_same_run(out, reference)
    resumed = json.loads((out / "config.json").read_text())["resumed"]
    assert [r["round"] for r in resumed] == [after_round // 2 * 2] and resumed[0]["numerics"] == "native"


def test_run_killed_while_writing_a_checkpoint_resumes_bit_identical(tmp_path: Path, reference: Path) -> None:
    """SIGKILL halfway through writing the second checkpoint: the first stays, the half-written file is
    a temporary one, and the same command continues from round 2 to the same run."""
    out = tmp_path / "run"
    kill_when_held(start_child(out, "--hold-in-write", "2"), tmp_path / "held")
    assert checkpoint_round(out) == 2
    leftovers = list(out.glob(f".{CHECKPOINT_FILE}.*"))
    assert (
        len(leftovers) == 1 and 0 < leftovers[0].stat().st_size < (out / CHECKPOINT_FILE).stat().st_size * 2
    )
    finish_child(out, first_round=3)
    assert_same_run(out, reference)
    assert not list(out.glob(f".{CHECKPOINT_FILE}.*")), "the interrupted write's leftover stays"


@pytest.mark.parametrize(
    ("strategy", "env_id", "extra"),
    [
        ("pbt", "Pendulum-v1", {"n_agents": 4}),  # PBT's generator and hyperparameters; reward scaling
        ("sequential", "CartPole-v1", {"n_agents": 2}),
        ("collaborative", "Taxi-v4", {"settings": {"stats_after_copy": "reset"}}),  # action masks
    ],
)
def test_stopped_run_resumes_bit_identical(tmp_path: Path, strategy: str, env_id: str, extra: dict) -> None:
    """In one process: stopped after its second checkpoint (round 5), then run again, a run equals
    the uninterrupted one, for every kind of strategy state."""
    changes = {"strategy": strategy, "env_id": env_id, "max_episode_steps": 50, **extra}
    run(tmp_path / "whole", **changes)
    with pytest.raises(RunStopped):
        cfg = ExperimentConfig(out_dir=str(tmp_path / "part"), **{**RUN, **changes})
        run_experiment(cfg, progress=False, on_round=lambda r: r.round == 5)
    assert checkpoint_round(tmp_path / "part") == 4
    rounds: list[int] = []
    cfg = ExperimentConfig(out_dir=str(tmp_path / "part"), **{**RUN, **changes})
    run_experiment(cfg, progress=False, on_round=lambda r: rounds.append(r.round))
    assert rounds[0] == 5, "the run did not continue from its checkpoint"
    assert_same_run(tmp_path / "part", tmp_path / "whole")


def test_checkpoints_beyond_the_last_round_change_nothing(tmp_path: Path, reference: Path) -> None:
    """A run whose checkpoint interval exceeds its rounds is the run without checkpoints, byte for
    byte, but for checkpoint_every in config.json (the boundary is what changes results)."""
    run(tmp_path / "none", checkpoint_every=None)
    run(tmp_path / "late", checkpoint_every=8)  # round 8 is the last: no boundary falls
    assert_same_run(tmp_path / "late", tmp_path / "none")
    assert "checkpoint_every" not in json.loads((tmp_path / "none" / "config.json").read_text())
    assert json.loads((tmp_path / "late" / "config.json").read_text())["checkpoint_every"] == 8


def test_deadline_pauses_at_a_checkpoint_and_the_rerun_continues(tmp_path: Path, reference: Path) -> None:
    """A deadline already passed: the run pauses at its first checkpoint (RunPaused), and the same
    call without a deadline continues it to the uninterrupted run."""
    out = tmp_path / "run"
    cfg = ExperimentConfig(out_dir=str(out), **RUN)
    with pytest.raises(RunPaused, match="after round 2"):
        run_experiment(cfg, progress=False, deadline=time.time())
    assert checkpoint_round(out) == 2 and not (out / "config.json").exists()
    with pytest.raises(RunPaused, match="after round 4"):  # it keeps moving: one segment per call
        run_experiment(cfg, progress=False, deadline=time.time())
    run_experiment(cfg, progress=False, deadline=math.inf)  # never due, whatever the speed
    assert_same_run(out, reference)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_checkpoint_every_is_refused_writing_nothing(tmp_path: Path, bad) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"checkpoint_every=.*integer >= 1"):
        run(out, checkpoint_every=bad)
    assert not out.exists()


@pytest.mark.parametrize("bad", ["soon", True, [1]])
def test_bad_deadline_is_refused_writing_nothing(tmp_path: Path, bad) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"deadline=.*Unix time"):
        run_experiment(ExperimentConfig(out_dir=str(out), **RUN), progress=False, deadline=bad)
    assert not out.exists()


@pytest.fixture
def stopped(tmp_path: Path) -> Path:
    """A run folder holding only the checkpoint after round 2."""
    out = tmp_path / "run"
    with pytest.raises(RunStopped):
        cfg = ExperimentConfig(out_dir=str(out), **RUN)
        run_experiment(cfg, progress=False, on_round=lambda r: r.round == 2)
    assert [p.name for p in out.iterdir()] == [CHECKPOINT_FILE]
    return out


def test_checkpoint_of_another_configuration_is_refused(stopped: Path) -> None:
    before = files(stopped)
    with pytest.raises(
        ResumeError, match=r"checkpoint_every: 2 there, None here"
    ):  # also without checkpoints
        run(stopped, checkpoint_every=None)
    with pytest.raises(
        ResumeError, match=r"other settings \(lam: 1\.0 there, 1\.1 here, seed: 0 there, 3 here\)"
    ):
        run(stopped, seed=3, lam=1.1)
    assert files(stopped) == before
    run(stopped, env_threads=2)  # a setting that does not change results: resumed
    assert (stopped / "config.json").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) - 100], "cut short"),
        (lambda b: b[:40], "header is cut short"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "does not match its SHA-256"),
        (lambda b: b"PK" + b[2:], "does not start like a collab checkpoint"),
        (lambda b: b.replace(b'"round": 2', b'"round": 4'), "does not match its SHA-256"),
        (lambda b: b.replace(b'"size"', b'"sise"'), "header lacks fields"),
    ],
)
def test_damaged_checkpoint_is_refused(stopped: Path, damage, message: str) -> None:
    path = stopped / CHECKPOINT_FILE
    path.write_bytes(damage(path.read_bytes()))
    before = files(stopped)
    with pytest.raises(ResumeError, match=message):
        run(stopped)
    assert files(stopped) == before
    assert checkpoint_round(stopped) is None


def test_unpicklable_strategy_state_is_refused_before_training(tmp_path: Path, monkeypatch) -> None:
    from collab.strategies.collaborative import Collaborative

    monkeypatch.setattr(Collaborative, "state", lambda self: {"f": lambda: None})
    with pytest.raises(ConfigError, match=r"strategy='collaborative' cannot be checkpointed"):
        run(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_run_completed_before_its_checkpoint_was_removed_is_reused(tmp_path: Path, reference: Path) -> None:
    """A kill between config.json and deleting resume.ckpt: the complete run is loaded, the file goes."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    (out / CHECKPOINT_FILE).write_bytes(b"left behind")
    result = run_experiment(ExperimentConfig(out_dir=str(out), **RUN), progress=False)
    assert result.reused and not (out / CHECKPOINT_FILE).exists()


def test_slurm_time_left_is_parsed() -> None:
    assert _seconds("3:00") == 180
    assert _seconds("59") == 59
    assert _seconds("1:02:03") == 3723
    assert _seconds("2-00:00:10\n") == 2 * 86400 + 10
    assert _seconds("UNLIMITED") is None and _seconds("INVALID") is None and _seconds("") is None


def test_no_deadline_outside_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm_deadline() is None
    monkeypatch.setenv("SLURM_JOB_ID", "12345")
    monkeypatch.setenv("PATH", "")  # no squeue: SLURM does not tell, so no deadline
    assert slurm_deadline() is None
