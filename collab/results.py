"""The result files of one run and their schema: the only interface between training and analysis.

A run writes into its ``out_dir``: ``curves.csv``, ``final.csv``, ``sharing.csv``, its agents
(:data:`CHECKPOINT_FILES`, see :mod:`collab.checkpoints`), with ``reeval_episodes`` also
``population_eval.csv`` and with ``reselect_top`` ``reselection.csv`` (:data:`OPTIONAL_SCHEMA`), and
``config.json``. Every file is written to a
temporary name and renamed, and ``config.json`` is written last: a folder whose ``config.json``
exists holds a complete run.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

#: Columns every run's files have (more may follow; these names are the contract).
KEY_COLUMNS = ["env_id", "strategy", "n_agents", "seed", "setup"]
SCHEMA: dict[str, list[str]] = {
    "curves.csv": KEY_COLUMNS
    + [
        "agent",  # agent index within the run (sequential: 0)
        "round",  # validation round, 1-based
        "episode",  # this agent's training episodes so far (the budget unit)
        "total_episodes",  # training episodes of all agents of the run so far
        "env_steps",  # this agent's training environment steps so far
        "wall_time_s",  # seconds since the run started (volatile)
        "train_return",  # mean return of this agent's training episodes in this round
        "val_return",  # mean return over val_episodes validation episodes (deterministic policy)
        "copied_from",  # source agent this agent copied at this round's end (-1: none)
    ],
    "final.csv": KEY_COLUMNS
    + [
        "selected_agent",  # agent of the selected checkpoint
        "selected_round",  # round of the selected checkpoint
        "selected_val_return",  # its validation return
        "eval_episode",  # 0..eval_episodes-1
        "return",  # undiscounted return of that evaluation episode
    ],
    "sharing.csv": KEY_COLUMNS
    + [
        "round",  # k, the round at whose end the copy happened
        "episode",  # episodes per agent at that point
        "source",  # i: the agent whose state was copied
        "target",  # j: the agent that received it
    ],
}
#: The score columns every sharing.csv carries after SCHEMA's (empty where a strategy has no such
#: score): UCB_i(k), UCB_j(k), R_hat_i(k), R_hat_j(k) of UCB sharing; a strategy's own score columns
#: (``Strategy.score_columns``) follow. Kept in every file so that the files of one grid, whatever
#: their strategies, stack into one table with the same columns as the runs committed before.
SHARE_SCORE_COLUMNS = ["ucb_source", "ucb_target", "mean_source", "mean_target"]
#: Files a run writes only when asked: ``population_eval.csv`` with ``reeval_episodes`` > 0 (every
#: final agent and the selected checkpoint on the same ``reeval_episodes`` episodes), and
#: ``reselection.csv`` with ``reselect_top`` >= 2 (the candidates for selection).
OPTIONAL_SCHEMA: dict[str, list[str]] = {
    "population_eval.csv": KEY_COLUMNS
    + [
        "agent",  # final agent's index; -1: the selected checkpoint
        "round",  # round the agent's state comes from (final agents: the last round)
        "episode",  # 0..reeval_episodes-1 (the same episodes for every agent)
        "return",  # undiscounted return of that episode (deterministic policy)
    ],
    "reselection.csv": KEY_COLUMNS
    + [
        "candidate",  # 0..reselect_top-1, by validation return (0: the paper's selection)
        "agent",  # the candidate checkpoint's agent
        "round",  # and round
        "val_return",  # its validation return
        "reselect_return",  # its mean return on reselect_episodes fresh episodes (the same for all)
        "selected",  # whether it was selected (the best reselect_return; ties: the lower candidate)
    ],
}
#: Columns whose values change from run to run of the same config (ignored by determinism checks).
VOLATILE_COLUMNS = ["wall_time_s"]
RESULT_FILES = ["curves.csv", "final.csv", "sharing.csv", "config.json"]
#: The agents a run keeps (collab.checkpoints): the selected checkpoint and the final population.
#: Not in RESULT_FILES: runs made before they were saved are complete without them.
CHECKPOINT_FILES = ["selected.safetensors", "population.safetensors"]
#: Keys of config.json that describe how a run went, not its configuration.
RUN_METADATA_KEYS = ("versions", "backend_used", "budget_unit", "machine", "checkpoints", "resumed")


class ResultsError(ValueError):
    """A result file is missing or has missing columns; the message names the file and columns."""


def setup_name(strategy: str, n_agents: int) -> str:
    """The setup of a run that names none: Table 1's columns independent, sequential and
    collaborative_<n>; any other strategy <strategy>_<n>, so that populations of
    different sizes never share a run folder."""
    if strategy in ("independent", "sequential"):
        return strategy
    return f"{strategy}_{n_agents}"


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """The one atomic writer: yields a temporary path beside ``path`` (ending in ``suffix``) to write
    to; when the block ends without an error the file gets the usual permissions (0666 less the
    umask; ``mkstemp`` creates 0600) and is renamed to ``path``, else it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc/self/status``;
    setting and restoring it, as elsewhere, is not safe while another thread creates files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run_keys(cfg: Any) -> dict[str, Any]:
    """The key columns (:data:`KEY_COLUMNS`) of a run of ``cfg`` (an ExperimentConfig)."""
    return {
        "env_id": cfg.env_id,
        "strategy": cfg.strategy,
        "n_agents": cfg.n_agents,
        "seed": cfg.seed,
        "setup": cfg.setup or setup_name(cfg.strategy, cfg.n_agents),
    }


def final_rows(
    keys: Mapping[str, Any], agent: int, rnd: int, val_return: float, returns: Iterable[float]
) -> list[dict[str, Any]]:
    """``final.csv`` rows: the evaluation returns of the checkpoint (agent, round) validated at
    ``val_return``."""
    return [
        {**keys, "selected_agent": agent, "selected_round": rnd, "selected_val_return": val_return,
         "eval_episode": i, "return": float(r)}
        for i, r in enumerate(returns)
    ]  # fmt: skip


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_csv(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a DataFrame as CSV atomically (no index)."""
    atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))


def frame(name: str, rows: Iterable[dict[str, Any]], extra: Iterable[str] = ()) -> pd.DataFrame:
    """Rows as a DataFrame with the schema's columns first (sharing.csv: then
    :data:`SHARE_SCORE_COLUMNS` and ``extra``, a strategy's own); an empty frame keeps the header."""
    df = pd.DataFrame(list(rows))
    cols = {**SCHEMA, **OPTIONAL_SCHEMA}[name]
    if name == "sharing.csv":
        cols = cols + SHARE_SCORE_COLUMNS + [c for c in extra if c not in SHARE_SCORE_COLUMNS]
        df = df.reindex(columns=list(dict.fromkeys([*cols, *df.columns]))) if not df.empty else df
    if df.empty:
        return pd.DataFrame(columns=cols)
    extra = [c for c in df.columns if c not in cols]
    return df[cols + extra]


def write_run(
    out_dir: str | os.PathLike,
    curves: pd.DataFrame,
    final: pd.DataFrame,
    sharing: pd.DataFrame,
    config: dict[str, Any],
    extra: Mapping[str, bytes | pd.DataFrame] | None = None,
) -> None:
    """Write the result files of one run; config.json last, so it marks completion.

    ``extra``: more files by name (bytes, or a DataFrame written as CSV), e.g. the checkpoints and
    ``population_eval.csv``. Checkpoints and optional files of an earlier run in ``out_dir`` that
    this run does not write are removed, so that every file in the folder belongs to this run.
    """
    out = Path(out_dir)
    extra = dict(extra or {})
    (out / "config.json").unlink(missing_ok=True)
    for name in [*CHECKPOINT_FILES, *OPTIONAL_SCHEMA]:
        if name not in extra:
            (out / name).unlink(missing_ok=True)
    atomic_write_csv(out / "curves.csv", curves)
    atomic_write_csv(out / "final.csv", final)
    atomic_write_csv(out / "sharing.csv", sharing)
    for name, content in extra.items():
        if isinstance(content, pd.DataFrame):
            atomic_write_csv(out / name, content)
        else:
            atomic_write_bytes(out / name, content)
    atomic_write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_csv_checked(path: str | os.PathLike, kind: str | None = None) -> pd.DataFrame:
    """Read a result CSV and check it has the schema's columns for ``kind`` (default: its name).

    Raises ResultsError naming the file and the missing columns.
    """
    path = Path(path)
    kind = kind or path.name
    cols = {**SCHEMA, **OPTIONAL_SCHEMA}[kind]
    if not path.is_file():
        raise ResultsError(f"{path}: file not found (expected a {kind} with columns {cols})")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{path}: empty file (expected columns {cols})") from None
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ResultsError(f"{path}: missing columns {missing} (has {list(df.columns)})")
    return df


def is_complete_run(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir`` holds all four result files (config.json is written last)."""
    return all((Path(out_dir) / f).is_file() for f in RESULT_FILES)


def aggregate_runs(run_dirs: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> None:
    """Concatenate the CSVs of complete runs into ``out_dir/{curves,final,sharing}.csv``."""
    run_dirs = [Path(d) for d in run_dirs]
    for d in run_dirs:
        if not is_complete_run(d):
            raise ResultsError(f"{d}: not a complete run (needs {RESULT_FILES})")
    for name in ("curves.csv", "final.csv", "sharing.csv"):
        frames = [read_csv_checked(d / name) for d in sorted(run_dirs)]
        frames = [f for f in frames if not f.empty]
        df = pd.concat(frames, ignore_index=True) if frames else frame(name, [])
        atomic_write_csv(Path(out_dir) / name, df)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".1f") -> str:
    """A DataFrame as a GitHub Markdown table (no extra dependency)."""

    def cell(v: Any) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
