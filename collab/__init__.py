"""collab: UCB parameter sharing between PPO agents ("Collaborative Training"), population-batched.

``run_experiment`` and ``RunResult`` (``collab.strategies``) are imported on first use, so that the
analysis code (``collab.analysis``, ``collab.plots``) loads without torch and the environments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collab.config import ConfigError, ExperimentConfig, PPOConfig, ppo_config_for

if TYPE_CHECKING:
    from collab.strategies import RunResult, run_experiment

__all__ = ["ConfigError", "ExperimentConfig", "PPOConfig", "RunResult", "ppo_config_for", "run_experiment"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("run_experiment", "RunResult"):
        from collab import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'collab' has no attribute {name!r}")
