"""A run's results, in memory and in its folder: :class:`RunResult` (what :func:`collab.run_experiment`
returns), the round reports and the stop it offers while training, loading a complete run from its
folder, and reusing it instead of training again (or refusing a folder that holds another
configuration's run)."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from collab.config import ConfigError, ExperimentConfig
from collab.results import OPTIONAL_SCHEMA, RUN_METADATA_KEYS, SCHEMA, is_complete_run, read_csv_checked
from collab.resume import config_differences


@dataclass
class RunResult:
    """What a run wrote: the three tables, the resolved configuration, with ``reeval_episodes`` the
    re-evaluation of every final agent (``population_eval.csv``) and with ``reselect_top`` the
    candidates for selection (``reselection.csv``); else None."""

    curves: pd.DataFrame
    final: pd.DataFrame
    sharing: pd.DataFrame
    config: dict
    population_eval: pd.DataFrame | None = None
    reselection: pd.DataFrame | None = None
    reused: bool = False
    """True when ``out_dir`` already held this configuration's complete run, which was loaded
    instead of trained again."""


@dataclass(frozen=True)
class RoundReport:
    """What :func:`run_experiment` passes to ``on_round`` after every round (before the next one)."""

    round: int
    """The round that just ended, 1-based."""
    episodes: list[int]
    """Every agent's training episodes so far."""
    budget: int
    """Training episodes per agent of the whole run."""
    val_returns: list[float]
    """Every agent's validation return this round."""
    shares: pd.DataFrame
    """This round's ``sharing.csv`` rows (who copied whom); empty when nobody copied."""
    curves: pd.DataFrame
    """The run's ``curves.csv`` rows so far (all rounds up to this one)."""


class RunStopped(Exception):
    """``on_round`` asked the run to stop: it stopped at the end of round ``round`` and wrote no
    result (with ``checkpoint_every``, its checkpoints stay: running it again continues it).

    ``curves`` and ``sharing`` hold the rows of the rounds it trained."""

    def __init__(self, rnd: int, curves: pd.DataFrame, sharing: pd.DataFrame) -> None:
        super().__init__(f"stopped after round {rnd}; no result was written")
        self.round, self.curves, self.sharing = rnd, curves, sharing


def load_run(out_dir: str | Path) -> RunResult:
    """The :class:`RunResult` of the complete run saved in ``out_dir`` (``reused=True``)."""
    out = Path(out_dir)
    if not is_complete_run(out):
        raise ConfigError(f"out_dir={str(out_dir)!r} does not hold a complete run (no config.json)")
    tables = {name: read_csv_checked(out / name) for name in SCHEMA}
    optional = {n: read_csv_checked(out / n) if (out / n).is_file() else None for n in OPTIONAL_SCHEMA}
    return RunResult(
        tables["curves.csv"],
        tables["final.csv"],
        tables["sharing.csv"],
        json.loads((out / "config.json").read_text()),
        optional["population_eval.csv"],
        optional["reselection.csv"],
        reused=True,
    )


def earlier_run(cfg: ExperimentConfig) -> RunResult | None:
    """The complete run already in ``cfg.out_dir`` if it has this configuration; None if the folder
    holds no complete run; ConfigError (naming the differing settings) if it holds another one."""
    out = Path(cfg.out_dir)
    if not is_complete_run(out):
        return None
    try:
        old = json.loads((out / "config.json").read_text())
        for key in (*RUN_METADATA_KEYS, "out_dir"):
            old.pop(key, None)
        old = ExperimentConfig.from_dict({**old, "out_dir": cfg.out_dir}).to_dict()
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"out_dir={cfg.out_dir!r} holds a complete run whose config.json cannot be read ({err}): "
            "choose another out_dir or delete that folder"
        ) from None
    differ = config_differences(old, cfg.to_dict())
    if differ:
        raise ConfigError(
            f"out_dir={cfg.out_dir!r} already holds a complete run with other settings "
            f"({', '.join(differ)}): choose another out_dir, or delete that folder to train again"
        )
    return load_run(out)


def versions() -> dict[str, str]:
    """The library versions a run used (``config.json``'s ``versions``)."""
    import gymnasium

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
    }
    try:
        import envpool

        out["envpool"] = envpool.__version__
    except ImportError:
        out["envpool"] = "not installed"
    from collab import __version__

    out["collab"] = __version__
    return out
