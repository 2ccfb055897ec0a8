"""The three training strategies of paper section 4.2 and the experiment entry point.

* **independent**: n agents, k episodes each, no sharing.
* **sequential**: one agent, n*k episodes.
* **collaborative**: n agents, k episodes each, UCB sharing (eq. 1-2) at the end of every round.

Budget unit: a *training episode* of an agent, counted when it ends while the agent is learning.
Round r ends when every agent has completed at least ``min(r * validate_every, budget)`` episodes;
episodes that end at the same step as the one that reaches the target count too (they were learned
from), so an agent may finish a round, and the run, up to ``num_envs - 1`` episodes over, and its next
round's quota is smaller by as much. An agent that reaches its round target before the
others waits: its environments keep stepping under its frozen policy and those steps are neither
learned from nor counted (see :meth:`collab.ppo.PopulationPPO.collect_and_update`).

At the end of every round each agent is validated on ``val_episodes`` episodes (greedy/mean
action) of environments seeded apart from training (the same episodes for every agent and round);
then, for the collaborative strategy only, agents share. Selection, identical for all strategies:
the checkpoint (agent, round) with the highest validation return over the whole run (ties: the
earliest). The selected policy is evaluated on ``eval_episodes`` episodes seeded apart from both.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from collab import numerics
from collab.checkpoints import run_checkpoints
from collab.config import ExperimentConfig
from collab.envs import PopulationEnv, derive_seed
from collab.policy import reevaluate
from collab.ppo import NonFiniteError, PopulationPPO, evaluate
from collab.results import frame, setup_name, write_run
from collab.sharing import UCBSharer


@dataclass
class RunResult:
    """What a run wrote: the three tables, the resolved configuration and, with ``reeval_episodes``,
    the re-evaluation of every final agent (``population_eval.csv``; else None)."""

    curves: pd.DataFrame
    final: pd.DataFrame
    sharing: pd.DataFrame
    config: dict
    population_eval: pd.DataFrame | None = None


def _versions() -> dict[str, str]:
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


@contextmanager
def _located(
    cfg: ExperimentConfig,
    phase: str,
    rnd: int,
    episodes: np.ndarray,
    write: bool,
    envs: tuple[PopulationEnv, ...],
) -> Iterator[None]:
    """On an error inside: close ``envs``; a NonFiniteError also learns where it happened."""
    try:
        yield
    except BaseException as err:
        if isinstance(err, NonFiniteError):
            where = {"env_id": cfg.env_id, "phase": phase, "round": rnd, "episodes": episodes.tolist()}
            err.add_context(**where, **({"out_dir": cfg.out_dir} if write else {}))
        for e in envs:
            e.close()
        raise


def _rollout_bound(left: np.ndarray, env: PopulationEnv, num_steps: int) -> int:
    """Most rollouts a round can take: each environment of a learning agent ends (and counts) an
    episode at least every ``max_decisions + 1`` steps, so a round is never open-ended."""
    per_env = -(-int(left.max()) // env.m)
    return -(-per_env * (env.max_decisions + 1) // num_steps) + 1


def run_experiment(cfg: ExperimentConfig, progress: bool = True, write: bool = True) -> RunResult:
    """Train one experiment, select and evaluate its policy, and write the result files.

    Validates ``cfg`` first (raising :class:`collab.ConfigError` before anything is written); writes
    ``curves.csv``, ``final.csv``, ``sharing.csv``, the agents (``selected.safetensors``,
    ``population.safetensors``; :mod:`collab.checkpoints`), with ``reeval_episodes`` > 0
    ``population_eval.csv``, and ``config.json`` (last) into ``cfg.out_dir``.

    Never open-ended: every episode ends within the environment's time limit and every round within
    a bounded number of rollouts. A NaN or infinity in training (a diverged agent) or from the
    environment stops the run with a :class:`collab.NonFiniteError` naming the agents, the round,
    the episode counts and what went non-finite; nothing is written then.
    """
    cfg = cfg.validate(check_out_dir=write)
    assert cfg.ppo is not None
    ppo_cfg = cfg.ppo
    numerics.apply(cfg.numerics)
    torch.set_num_threads(cfg.torch_threads)
    sequential = cfg.strategy == "sequential"
    n = 1 if sequential else cfg.n_agents
    budget = cfg.episodes_per_agent * (cfg.n_agents if sequential else 1)
    keys = {
        "env_id": cfg.env_id,
        "strategy": cfg.strategy,
        "n_agents": cfg.n_agents,
        "seed": cfg.seed,
        "setup": setup_name(cfg.strategy, cfg.n_agents),
    }
    env_kw = {
        "backend": cfg.backend,
        "max_episode_steps": cfg.max_episode_steps,
        "num_threads": cfg.env_threads,
    }
    env = PopulationEnv.for_ppo(cfg.env_id, n, ppo_cfg, cfg.seed, purpose="train", **env_kw)
    if cfg.compile_loss:  # compile afresh, as a new process would: no graph of an earlier experiment
        torch._dynamo.reset()
    seeds = [derive_seed(cfg.seed, "agent", a) for a in range(n)]
    agents = PopulationPPO(env.spec, ppo_cfg, seeds, cfg.device, compile_loss=cfg.compile_loss)
    sharer = UCBSharer(
        n,
        cfg.c,
        cfg.lam,
        cfg.rule,
        cfg.source_choice,
        cfg.stats_after_copy,
        cfg.reward_estimate,
        seed=derive_seed(cfg.seed, "sharing"),
    )
    curves: list[dict] = []
    episodes = np.zeros(n, dtype=np.int64)
    env_steps = np.zeros(n, dtype=np.int64)
    best = (-np.inf, -1, -1)  # (val_return, agent, round)
    best_snap = None
    t0 = time.perf_counter()
    bar = tqdm(
        total=budget * n,
        desc=f"{cfg.env_id} {keys['setup']} seed {cfg.seed}",
        disable=not progress,
        unit="ep",
    )
    rnd = 0
    while episodes.min() < budget:
        rnd += 1
        # rounds end at cumulative targets V, 2V, ... (capped at the budget): an agent that
        # overshot its last round's quota needs that many fewer episodes in this one
        left = np.maximum(min(rnd * cfg.validate_every, budget) - episodes, 0)
        round_returns: list[list[float]] = [[] for _ in range(n)]
        max_rollouts, rollouts = _rollout_bound(left, env, ppo_cfg.num_steps), 0
        while left.max() > 0:
            rollouts += 1
            if rollouts > max_rollouts:  # cannot happen while episodes end within their time limit
                env.close()
                raise RuntimeError(
                    f"round {rnd} of {cfg.env_id}: agents still need {left.tolist()} episodes after "
                    f"{max_rollouts} rollouts, more than episodes of at most {env.max_episode_steps} "
                    "steps allow (a bug in collab)"
                )
            if ppo_cfg.anneal_lr:
                frac = np.clip(1.0 - episodes / budget, 0.0, 1.0)
                agents.lr = torch.as_tensor(ppo_cfg.learning_rate * frac, dtype=torch.float32)
            with _located(cfg, "training", rnd, episodes, write, (env,)):
                stats = agents.collect_and_update(env, left)
            got = np.array([len(r) for r in stats.episode_returns])
            for a in range(n):
                round_returns[a].extend(stats.episode_returns[a])
            env_steps += stats.steps
            episodes += got
            left = np.maximum(left - got, 0)
            bar.update(int(got.sum()))
        val_env = PopulationEnv.for_ppo(
            cfg.env_id, n, ppo_cfg, cfg.seed, cfg.val_episodes, purpose="val", shared_seeds=True, **env_kw
        )
        with _located(cfg, "validation", rnd, episodes, write, (val_env, env)):
            val = evaluate(agents, val_env).mean(axis=1)
        val_env.close()
        for a in range(n):
            if val[a] > best[0]:
                best = (float(val[a]), a, rnd)
                best_snap = agents.snapshot(a)
        src = np.arange(n)
        if cfg.strategy == "collaborative":
            sharer.record_round(round_returns)
            src = sharer.decide(int(episodes.min()))
            if (src != np.arange(n)).any():
                agents.copy_agents(src)
        wall = time.perf_counter() - t0
        for a in range(n):
            curves.append(
                {
                    **keys,
                    "agent": a,
                    "round": rnd,
                    "episode": int(episodes[a]),
                    "total_episodes": int(episodes.sum()),
                    "env_steps": int(env_steps[a]),
                    "wall_time_s": round(wall, 3),
                    "train_return": float(np.mean(round_returns[a])) if round_returns[a] else np.nan,
                    "val_return": float(val[a]),
                    "copied_from": int(src[a]) if src[a] != a else -1,
                }
            )
        bar.set_postfix(best_val=f"{best[0]:.1f}")
    bar.close()
    env.close()

    # final evaluation of the selected checkpoint on seeds apart from training and validation
    assert best_snap is not None
    chosen = PopulationPPO(env.spec, ppo_cfg, [0], "cpu")
    chosen.load_snapshot(0, {k: v.cpu() for k, v in best_snap.items()})
    eval_env = PopulationEnv.for_ppo(
        cfg.env_id, 1, ppo_cfg, cfg.seed, cfg.eval_episodes, purpose="eval", shared_seeds=True, **env_kw
    )
    with _located(cfg, "final evaluation", rnd, episodes, write, (eval_env,)):
        returns = evaluate(chosen, eval_env)[0]
    eval_env.close()
    final = [
        {
            **keys,
            "selected_agent": best[1],
            "selected_round": best[2],
            "selected_val_return": best[0],
            "eval_episode": i,
            "return": float(r),
        }
        for i, r in enumerate(returns)
    ]
    sharing = [{**keys, **dataclasses.asdict(e)} for e in sharer.log]
    # the agents: the selected checkpoint and the final population (final agent j holds the state
    # validated as val[src[j]] in the last round); saving them draws no random numbers
    files, saved = run_checkpoints(
        chosen,
        best,
        agents,
        rnd,
        [float(val[s]) for s in src],
        env_id=cfg.env_id,
        time_limit=env.max_episode_steps,
        max_episode_steps=cfg.max_episode_steps,
        run={k: keys[k] for k in ("strategy", "n_agents", "seed", "setup")},
    )
    population_eval = None
    if cfg.reeval_episodes:
        with _located(cfg, "re-evaluation", rnd, episodes, write, ()):
            population_eval = reevaluate(cfg, files, env.backend, cfg.out_dir)
    config = {
        **cfg.to_dict(),
        "versions": _versions(),
        "backend_used": env.backend,
        "budget_unit": "episode",
        "machine": numerics.fingerprint(),
        "checkpoints": saved,
    }
    result = RunResult(
        frame("curves.csv", curves),
        frame("final.csv", final),
        frame("sharing.csv", sharing),
        config,
        population_eval,
    )
    if write:
        extra: dict[str, bytes | pd.DataFrame] = dict(files)
        if population_eval is not None:
            extra["population_eval.csv"] = population_eval
        write_run(cfg.out_dir, result.curves, result.final, result.sharing, config, extra)
    return result
