"""Where a profile's results live, loading and writing them, and the frame helpers every table uses.

A profile's inputs are ``data/<profile>/{curves,final,sharing}.csv`` (schema: ``collab.results``)
and, where a run re-evaluated its final agents, ``data/<profile>/runs/*/*/seed*/population_eval.csv``;
its tables and figures go to ``figures/<profile>/``, or to ``$COLLAB_FIGURES_DIR/<profile>/`` when that
environment variable is set (the test session sets it to a temporary folder, so nbval never rewrites
the committed figures). The repository root is found from the working directory, so the notebooks run
from ``notebooks/`` (nbval) and from the root (Papermill, Snakemake).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from collab.paper import ENVS, SETUPS
from collab.results import SCHEMA, ResultsError, atomic_write_csv, read_csv_checked, setup_name

#: The columns that identify one training run.
RUN_KEYS: list[str] = ["env_id", "setup", "seed"]

#: A profile's three aggregated files, in ``ProfileData`` order.
PROFILE_FILES: tuple[str, str, str] = ("curves.csv", "final.csv", "sharing.csv")

#: Environment variable that moves the default figures folder: ``$COLLAB_FIGURES_DIR/<profile>``.
FIGURES_ENV = "COLLAB_FIGURES_DIR"

#: A run's re-evaluation of its final agents (written where a run re-evaluates them): one row per
#: agent and episode.
POPULATION_EVAL = "population_eval.csv"
POPULATION_EVAL_COLUMNS: list[str] = ["agent", "episode", "return"]


class ProfileData(NamedTuple):
    """The three aggregated result frames of one profile."""

    curves: pd.DataFrame
    final: pd.DataFrame
    sharing: pd.DataFrame


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the first folder holding pyproject.toml, from ``start`` (cwd) upward.

    Falls back to the folder above the ``collab`` package when no pyproject.toml is found.
    """
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file():
            return d
    return Path(__file__).resolve().parents[2]


def profile_dir(profile: str, root: str | os.PathLike | None = None) -> Path:
    """``<root>/data/<profile>``."""
    return Path(root or project_root()) / "data" / profile


def figures_dir(profile: str, root: str | os.PathLike | None = None) -> Path:
    """``<root>/figures/<profile>``, or ``$COLLAB_FIGURES_DIR/<profile>`` when that variable is set.

    The variable lets a test session (``tests/conftest.py``) send the notebooks' outputs to a
    temporary folder; the workflow passes its folder explicitly (``out_dir``) and is not affected.
    """
    moved = os.environ.get(FIGURES_ENV, "")
    if moved:
        return Path(moved) / profile
    return Path(root or project_root()) / "figures" / profile


def load_profile(
    profile: str, root: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> ProfileData:
    """Load ``data/<profile>/{curves,final,sharing}.csv`` (or those files in ``data_dir``).

    ``data_dir`` overrides the folder (e.g. a synthetic data set). Raises ``ResultsError`` naming
    the file and the missing columns (``collab.results.read_csv_checked``).
    """
    d = Path(data_dir) if data_dir is not None else profile_dir(profile, root)
    return ProfileData(*(read_csv_checked(d / name) for name in PROFILE_FILES))


def load_population_eval(
    profile: str, root: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Every ``runs/<env>/<setup>/seed<k>/population_eval.csv`` under a profile, as one frame.

    Returns env_id, setup, seed, agent, episode, return (no rows where no run wrote the file). The
    run's keys come from its ``config.json`` (env_id, strategy, n_agents, seed), else from the folder
    names. Raises ``ResultsError`` for a file without the columns agent, episode, return.
    """
    d = Path(data_dir) if data_dir is not None else profile_dir(profile, root)
    cols = [*RUN_KEYS, *POPULATION_EVAL_COLUMNS]
    parts = []
    for path in sorted(d.glob(f"runs/*/*/seed*/{POPULATION_EVAL}")):
        df = pd.read_csv(path)
        missing = [c for c in POPULATION_EVAL_COLUMNS if c not in df.columns]
        if missing:
            raise ResultsError(f"{path}: missing columns {missing} (has {list(df.columns)})")
        run = path.parent
        cfg_path = run / "config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        if {"env_id", "strategy", "n_agents", "seed"} <= set(cfg):
            keys = {
                "env_id": cfg["env_id"],
                "setup": setup_name(cfg["strategy"], int(cfg["n_agents"])),
                "seed": int(cfg["seed"]),
            }
        else:
            keys = {"env_id": run.parent.parent.name, "setup": run.parent.name, "seed": int(run.name[4:])}
        parts.append(df[POPULATION_EVAL_COLUMNS].assign(**keys)[cols])
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)


def write_profile(data: ProfileData, out_dir: str | os.PathLike) -> None:
    """Write ``curves.csv``, ``final.csv`` and ``sharing.csv`` of ``data`` into ``out_dir`` atomically."""
    for name, df in zip(PROFILE_FILES, data, strict=True):
        atomic_write_csv(Path(out_dir) / name, df)


def check_columns(df: pd.DataFrame, kind: str, name: str | None = None) -> None:
    """Raise ResultsError if ``df`` lacks a column of ``SCHEMA[kind]`` (message names both)."""
    missing = [c for c in SCHEMA[kind] if c not in df.columns]
    if missing:
        raise ResultsError(f"{name or kind}: missing columns {missing} (has {list(df.columns)})")


def paper_order(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Sort rows by the paper's env order, then setup order, then ``extra`` columns (others last)."""
    if df.empty:
        return df.reset_index(drop=True)
    env_rank = {e: i for i, e in enumerate(ENVS)}
    setup_rank = {s: i for i, s in enumerate(SETUPS)}
    keys = df.assign(
        _e=df["env_id"].map(lambda e: env_rank.get(e, len(env_rank))),
        _s=df["setup"].map(lambda s: setup_rank.get(s, len(setup_rank))),
    )
    keys = keys.sort_values(["_e", "env_id", "_s", "setup", *extra], kind="stable")
    return keys.drop(columns=["_e", "_s"]).reset_index(drop=True)


def rounded(df: pd.DataFrame, decimals: int = 2) -> str:
    """A frame as fixed text with floats rounded (stable for nbval comparisons)."""
    if df.empty:
        return "(no rows)"
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda v: "n/a" if pd.isna(v) else f"{v:.{decimals}f}")
    return out.to_string(index=False)
