"""Non-finite values stop training with a :class:`NonFiniteError` that says who produced them.

After every rollout a few whole-tensor checks cover the observations, rewards and the policy's
outputs (:func:`check_rollout`); after every update one ``torch.isfinite(flat).all()`` covers every
agent's parameters (:func:`check_parameters`). Only when a check fails are the agents and the first
non-finite quantity looked up (the costs: ``benchmarks/README.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


class NonFiniteError(RuntimeError):
    """Training or an environment produced NaN or infinity: the run stops here (and writes nothing).

    ``source``: ``"training"`` (the agents diverged: their loss, gradient norm, parameters or
    policy outputs became non-finite) or ``"environment"`` (the environment returned non-finite
    observations or rewards while the agents' parameters and actions were finite). ``agents``: the
    agents concerned; ``what``: the quantities that went non-finite, first in time first.
    :func:`collab.run_experiment` adds where it happened (:attr:`context`: environment, phase,
    round, training episodes per agent, out_dir) before the error leaves it.
    """

    def __init__(self, source: str, agents: Sequence[int], what: Sequence[str], settings: str = "") -> None:
        super().__init__(source, list(agents), list(what))
        self.source = source
        self.agents = [int(a) for a in agents]
        self.what = list(what)
        self.settings = settings
        self.context: dict[str, Any] = {}

    def add_context(self, **context: Any) -> NonFiniteError:
        """Record where the error happened (keys already set are kept); returns self."""
        for key, value in context.items():
            self.context.setdefault(key, value)
        return self

    def _where(self) -> str:
        c = self.context
        out = f" on {c['env_id']}" if "env_id" in c else ""
        phase = c.get("phase", "training")
        if phase == "final evaluation":
            out += " in the final evaluation of the selected policy"
        elif phase in ("training", "validation") and "round" in c:
            out += f" in {'the validation of ' if phase == 'validation' else ''}round {c['round']}"
        elif phase not in ("training", "validation"):
            out += f" in the {phase}"
        if "episodes" in c:
            eps = [int(e) for e in c["episodes"]]
            out += f" after {sum(eps)} training episodes"
            out += f" ({', '.join(map(str, eps))} per agent)" if len(eps) > 1 else ""
        return out

    def __str__(self) -> str:
        who = ("agent " if len(self.agents) == 1 else "agents ") + ", ".join(map(str, self.agents))
        what = ", ".join(self.what)
        if self.source == "environment":
            msg = (
                f"the environment returned non-finite (NaN or inf) {what} to {who}{self._where()}, while "
                "the agents' parameters and actions were finite: the environment (or a wrapper around it) "
                "is at fault, not training; check what its reset() and step() return"
            )
        else:
            settings = f" (now {self.settings})" if self.settings else ""
            msg = (
                f"training diverged: {what} became non-finite (NaN or inf) for {who}{self._where()}. "
                "Lower the learning rate, clip gradients harder (a smaller max_grad_norm) or normalise "
                f"observations and rewards (norm_obs, norm_reward){settings}"
            )
        if "out_dir" in self.context:
            msg += f"; nothing was written to {self.context['out_dir']}"
        return msg + "."


def first_true(bad: np.ndarray, never: int) -> np.ndarray:
    """Per column of ``bad`` [T, n]: the first row that is True, else ``never``."""
    return np.where(bad.any(0), bad.argmax(0), never)


def bad_per_agent(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[T, n, ...]`` -> bool ``[T, n]``: where a step of an agent holds a non-finite value."""
    x = torch.as_tensor(x).detach().cpu()
    return (~torch.isfinite(x.reshape(x.shape[0], x.shape[1], -1))).any(-1).numpy()


def check_rollout(
    obs: torch.Tensor | None,
    last_obs: torch.Tensor,
    policy: list[tuple[str, torch.Tensor]],
    rewards: np.ndarray,
    settings: str,
) -> None:
    """Raise NonFiniteError if a rollout holds NaN/inf, blaming whoever produced the first one.

    ``obs`` [T, n, m, d]: the observations acted on (None where they cannot be non-finite: pixels,
    one-hot states), ``last_obs`` the one after the last step; ``policy``: the policy's outputs by
    name, each ``[T, n, ...]``; ``rewards`` [T, n, m]. A few whole-tensor checks; an agent's failure
    is the environment's if its first non-finite observation or reward came before the policy's
    first non-finite output (a NaN observation makes the action NaN too).
    """
    ok = bool(np.isfinite(rewards).all()) and all(bool(torch.isfinite(x).all()) for _, x in policy)
    if obs is not None:
        ok = ok and bool(torch.isfinite(obs).all()) and bool(torch.isfinite(last_obs).all())
    if ok:
        return
    T, n = rewards.shape[:2]
    never = 2 * T + 3
    # event times: observation t at 2t, the policy's outputs at step t at 2t+1, reward t at 2t+2
    bad_obs = np.zeros((T + 1, n), dtype=bool)
    if obs is not None:
        bad_obs[:T] = bad_per_agent(obs)
        bad_obs[T] = bad_per_agent(last_obs.unsqueeze(0))[0]
    bad_rew = bad_per_agent(rewards)
    bad_pol = {name: bad_per_agent(x) for name, x in policy}
    t_env = np.minimum(2 * first_true(bad_obs, never), 2 * first_true(bad_rew, never) + 2)
    t_pol = 2 * first_true(np.any(list(bad_pol.values()), axis=0), never) + 1
    env_agents = np.flatnonzero((t_env < 2 * never) & (t_env < t_pol))
    if len(env_agents):
        what = [k for k, bad in (("observations", bad_obs), ("rewards", bad_rew)) if bad[:, env_agents].any()]
        raise NonFiniteError("environment", env_agents, what)
    agents = np.flatnonzero(t_pol < t_env)
    what = [k for k, bad in bad_pol.items() if bad[:, agents].any()]
    raise NonFiniteError("training", agents, ["policy " + ", ".join(what)], settings)


def check_parameters(
    flat: torch.Tensor,
    loss_sum: torch.Tensor,
    grad_norm_sum: torch.Tensor,
    adv: torch.Tensor,
    ret: torch.Tensor,
    settings: str,
) -> None:
    """After an update: one ``isfinite`` over every agent's parameters ``flat`` [n, P]; on failure
    raise NonFiniteError naming the agents and what went non-finite (the update's advantages/returns
    ``[n, B]``, its loss and gradient norms summed over minibatches, the parameters)."""
    if bool(torch.isfinite(flat).all()):
        return
    agents = np.flatnonzero((~torch.isfinite(flat).all(1)).cpu().numpy())
    what = []
    data_bad = ~(torch.isfinite(adv).all(1) & torch.isfinite(ret).all(1)).cpu().numpy()
    if data_bad[agents].any():
        what.append("advantages/returns")
    if not bool(torch.isfinite(loss_sum)):
        what.append("loss")
    if (~torch.isfinite(grad_norm_sum)).cpu().numpy()[agents].any():
        what.append("gradient norm")
    raise NonFiniteError("training", agents, [*what, "parameters"], settings)
