"""The experiment runner: rounds, validation, selection, the final evaluation, the agents' checkpoints
and the result files, for any registered strategy (:mod:`collab.strategies`), which it knows only
through the registry: the strategy's budget rule, and its decision at the end of every round.

Budget unit: a *training episode* of an agent, counted when it ends while the agent is learning.
Round r ends when every agent has completed at least ``min(r * validate_every, budget)`` episodes;
episodes that end at the same step as the one that reaches the target count too (they were learned
from), so an agent may finish a round, and the run, up to ``num_envs - 1`` episodes over, and its next
round's quota is smaller by as much. An agent that reaches its round target before the
others waits: its environments keep stepping under its frozen policy and those steps are neither
learned from nor counted (see :meth:`collab.ppo.PopulationPPO.collect_and_update`).

At the end of every round each agent is validated on ``val_episodes`` episodes (greedy/mean
action) of environments seeded apart from training (the same episodes for every agent and round);
then the strategy decides (who copies whom, new hyperparameters), the runner applies the decision
and, with ``on_round``, reports the round. Selection, identical for all strategies:
the checkpoint (agent, round) with the highest validation return over the whole run (ties: the
earliest); with ``reselect_top`` = k, the best of the k best on ``reselect_episodes`` fresh episodes
(``reselection.csv``). The selected policy is evaluated on ``eval_episodes`` episodes seeded apart.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from collab import numerics
from collab.checkpoints import run_checkpoints
from collab.config import ConfigError, ExperimentConfig
from collab.envs import PopulationEnv, derive_seed
from collab.nonfinite import NonFiniteError
from collab.policy import reevaluate
from collab.ppo import PopulationPPO, evaluate
from collab.results import (
    final_rows,
    frame,
    run_keys,
    write_run,
)
from collab.resume import (
    RunPaused,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from collab.runs import RoundReport, RunResult, RunStopped, earlier_run, versions
from collab.spaces import check_experiment
from collab.strategies import Decision, RoundInfo, get_strategy, resolve_settings


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


def run_experiment(
    cfg: ExperimentConfig,
    progress: bool = True,
    write: bool = True,
    on_round: Callable[[RoundReport], bool | None] | None = None,
    deadline: float | None = None,
) -> RunResult:
    """Train one experiment, select and evaluate its policy, and write the result files.

    If ``cfg.out_dir`` already holds a complete run of the same configuration, that run is loaded
    and returned (``reused=True``) without training; a complete run of another configuration there
    raises :class:`collab.ConfigError` naming the settings that differ (nothing is overwritten).

    With ``cfg.checkpoint_every``, the run saves its state to ``out_dir`` every so many rounds and,
    when ``out_dir`` holds such a checkpoint of the same configuration, continues from it, exactly as
    if it had never stopped (:mod:`collab.resume`); a checkpoint of another configuration, or a
    damaged one, raises :class:`collab.resume.ResumeError` (nothing is overwritten). ``deadline``
    (a Unix time; with checkpoints): at a checkpoint from which the next one would likely come after
    it, the run stops and raises :class:`collab.resume.RunPaused` (run it again to continue).

    ``on_round``: called with a :class:`RoundReport` after every round (validation and sharing
    done); when it returns True the run stops there and raises :class:`RunStopped`, writing no result.

    Validates ``cfg`` first (raising :class:`collab.ConfigError` before anything is written); writes
    ``curves.csv``, ``final.csv``, ``sharing.csv``, the agents (``selected.safetensors``,
    ``population.safetensors``; :mod:`collab.checkpoints`), with ``reeval_episodes`` > 0
    ``population_eval.csv``, with ``reselect_top`` ``reselection.csv``, and ``config.json`` (last)
    into ``cfg.out_dir``.

    Never open-ended: every episode ends within the environment's time limit and every round within
    a bounded number of rollouts. A NaN or infinity in training (a diverged agent) or from the
    environment stops the run with a :class:`collab.NonFiniteError` naming the agents, the round,
    the episode counts and what went non-finite; nothing is written then.
    """
    cfg = cfg.validate(check_out_dir=write)
    check_experiment(cfg)
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, int | float)):
        raise ConfigError(
            f"deadline={deadline!r} is not allowed: None or a Unix time in seconds "
            "(train.ipynb also takes 'slurm': the SLURM job's time limit)"
        )
    if write and (earlier := earlier_run(cfg)) is not None:
        remove_checkpoint(cfg.out_dir)  # left behind where a run ended just after its config.json
        return earlier
    numerics.apply(cfg.numerics)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    try:
        return _train(cfg, progress, write, on_round, deadline)
    finally:
        torch.set_num_threads(threads)  # the caller's setting, as evaluate_run restores it too


def _train(
    cfg: ExperimentConfig,
    progress: bool,
    write: bool,
    on_round: Callable[[RoundReport], bool | None] | None,
    deadline: float | None,
) -> RunResult:
    run = _Run(cfg, progress, write)
    every = cfg.checkpoint_every
    try:
        if write:  # also without checkpoint_every: another configuration's checkpoint is refused
            run.resume()
        while run.episodes.min() < run.budget:
            run.rnd += 1
            round_returns = run.train_round()
            val = run.validate()
            shared = len(run.events)
            src, hyper = run.share(round_returns, val)
            run.record_round(round_returns, val, src, hyper)
            boundary = bool(every) and run.rnd % every == 0 and run.episodes.min() < run.budget
            if boundary:
                run.segment_boundary()
            if on_round is not None and on_round(run.report(val, shared)):
                raise RunStopped(run.rnd, frame("curves.csv", run.curves), run.sharing_frame())
            if boundary and write and deadline is not None and run.out_of_time(deadline):
                raise RunPaused(
                    cfg.out_dir, run.rnd, "its next checkpoint would likely come after its deadline"
                )
    finally:  # also when on_round raises or stops the run
        run.bar.close()
        run.env.close()
    result = run.finish(val, src)
    if write:
        remove_checkpoint(cfg.out_dir)  # the run is complete (config.json written)
    return result


class _Run:
    """The state of one experiment while it trains (see :func:`run_experiment`)."""

    def __init__(self, cfg: ExperimentConfig, progress: bool, write: bool) -> None:
        assert cfg.ppo is not None
        self.cfg, self.ppo_cfg, self.write = cfg, cfg.ppo, write
        kind = get_strategy(cfg.strategy)
        self.n = n = kind.population(cfg)
        self.budget = kind.budget(cfg)
        self.keys = run_keys(cfg)
        self.env_kw = {
            "backend": cfg.backend,
            "max_episode_steps": cfg.max_episode_steps,
            "num_threads": cfg.env_threads,
        }
        self.env = PopulationEnv.for_ppo(
            cfg.env_id, n, self.ppo_cfg, cfg.seed, purpose="train", **self.env_kw
        )
        seeds = [derive_seed(cfg.seed, "agent", a) for a in range(n)]
        self.agents = PopulationPPO(self.env.spec, self.ppo_cfg, seeds, cfg.device)
        self.strategy = kind(
            cfg,
            resolve_settings(cfg.strategy, cfg.settings),
            n,
            {"lr": self.ppo_cfg.learning_rate, "ent_coef": self.ppo_cfg.ent_coef},
            derive_seed(cfg.seed, kind.seed_label or kind.name),
        )
        #: every copy so far: the sharing.csv rows without the run's keys
        self.events: list[dict[str, Any]] = []
        self.curves: list[dict] = []
        self.episodes = np.zeros(n, dtype=np.int64)
        self.env_steps = np.zeros(n, dtype=np.int64)
        self.best: tuple[float, int, int] = (-np.inf, -1, -1)  # (val_return, agent, round)
        self.best_snap: dict[str, torch.Tensor] | None = None
        #: with reselect_top: the best checkpoints so far, [(val_return, agent, round, snapshot)]
        self.top: list[tuple[float, int, int, dict[str, torch.Tensor]]] = []
        self.rnd = 0
        self.t0 = time.perf_counter()
        #: with checkpoint_every: when the current segment began, and the longest one so far (s)
        self.segment_t0, self.longest_segment = self.t0, 0.0
        #: where a resumed run continued: [{"round": r, "cpu_model": ..., "numerics": ...}]
        self.resumed: list[dict[str, Any]] = []
        if cfg.checkpoint_every:  # a strategy whose state pickle cannot hold fails now, not hours later
            try:
                pickle.dumps(self.strategy.state())
            except Exception as err:
                raise ConfigError(
                    f"strategy={cfg.strategy!r} cannot be checkpointed (checkpoint_every="
                    f"{cfg.checkpoint_every}): its state() is not picklable ({err!r}); override "
                    "Strategy.state and load_state, or set checkpoint_every=None"
                ) from None
        self.bar = tqdm(
            total=self.budget * n,
            desc=f"{cfg.env_id} {self.keys['setup']} seed {cfg.seed}",
            disable=not progress,
            unit="ep",
        )

    # -- segments and checkpoints (collab.resume) ------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything the rest of the run depends on besides its configuration (a checkpoint)."""
        return {
            "round": self.rnd,
            "episodes": self.episodes,
            "env_steps": self.env_steps,
            "best": self.best,
            "best_snap": self.best_snap,
            "top": self.top,
            "events": self.events,
            "curves": self.curves,
            "elapsed_s": time.perf_counter() - self.t0,
            "agents": self.agents.training_state(),
            "strategy": self.strategy.state(),
            "resumed": self.resumed,
        }

    def new_segment(self) -> None:
        """Drop the episodes still running in the training environments and make those anew, seeded
        from (seed, round): a segment boundary, where an interrupted run continues from."""
        self.env.close()
        seed = derive_seed(self.cfg.seed, "segment", self.rnd)
        self.env = PopulationEnv.for_ppo(
            self.cfg.env_id, self.n, self.ppo_cfg, seed, purpose="train", **self.env_kw
        )
        self.agents.end_episodes()

    def segment_boundary(self) -> None:
        """Save the run's state (when writing), then start a new segment."""
        if self.write:
            save_checkpoint(self.cfg.out_dir, self.cfg.to_dict(), self.rnd, self.state())
        self.new_segment()
        now = time.perf_counter()
        self.longest_segment = max(self.longest_segment, now - self.segment_t0)
        self.segment_t0 = now

    def out_of_time(self, deadline: float) -> bool:
        """Whether the next checkpoint would likely come after ``deadline`` (a Unix time): the
        longest segment so far, with half as much again to spare, would not fit before it."""
        return time.time() + 1.5 * self.longest_segment > deadline

    def resume(self) -> None:
        """Continue from ``out_dir``'s checkpoint where there is one (of this configuration)."""
        s = load_checkpoint(self.cfg.out_dir, self.cfg.to_dict())
        if s is None:
            return
        self.rnd, self.episodes, self.env_steps = s["round"], s["episodes"], s["env_steps"]
        self.best, self.best_snap, self.top = s["best"], s["best_snap"], s["top"]
        self.events, self.curves = s["events"], s["curves"]
        self.t0 = time.perf_counter() - s["elapsed_s"]
        self.agents.load_training_state(s["agents"])
        self.strategy.load_state(s["strategy"])
        machine = numerics.fingerprint()
        here = {"round": self.rnd, "cpu_model": machine["cpu_model"], "numerics": machine["numerics"]}
        self.resumed = [*s["resumed"], here]
        self.new_segment()
        self.bar.update(int(self.episodes.sum()))

    def located(self, phase: str, envs: tuple[PopulationEnv, ...]) -> AbstractContextManager[None]:
        return _located(self.cfg, phase, self.rnd, self.episodes, self.write, envs)

    def train_round(self) -> list[list[float]]:
        """Train until every agent has its round's episodes; the training returns of the round.

        Rounds end at cumulative targets V, 2V, ... (capped at the budget): an agent that overshot
        its last round's quota needs that many fewer episodes in this one."""
        cfg, env, agents = self.cfg, self.env, self.agents
        left = np.maximum(min(self.rnd * cfg.validate_every, self.budget) - self.episodes, 0)
        round_returns: list[list[float]] = [[] for _ in range(self.n)]
        max_rollouts, rollouts = _rollout_bound(left, env, self.ppo_cfg.num_steps), 0
        while left.max() > 0:
            rollouts += 1
            if rollouts > max_rollouts:  # cannot happen while episodes end within their time limit
                env.close()
                raise RuntimeError(
                    f"round {self.rnd} of {cfg.env_id}: agents still need {left.tolist()} episodes after "
                    f"{max_rollouts} rollouts, more than episodes of at most {env.max_episode_steps} "
                    "steps allow (a bug in collab)"
                )
            with self.located("training", (env,)):
                stats = agents.collect_and_update(env, left)
            got = np.array([len(r) for r in stats.episode_returns])
            for a in range(self.n):
                round_returns[a].extend(stats.episode_returns[a])
            self.env_steps += stats.steps
            self.episodes += got
            left = np.maximum(left - got, 0)
            self.bar.update(int(got.sum()))
        return round_returns

    def validate(self) -> np.ndarray:
        """Every agent's mean validation return; keeps the best checkpoint of the run so far."""
        cfg = self.cfg
        val_env = PopulationEnv.for_ppo(
            cfg.env_id, self.n, self.ppo_cfg, cfg.seed, cfg.val_episodes, purpose="val", shared_seeds=True,
            **self.env_kw,
        )  # fmt: skip
        with self.located("validation", (val_env, self.env)):
            val = evaluate(self.agents, val_env).mean(axis=1)
        val_env.close()
        for a in range(self.n):
            if val[a] > self.best[0]:
                self.best = (float(val[a]), a, self.rnd)
                self.best_snap = self.agents.snapshot(a)
            k = cfg.reselect_top
            if k and (len(self.top) < k or val[a] > self.top[-1][0]):  # ties: the earlier stays
                self.top.append((float(val[a]), a, self.rnd, self.agents.snapshot(a)))
                self.top.sort(key=lambda c: -c[0])  # stable: earlier candidates first among ties
                del self.top[k:]
        return val

    def reselect(self) -> list[dict]:
        """With ``reselect_top``: re-validate the best checkpoints on fresh episodes and select the
        best of them (``self.best``, ``self.best_snap``); the ``reselection.csv`` rows."""
        cfg = self.cfg
        k = len(self.top)
        cands = PopulationPPO(self.env.spec, self.ppo_cfg, [0] * k, "cpu")
        for i, (_, _, _, snap) in enumerate(self.top):
            cands.load_snapshot(i, {name: t.cpu() for name, t in snap.items()})
        env = PopulationEnv.for_ppo(
            cfg.env_id, k, self.ppo_cfg, cfg.seed, cfg.reselect_episodes, purpose="reselect",
            shared_seeds=True, **self.env_kw,
        )  # fmt: skip
        with self.located("re-validation", (env,)):
            again = evaluate(cands, env).mean(axis=1)
        env.close()
        pick = int(np.argmax(again))  # first maximum: the better validated among ties
        val, agent, rnd, snap = self.top[pick]
        self.best, self.best_snap = (val, agent, rnd), snap
        return [
            {**self.keys, "candidate": i, "agent": c[1], "round": c[2], "val_return": c[0],
             "reselect_return": float(again[i]), "selected": i == pick}
            for i, c in enumerate(self.top)
        ]  # fmt: skip

    def share(
        self, round_returns: list[list[float]], val: np.ndarray
    ) -> tuple[np.ndarray, list[dict[str, float]]]:
        """The strategy's decision for this round, applied: each agent's source, and the extra
        curves.csv columns of the round that trained (e.g. the hyperparameters it trained with)."""
        columns = self.strategy.curve_columns()
        info = RoundInfo(self.rnd, int(self.episodes.min()), round_returns, val)
        decision: Decision = self.strategy.decide(info)
        if decision.copies():
            self.agents.copy_agents(decision.sources)
        if decision.hyperparameters:
            self.agents.set_hyperparameters(**decision.hyperparameters)
        self.events.extend(decision.events)
        return np.asarray(decision.sources), columns

    def sharing_frame(self, start: int = 0) -> pd.DataFrame:
        """``sharing.csv`` rows of the copies from the ``start``-th on."""
        rows = [{**self.keys, **e} for e in self.events[start:]]
        return frame("sharing.csv", rows, extra=self.strategy.score_columns)

    def report(self, val: np.ndarray, shared_before: int) -> RoundReport:
        """The round that just ended, for ``on_round``."""
        return RoundReport(
            self.rnd,
            [int(e) for e in self.episodes],
            self.budget,
            [float(v) for v in val],
            self.sharing_frame(shared_before),
            frame("curves.csv", self.curves),
        )

    def record_round(
        self, round_returns: list[list[float]], val: np.ndarray, src: np.ndarray, hyper: list[dict]
    ) -> None:
        """One curves.csv row per agent for this round."""
        wall = time.perf_counter() - self.t0
        for a in range(self.n):
            self.curves.append(
                {
                    **self.keys,
                    "agent": a,
                    "round": self.rnd,
                    "episode": int(self.episodes[a]),
                    "total_episodes": int(self.episodes.sum()),
                    "env_steps": int(self.env_steps[a]),
                    "wall_time_s": round(wall, 3),
                    "train_return": float(np.mean(round_returns[a])) if round_returns[a] else np.nan,
                    "val_return": float(val[a]),
                    "copied_from": int(src[a]) if src[a] != a else -1,
                    **hyper[a],
                }
            )
        self.bar.set_postfix(best_val=f"{self.best[0]:.1f}")

    def final_evaluation(self) -> tuple[PopulationPPO, list[dict]]:
        """The selected checkpoint, evaluated on seeds apart from training and validation."""
        cfg, best = self.cfg, self.best
        assert self.best_snap is not None
        chosen = PopulationPPO(self.env.spec, self.ppo_cfg, [0], "cpu")
        chosen.load_snapshot(0, {k: v.cpu() for k, v in self.best_snap.items()})
        eval_env = PopulationEnv.for_ppo(
            cfg.env_id, 1, self.ppo_cfg, cfg.seed, cfg.eval_episodes, purpose="eval", shared_seeds=True,
            **self.env_kw,
        )  # fmt: skip
        with self.located("final evaluation", (eval_env,)):
            returns = evaluate(chosen, eval_env)[0]
        eval_env.close()
        final = final_rows(self.keys, best[1], best[2], best[0], returns)
        return chosen, final

    def finish(self, val: np.ndarray, src: np.ndarray) -> RunResult:
        """Final evaluation, the agents' checkpoints, optional re-evaluation, and the result files."""
        cfg, keys, env = self.cfg, self.keys, self.env
        reselection = frame("reselection.csv", self.reselect()) if cfg.reselect_top else None
        chosen, final = self.final_evaluation()
        sharing = self.sharing_frame()
        # the agents: the selected checkpoint and the final population (final agent j holds the state
        # validated as val[src[j]] in the last round); saving them draws no random numbers
        files, saved = run_checkpoints(
            chosen,
            self.best,
            self.agents,
            self.rnd,
            [float(val[s]) for s in src],
            env_id=cfg.env_id,
            time_limit=env.max_episode_steps,
            max_episode_steps=cfg.max_episode_steps,
            run={k: keys[k] for k in ("strategy", "n_agents", "seed", "setup")},
        )
        population_eval = None
        if cfg.reeval_episodes:
            with self.located("re-evaluation", ()):
                population_eval = reevaluate(cfg, files, env.backend, cfg.out_dir)
        config = {
            **cfg.to_dict(),
            "versions": versions(),
            "backend_used": env.backend,
            "budget_unit": "episode",
            "machine": numerics.fingerprint(),
            "checkpoints": saved,
            **({"resumed": self.resumed} if self.resumed else {}),
        }
        result = RunResult(
            frame("curves.csv", self.curves),
            frame("final.csv", final),
            sharing,
            config,
            population_eval,
            reselection,
        )
        if self.write:
            extra: dict[str, bytes | pd.DataFrame] = dict(files)
            if population_eval is not None:
                extra["population_eval.csv"] = population_eval
            if reselection is not None:
                extra["reselection.csv"] = reselection
            write_run(cfg.out_dir, result.curves, result.final, result.sharing, config, extra)
        return result
