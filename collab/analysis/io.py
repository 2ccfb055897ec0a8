"""Where a profile's results live, loading and writing them, and the frame helpers every table uses.

A profile's inputs are ``data/<profile>/{curves,final,sharing}.csv`` (schema: ``collab.results``),
``data/<profile>/setups.json`` where the workflow wrote it (the config's setups, in its order:
:mod:`collab.analysis.setups`) and, where a run re-evaluated its final agents,
``data/<profile>/runs/*/*/seed*/population_eval.csv`` (and ``reselection.csv``);
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
from typing import Any, NamedTuple

import pandas as pd

from collab.analysis.setups import Setup, merge_setups, setup_names, setup_order, setups_from_frames
from collab.paper import ENVS
from collab.results import (
    SCHEMA,
    ResultsError,
    atomic_write_csv,
    atomic_write_text,
    read_csv_checked,
)

#: The columns that identify one training run.
RUN_KEYS: list[str] = ["env_id", "setup", "seed"]

#: A profile's three aggregated files, in ``ProfileData`` order.
PROFILE_FILES: tuple[str, str, str] = ("curves.csv", "final.csv", "sharing.csv")
#: A profile's setups, in the workflow config's order (written by the workflow's aggregate step).
SETUPS_FILE = "setups.json"

#: Environment variable that moves the default figures folder: ``$COLLAB_FIGURES_DIR/<profile>``.
FIGURES_ENV = "COLLAB_FIGURES_DIR"

#: A run's re-evaluation of its final agents (written where a run re-evaluates them): one row per
#: agent and episode.
POPULATION_EVAL = "population_eval.csv"
POPULATION_EVAL_COLUMNS: list[str] = ["agent", "episode", "return"]
#: A profile's selected agents re-evaluated on fresh episodes (``workflow/scripts/reevaluate.py``).
REEVAL_SELECTED = "reeval_selected.csv"
#: A run's candidates for selection re-validated on fresh episodes (where it set ``reselect_top``).
RESELECTION = "reselection.csv"
RESELECTION_COLUMNS: list[str] = ["candidate", "agent", "round", "val_return", "reselect_return", "selected"]


class ProfileData(NamedTuple):
    """The three aggregated result frames of one profile, and its setups.

    ``setups``: one {"name", "strategy", "n_agents", ...} per setup, in the order every table and
    figure uses (:func:`load_profile` fills it; empty: derived from the frames, :attr:`order`).
    """

    curves: pd.DataFrame
    final: pd.DataFrame
    sharing: pd.DataFrame
    setups: tuple[Setup, ...] = ()

    @property
    def order(self) -> list[str]:
        """The setup names in table order: ``setups`` where given, else those in the frames
        (:func:`collab.analysis.setups.default_order`)."""
        if self.setups:
            return setup_names(self.setups)
        return setup_names(setups_from_frames(self.final, self.curves, self.sharing))

    @property
    def setup_info(self) -> list[Setup]:
        """``setups`` where given, else {"name", "strategy", "n_agents"} of the setups in the frames."""
        return [dict(s) for s in self.setups] or setups_from_frames(self.final, self.curves, self.sharing)


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


def _check_setups(obj: Any, path: Path) -> list[Setup]:
    """``obj`` as a list of setups; ResultsError naming the file and the first bad entry otherwise."""
    if not isinstance(obj, list):
        raise ResultsError(f"{path}: expected a JSON list of setups, got {type(obj).__name__}")
    names: set[str] = set()
    for i, s in enumerate(obj):
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not s["name"]:
            raise ResultsError(f"{path}: entry {i} is not an object with a non-empty string 'name': {s!r}")
        if s["name"] in names:
            raise ResultsError(f"{path}: setup name {s['name']!r} appears twice")
        names.add(s["name"])
    return [dict(s) for s in obj]


def load_setups(
    profile: str, root: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> list[Setup] | None:
    """The setups of ``data/<profile>/setups.json`` (or of ``data_dir``), in the config's order.

    Each is {"name", "strategy", "n_agents", plus any other ExperimentConfig field the setup sets}.
    None where the file does not exist; ``ResultsError`` naming the file where it is not a list of
    objects with unique string names.
    """
    d = Path(data_dir) if data_dir is not None else profile_dir(profile, root)
    path = d / SETUPS_FILE
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON ({e})") from e
    return _check_setups(obj, path)


def load_profile(
    profile: str, root: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> ProfileData:
    """Load ``data/<profile>/{curves,final,sharing}.csv`` and its setups (or those files in ``data_dir``).

    ``data_dir`` overrides the folder (e.g. a synthetic data set). ``setups``: those of
    ``setups.json`` (:func:`load_setups`) in its order, then any other setup found in the frames;
    without the file, those found (the paper's five in the paper's order, then the others in order of
    first appearance). Raises ``ResultsError`` naming the file and the missing columns
    (``collab.results.read_csv_checked``).
    """
    d = Path(data_dir) if data_dir is not None else profile_dir(profile, root)
    curves, final, sharing = (read_csv_checked(d / name) for name in PROFILE_FILES)
    declared = load_setups(profile, root, d)
    setups = merge_setups(declared, setups_from_frames(final, curves, sharing))
    return ProfileData(curves, final, sharing, tuple(setups))


def load_population_eval(
    profile: str,
    root: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    runs_of: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every ``runs/<env>/<setup>/seed<k>/population_eval.csv`` under a profile, as one frame.

    Returns env_id, setup, seed, agent, episode, return (no rows where no run wrote the file). The
    run's keys come from the file's own env_id, setup and seed columns where it has them, else from
    its ``config.json`` (env_id and seed; the setup where it names one, else its folder's name, which
    the workflow names after the setup), else from the folder names. ``runs_of``: a frame with
    env_id, setup and seed (the profile's final.csv): only the runs it has are kept, so that runs
    left out of an analysis (``only_envs``, or runs finished since the aggregation) stay out. Raises
    ``ResultsError`` for a file without the columns agent, episode, return.
    """
    return load_run_files(profile, POPULATION_EVAL, POPULATION_EVAL_COLUMNS, root, data_dir, runs_of)


def load_reselection(
    profile: str,
    root: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    runs_of: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every run's ``reselection.csv`` (the candidates re-validated on fresh episodes, where a run
    set ``reselect_top``) under a profile, as one frame: env_id, setup, seed and
    :data:`RESELECTION_COLUMNS`; keys and ``runs_of`` as :func:`load_population_eval`."""
    return load_run_files(profile, RESELECTION, RESELECTION_COLUMNS, root, data_dir, runs_of)


def load_reeval(
    profile: str, root: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """``data/<profile>/reeval_selected.csv`` (the committed selected agents re-evaluated on fresh
    episodes by ``workflow/scripts/reevaluate.py``; final.csv's columns), or an empty frame with
    those columns where the profile has none."""
    d = Path(data_dir) if data_dir is not None else profile_dir(profile, root)
    path = d / REEVAL_SELECTED
    if not path.is_file():
        return pd.DataFrame(columns=SCHEMA["final.csv"])
    return read_csv_checked(path, "final.csv")


def load_run_files(
    profile: str,
    name: str,
    columns: Sequence[str],
    root: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    runs_of: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The file ``name`` of every run folder under a profile (``runs/<env>/<setup>/seed<k>/``), its
    ``columns`` with the run's keys in front (see :func:`load_population_eval`)."""
    d = Path(data_dir) if data_dir is not None else profile_dir(profile, root)
    columns = list(columns)
    cols = [*RUN_KEYS, *columns]
    parts = []
    for path in sorted(d.glob(f"runs/*/*/seed*/{name}")):
        df = pd.read_csv(path)
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ResultsError(f"{path}: missing columns {missing} (has {list(df.columns)})")
        if set(RUN_KEYS) <= set(df.columns):
            parts.append(df[cols])
            continue
        run = path.parent
        cfg_path = run / "config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        folder = {"env_id": run.parent.parent.name, "setup": run.parent.name, "seed": int(run.name[4:])}
        keys = folder
        if {"env_id", "seed"} <= set(cfg):
            keys = {
                "env_id": cfg["env_id"],
                "setup": cfg.get("setup") or folder["setup"],
                "seed": int(cfg["seed"]),
            }
        parts.append(df[columns].assign(**keys)[cols])
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    if runs_of is not None:
        missing = [c for c in RUN_KEYS if c not in runs_of.columns]
        if missing:
            raise ResultsError(f"runs_of: missing columns {missing} (has {list(runs_of.columns)})")
        keep = runs_of[RUN_KEYS].drop_duplicates()
        out = out.merge(keep, on=RUN_KEYS, how="inner")[cols]
    return out


def write_profile(data: ProfileData, out_dir: str | os.PathLike) -> None:
    """Write ``curves.csv``, ``final.csv`` and ``sharing.csv`` of ``data`` into ``out_dir`` atomically,
    and ``setups.json`` where ``data.setups`` is not empty."""
    for name, df in zip(PROFILE_FILES, data[:3], strict=True):
        atomic_write_csv(Path(out_dir) / name, df)
    if data.setups:
        atomic_write_text(Path(out_dir) / SETUPS_FILE, json.dumps(list(data.setups), indent=1) + "\n")


def check_columns(df: pd.DataFrame, kind: str, name: str | None = None) -> None:
    """Raise ResultsError if ``df`` lacks a column of ``SCHEMA[kind]`` (message names both)."""
    missing = [c for c in SCHEMA[kind] if c not in df.columns]
    if missing:
        raise ResultsError(f"{name or kind}: missing columns {missing} (has {list(df.columns)})")


def paper_order(
    df: pd.DataFrame, extra: Sequence[str] = (), setups: Sequence[str] | None = None
) -> pd.DataFrame:
    """Sort rows by the paper's env order (others after, by name), then setup order, then ``extra``.

    Setup order: ``setups`` (a profile's order, e.g. ``ProfileData.order``), then the frame's other
    setups by :func:`collab.analysis.setups.setup_order` (the paper's five first, then first appearance).
    """
    if df.empty:
        return df.reset_index(drop=True)
    env_rank = {e: i for i, e in enumerate(ENVS)}
    setup_rank = {s: i for i, s in enumerate(setup_order(df["setup"], setups))}
    keys = df.assign(
        _e=df["env_id"].map(lambda e: env_rank.get(e, len(env_rank))),
        _s=df["setup"].map(setup_rank),
    )
    keys = keys.sort_values(["_e", "env_id", "_s", *extra], kind="stable")
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
