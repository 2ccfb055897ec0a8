"""collab: UCB parameter sharing between PPO agents ("Collaborative Training"), population-batched.

``run_experiment`` (``collab.experiment``), ``RunResult``, ``RoundReport``, ``RunStopped`` and
``load_run`` (``collab.runs``), ``NonFiniteError`` (``collab.nonfinite``) and the saved agents'
``load_policy``, ``evaluate_run`` and ``record`` (``collab.policy``) are imported on first use, so
that the analysis code (``collab.analysis``, ``collab.plots``) loads without torch and the
environments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collab.config import ConfigError, ExperimentConfig, PPOConfig, ppo_config_for

if TYPE_CHECKING:
    from collab.experiment import run_experiment
    from collab.nonfinite import NonFiniteError
    from collab.policy import evaluate_run, load_policy, record
    from collab.runs import RoundReport, RunResult, RunStopped, load_run

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "NonFiniteError",
    "PPOConfig",
    "RoundReport",
    "RunResult",
    "RunStopped",
    "evaluate_run",
    "load_policy",
    "load_run",
    "ppo_config_for",
    "record",
    "run_experiment",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "run_experiment":
        from collab.experiment import run_experiment

        return run_experiment
    if name in ("RunResult", "RoundReport", "RunStopped", "load_run"):
        from collab import runs

        return getattr(runs, name)
    if name in ("load_policy", "evaluate_run", "record"):
        from collab import policy

        return getattr(policy, name)
    if name == "NonFiniteError":
        from collab import nonfinite

        return nonfinite.NonFiniteError
    raise AttributeError(f"module 'collab' has no attribute {name!r}")
