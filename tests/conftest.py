"""Shared fixtures: the repository root and a Papermill runner for the notebooks.

At import, before any test or nbval kernel starts, ``COLLAB_FIGURES_DIR`` is set to a temporary
folder, so the analysis notebooks that nbval runs (and their kernels, which inherit the environment)
write their figures and tables there instead of into the committed ``figures/<profile>/``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from collab.envpool_backend import keep_plotting_env

ROOT = Path(__file__).resolve().parent.parent

_FIGURES_TMP = tempfile.mkdtemp(prefix="collab-figures-")
os.environ["COLLAB_FIGURES_DIR"] = _FIGURES_TMP
atexit.register(shutil.rmtree, _FIGURES_TMP, ignore_errors=True)

#: Train-notebook parameters for runs that take seconds (CartPole, 20-step episodes).
TINY = {
    "env_id": "CartPole-v1",
    "n_agents": 2,
    "episodes_per_agent": 4,
    "validate_every": 2,
    "val_episodes": 1,
    "eval_episodes": 2,
    "max_episode_steps": 20,
}


@pytest.fixture(autouse=True)
def _keep_matplotlib_env():
    """A test that imports envpool directly must not leave MPLBACKEND=Agg to nbval's later kernels."""
    with keep_plotting_env():
        yield


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def papermill_args(params: dict) -> list[str]:
    """``-p NAME VALUE`` options; ``-r`` (raw string) for strings so '1' stays a string."""
    args: list[str] = []
    for name, value in params.items():
        if isinstance(value, dict | list):  # a mapping or a list goes as YAML (JSON is YAML)
            args += ["-y", json.dumps({name: value})]
            continue
        args += ["-r" if isinstance(value, str) else "-p", name, "None" if value is None else str(value)]
    return args


@pytest.fixture
def papermill(tmp_path: Path):
    """Run ``notebooks/<name>.ipynb`` with Papermill in ``tmp_path``; returns the CompletedProcess.

    ``root``: the repository whose notebooks run (default this one); ``cwd``: the working directory
    (default ``tmp_path``); ``env``: more environment variables."""

    def run(
        name: str,
        params: dict,
        timeout: float = 300,
        root: Path = ROOT,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess:
        out_nb = tmp_path / f"{name}.out.ipynb"
        cmd = [
            sys.executable,
            "-m",
            "papermill",
            "--no-progress-bar",
            str(root / "notebooks" / f"{name}.ipynb"),
        ]
        cmd += [str(out_nb), *papermill_args(params)]
        environ = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | (env or {})
        return subprocess.run(
            cmd, cwd=cwd or tmp_path, env=environ, capture_output=True, text=True, timeout=timeout
        )

    return run
