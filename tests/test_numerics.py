"""Numerics modes: portable runs are bit-identical whatever kernels the CPU offers; every run records
the machine it ran on; a process runs one mode.

Portable runs need a fresh process (the pins must precede PyTorch's first operation), so these tests
run experiments in subprocesses. ``tests/data/portable/`` holds short runs made in portable mode;
regenerate them after a change that alters training on purpose with
``COLLAB_REGENERATE=1 pytest tests/test_numerics.py -k committed``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from collab import ExperimentConfig, run_experiment
from collab.numerics import LESSER_CPUS, NATIVE_KEY, NumericsError, fingerprint, same_native_kernels
from collab.results import SCHEMA, VOLATILE_COLUMNS
from collab.trace import BASE, CELLS, REFERENCE

GOLDEN = REFERENCE  # tests/data/portable/<env>/: the committed portable cells (collab.trace.CELLS)
#: Dispatch settings that make this machine's libraries pick the kernels of a lesser CPU
#: (benchmarks/portability.py measures which of them change native results).
LESSER = {k: LESSER_CPUS[k] for k in ("ATen default", "MKL SSE4.2", "all AVX2")}
CHILD = (
    "import json, sys\n"
    "from collab import ExperimentConfig, run_experiment\n"
    "run_experiment(ExperimentConfig(**json.loads(sys.argv[1])), progress=False)"
)

needs_avx2 = pytest.mark.skipif(
    platform.machine() != "x86_64" or "avx2" not in fingerprint()["cpu_isa"],
    reason="portable numerics need an x86-64 CPU with AVX2",
)


def run_in_process(cfg: dict, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one experiment in a fresh Python process (optionally with extra environment variables)."""
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CHILD, json.dumps(cfg)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    return {f: pd.read_csv(run_dir / f).drop(columns=VOLATILE_COLUMNS, errors="ignore") for f in SCHEMA}


def assert_same_tables(a: Path, b: Path) -> None:
    ta, tb = tables(a), tables(b)
    for f in SCHEMA:
        pd.testing.assert_frame_equal(ta[f], tb[f], obj=f)


@needs_avx2
@pytest.mark.parametrize("env_id", list(CELLS))
def test_committed_portable_runs_reproduce(env_id, tmp_path):
    """The committed portable runs come out bit for bit on this machine, whatever its CPU."""
    cfg = {**BASE, **CELLS[env_id], "env_id": env_id, "numerics": "portable", "out_dir": str(tmp_path)}
    proc = run_in_process(cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    machine = json.loads((tmp_path / "config.json").read_text())["machine"]
    assert machine["numerics"] == "portable" and machine["mkl_branch"] == "compatible"
    assert machine["torch_cpu_capability"] == "AVX2" and machine["mkldnn_enabled"] is False
    golden = GOLDEN / env_id
    if os.environ.get("COLLAB_REGENERATE") == "1":
        golden.mkdir(parents=True, exist_ok=True)
        for f in SCHEMA:
            (golden / f).write_bytes((tmp_path / f).read_bytes())
        config = json.loads((tmp_path / "config.json").read_text())  # without this machine's path
        (golden / "config.json").write_text(
            json.dumps({**config, "out_dir": f"tests/data/portable/{env_id}"}, indent=2, sort_keys=True)
            + "\n"
        )
    try:
        assert_same_tables(golden, tmp_path)
    except AssertionError as e:
        hint = f"`python -m collab.trace --env {env_id}` names the first operator that differs here"
        raise AssertionError(f"{e}\n{hint}") from None


@needs_avx2
@pytest.mark.parametrize("setting", list(LESSER))
@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CarRacing-v3"])
def test_portable_runs_ignore_the_cpus_kernels(env_id, setting, tmp_path):
    """Under every dispatch level this machine offers, a portable run equals the committed one."""
    cfg = {**BASE, **CELLS[env_id], "env_id": env_id, "numerics": "portable", "out_dir": str(tmp_path)}
    proc = run_in_process(cfg, LESSER[setting])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_tables(GOLDEN / env_id, tmp_path)


def test_native_run_records_its_machine(tmp_path):
    cfg = ExperimentConfig(
        env_id="CartPole-v1",
        n_agents=2,
        episodes_per_agent=2,
        validate_every=2,
        val_episodes=1,
        eval_episodes=1,
        max_episode_steps=20,
        out_dir=str(tmp_path),
    )
    run_experiment(cfg, progress=False)
    written = json.loads((tmp_path / "config.json").read_text())
    machine = written["machine"]
    assert written["numerics"] == "native" and machine["numerics"] == "native"
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["machine"] == platform.machine() and machine["torch"] == torch.__version__
    assert set(NATIVE_KEY) <= set(machine)
    assert same_native_kernels(machine, fingerprint())
    assert not same_native_kernels(machine, {**machine, "cpu_vendor": "SomeOtherVendor"})


@needs_avx2
def test_portable_refused_after_native_work_nothing_written(tmp_path):
    """A process that already ran PyTorch with native kernels cannot switch: one clear error."""
    torch.ones(3).tanh()  # this process has run native kernels (pytest ran other tests too)
    out = tmp_path / "out"
    cfg = ExperimentConfig(env_id="CartPole-v1", numerics="portable", out_dir=str(out))
    with pytest.raises(NumericsError, match=r"numerics='portable' is not allowed in this process"):
        run_experiment(cfg, progress=False)
    assert not out.exists()


@needs_avx2
def test_native_refused_in_a_portable_process(tmp_path):
    code = (
        "from collab.numerics import use_portable; use_portable()\n"
        "from collab import ExperimentConfig, run_experiment\n"
        f"run_experiment(ExperimentConfig(env_id='CartPole-v1', out_dir={str(tmp_path / 'out')!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "numerics='native' is not allowed in this process" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_numerics_value(tmp_path):
    from collab import ConfigError

    with pytest.raises(ConfigError, match=r"numerics='exact' is not allowed: one of native, portable"):
        run_experiment(ExperimentConfig(numerics="exact", out_dir=str(tmp_path / "o")), progress=False)
    assert not (tmp_path / "o").exists()
