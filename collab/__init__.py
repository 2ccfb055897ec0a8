"""collab: UCB parameter sharing between PPO agents ("Collaborative Training"), population-batched."""

from collab.config import ConfigError, ExperimentConfig, PPOConfig, ppo_config_for

__all__ = ["ConfigError", "ExperimentConfig", "PPOConfig", "ppo_config_for", "run_experiment"]
__version__ = "0.1.0"


def run_experiment(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - thin lazy re-export
    """Run one experiment; see :func:`collab.strategies.run_experiment`."""
    from collab.strategies import run_experiment as _run

    return _run(*args, **kwargs)
