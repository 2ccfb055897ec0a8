"""UCB parameter sharing (paper section 3, eq. 1 and 2).

The decision is a pure function of per-agent statistics (:func:`ucb`, :func:`share_sources`); the
copy itself is :meth:`collab.ppo.PopulationPPO.copy_agents`. :class:`UCBSharer` keeps the statistics
and applies the choices the paper leaves open. Each choice, with the paper's sentence:

* **k** -- "at each step k, agent i accumulates rewards R_i(k) over a series of episodes": a step
  is one *round* (``validate_every`` training episodes of every agent); k = 1, 2, ... counts rounds
  and the decision is made at the end of round k.
* **N_i(k)** -- "the number of steps taken by agent i": the number of rounds whose episodes enter
  R_hat_i (k for every agent unless statistics are reset after a copy).
* **R_hat_i(k)** -- "the estimated mean reward for agent i up to step k": ``cumulative`` (default,
  the literal reading) is the mean return of all agent i's training episodes up to round k;
  ``last_round`` uses only round k's episodes.
* **Several qualifying sources** -- not addressed: ``best`` (default) copies the qualifying agent
  with the highest UCB (ties: lowest index); ``random`` picks one uniformly (as population-based
  training does).
* **Receiver's statistics after a copy** -- not addressed: ``keep`` (default; the receiver keeps its
  own history, the literal reading of "R_i(k) accumulated by agent i"), ``reset`` (history emptied:
  the copied policy starts a fresh record) or ``inherit`` (takes the source's record).
* **Simultaneity** -- all decisions of a round use the statistics before any copy, and copies read
  the states before any copy (an agent can be a source and a target in one round only with
  ``random``).
* **Eq. 2 with negative rewards** -- "UCB_i(k) > lambda * UCB_j(k)" (``literal``, default): for
  lambda > 1 and negative UCB_j, lambda * UCB_j < UCB_j, so the rule gets *looser*, not stricter.
  ``sign_robust``: UCB_i - UCB_j > (lambda - 1) * |UCB_j|, identical at lambda = 1 and stricter for
  lambda > 1 whatever the sign.

With equal budgets and ``keep``, N_i(k) = k for every agent, so the exploration bonus
c * sqrt(log k / N_i) is the same for all agents and cancels: at lambda = 1 the rule reduces to
"copy every agent whose mean training return is lower than the best one's".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from collab.config import ConfigError, check_choice, check_sharing

#: The choices of each open question (module docstring); the first is the default.
RULES = ("literal", "sign_robust")
SOURCE_CHOICES = ("best", "random")
STATS_AFTER_COPY = ("keep", "reset", "inherit")
REWARD_ESTIMATES = ("cumulative", "last_round")


def ucb(mean: np.ndarray, n_obs: np.ndarray, k: int, c: float) -> np.ndarray:
    """Eq. 1: UCB_i(k) = R_hat_i(k) + c * sqrt(log k / N_i(k)). ``n_obs`` must be >= 1."""
    n_obs = np.asarray(n_obs, dtype=np.float64)
    if np.any(n_obs < 1):
        raise ValueError(f"N_i(k) must be >= 1, got {n_obs.tolist()}")
    return np.asarray(mean, dtype=np.float64) + c * np.sqrt(math.log(k) / n_obs)


#: Eq. 2's rules: ``rule(ui, uj, lam)`` is True where agent j should take agent i's state. The
#: names are :data:`RULES`; a new rule is one entry here and its name there.
RULE_TESTS: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "literal": lambda ui, uj, lam: ui > lam * uj,
    "sign_robust": lambda ui, uj, lam: (ui - uj) > (lam - 1.0) * np.abs(uj),
}


def qualifies(ucb_values: np.ndarray, lam: float, rule: str = "literal") -> np.ndarray:
    """Eq. 2 condition as a matrix: ``q[i, j]`` is True when agent j should take agent i's state."""
    check_choice("rule", rule, RULES)
    if rule not in RULE_TESTS:
        raise ConfigError(
            f"rule={rule!r} is not allowed: one with a test in RULE_TESTS ({', '.join(RULE_TESTS)})"
        )
    u = np.asarray(ucb_values, dtype=np.float64)
    q = RULE_TESTS[rule](u[:, None], u[None, :], lam)
    np.fill_diagonal(q, False)
    return q


def share_sources(
    ucb_values: np.ndarray,
    lam: float,
    rule: str = "literal",
    source_choice: str = "best",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """For every agent j, the agent it copies: ``src[j] = i``, or ``j`` itself when none qualifies.

    ``best``: the qualifying i with the highest UCB (ties: lowest index). ``random``: a uniform
    choice among the qualifying agents, drawn from ``rng``. One agent never shares.
    """
    check_choice("source_choice", source_choice, SOURCE_CHOICES)
    u = np.asarray(ucb_values, dtype=np.float64)
    q = qualifies(u, lam, rule)
    n = len(u)
    src = np.arange(n)
    for j in range(n):
        cand = np.flatnonzero(q[:, j])
        if cand.size == 0:
            continue
        if source_choice == "best":
            src[j] = cand[np.argmax(u[cand])]  # argmax returns the first (lowest index) of ties
        elif rng is None:
            raise ValueError("source_choice='random' needs an rng")
        else:
            src[j] = rng.choice(cand)
    return src


@dataclass
class ShareEvent:
    """One share: at the end of round k, ``target`` took ``source``'s state."""

    round: int
    episode: int
    source: int
    target: int
    ucb_source: float
    ucb_target: float
    mean_source: float
    mean_target: float


@dataclass
class UCBSharer:
    """Keeps R_hat_i and N_i for n agents and decides the shares of each round (see module doc)."""

    n_agents: int
    c: float = 1.5
    lam: float = 1.0
    rule: str = "literal"
    source_choice: str = "best"
    stats_after_copy: str = "keep"
    reward_estimate: str = "cumulative"
    seed: int = 0
    log: list[ShareEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.n_agents, int) or self.n_agents < 1:
            raise ConfigError(f"n_agents={self.n_agents!r} is not allowed: an integer >= 1")
        check_sharing(self.c, self.lam)
        check_choice("rule", self.rule, RULES)
        check_choice("source_choice", self.source_choice, SOURCE_CHOICES)
        check_choice("stats_after_copy", self.stats_after_copy, STATS_AFTER_COPY)
        check_choice("reward_estimate", self.reward_estimate, REWARD_ESTIMATES)
        self.sum = np.zeros(self.n_agents)
        self.count = np.zeros(self.n_agents, dtype=np.int64)
        self.rounds = np.zeros(self.n_agents, dtype=np.int64)
        self.k = 0
        self.rng = np.random.default_rng(self.seed)

    def record_round(self, returns: list[list[float]]) -> None:
        """Add round k's training-episode returns of every agent (k advances by one).

        ``last_round``: an agent that ended no episode this round (its earlier overshoot already
        covered the round) keeps its previous round's estimate instead of an empty mean of 0.
        """
        self.k += 1
        for a, r in enumerate(returns):
            if self.reward_estimate == "last_round":
                if len(r) == 0:
                    continue
                self.sum[a], self.count[a], self.rounds[a] = 0.0, 0, 0
            self.sum[a] += float(np.sum(r))
            self.count[a] += len(r)
            self.rounds[a] += 1

    def means(self) -> np.ndarray:
        """R_hat_i(k): mean training return per agent."""
        return self.sum / np.maximum(self.count, 1)

    def ucb_values(self) -> np.ndarray:
        """UCB_i(k) of eq. 1 for every agent."""
        return ucb(self.means(), np.maximum(self.rounds, 1), max(self.k, 1), self.c)

    def decide(self, episode: int) -> np.ndarray:
        """Sources for this round (``src[j] == j``: no copy); logs every share and updates statistics."""
        if self.n_agents == 1:
            return np.zeros(1, dtype=np.int64)
        u, mu = self.ucb_values(), self.means()
        src = share_sources(u, self.lam, self.rule, self.source_choice, self.rng)
        for j in np.flatnonzero(src != np.arange(self.n_agents)):
            i = int(src[j])
            self.log.append(
                ShareEvent(self.k, episode, i, int(j), float(u[i]), float(u[j]), float(mu[i]), float(mu[j]))
            )
        moved = src != np.arange(self.n_agents)
        if self.stats_after_copy == "reset":
            self.sum[moved], self.count[moved], self.rounds[moved] = 0.0, 0, 0
        elif self.stats_after_copy == "inherit":
            self.sum, self.count, self.rounds = self.sum[src], self.count[src], self.rounds[src]
        return src
