"""Training throughput: env-steps per second of population PPO vs raw stepping vs Stable-Baselines3.

Usage::

    python benchmarks/throughput.py                 # full run (~15 min on 2 cores)
    python benchmarks/throughput.py --quick         # ~2 min smoke version (1 repeat, short timings)
    python benchmarks/throughput.py --envs Acrobot-v1 LunarLander-v3 --ns 1 8 --repeats 5
    python benchmarks/throughput.py --envs Acrobot-v1 --ppo num_envs=16 --out runs/acrobot16
    python benchmarks/throughput.py --against ../old-checkout --envs Acrobot-v1 Pendulum-v1 --ns 8

``--against DIR`` compares training throughput (``ours`` only) of this tree with the ``collab`` of
another checkout: one worker process per tree, both pinned to the same core and measuring in turn
(round-robin, so load drift hits both alike); writes ``throughput_against.{csv,md}`` with the ratio
this / other.

One process, ``torch.set_num_threads(1)``. For every environment and population size n it measures,
side by side and round-robin over the repeats (so load drift on a shared machine hits all of them alike):

* ``raw_envpool``: envpool directly, ``n * num_envs`` environments in one pool, random actions drawn
  in numpy; counted in *frames* (one envpool step).
* ``raw_population``: :class:`collab.envs.PopulationEnv` of the same pool, random actions, with our
  preprocessing (CarRacing: frame skip 2, grayscale, 64x64, 2 stacked frames); counted in *agent
  steps* (CarRacing: 1 agent step = 2 frames).
* ``ours``: ``PopulationPPO.collect_and_update(env, quota=inf)`` in a loop after one warm-up rollout,
  counting ``stats.steps.sum()`` (learned-from agent steps), per-environment PPO settings
  (:func:`collab.config.ppo_config_for`); also the share of its time spent in ``env.step``, in the PPO
  update and in the non-finite checks (``_check_rollout`` after each rollout, ``_check_parameters``
  after each update).
* ``sb3``: Stable-Baselines3 PPO with the same hyperparameters, one agent with ``num_envs`` envs
  (DummyVecEnv), after a one-rollout warm-up. Training n agents one after another runs at the rate of
  one agent, so its single-agent rate is reported as its aggregate for every n. ``sb3_sequential``
  (full run, one env) trains 2 agents one after another to show it.

Each measurement is repeated (median reported). Writes ``benchmarks/results/throughput.{csv,md}``: the
rates, and per environment the ratios at the largest n (ours / SB3, raw stepping / SB3: what training
could reach if learning were free, ours / raw stepping, ours at n / ours at n=1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from collab.config import ConfigError, PPOConfig, ppo_config_for
from collab.config import parse_overrides as config_overrides
from collab.envpool_backend import ENVPOOL_IDS
from collab.envs import PopulationEnv, derive_seed
from collab.ppo import PopulationPPO
from collab.results import atomic_write_csv, atomic_write_text, markdown_table

RESULTS = Path(__file__).parent / "results"
DEFAULT_ENVS = ["Acrobot-v1", "LunarLander-v3", "BipedalWalker-v3", "CarRacing-v3"]
CPU_NOTE = (
    "The same measurements divided by the CPU time of this process (`time.process_time()`, all its "
    "threads, envpool's worker included) instead of wall time: less sensitive to other processes "
    "competing for the 2 cores, closer to what a dedicated core would give.\n"
)


# -- measurement harness ---------------------------------------------------------------------------
@dataclass
class Measurement:
    """One thing to time. ``unit(k)`` does k units of work and returns the steps it made."""

    env_id: str
    n: int
    kind: str
    counted: str  # what one step is: "frames" or "agent_steps"
    pool: int
    unit: Callable[[int], int]
    close: Callable[[], None] = lambda: None
    k: int = 1  # units per timed chunk, set from the warm-up
    rates: list[float] = field(default_factory=list)
    cpu_rates: list[float] = field(default_factory=list)  # steps per CPU second of this process
    env_share: list[float] = field(default_factory=list)
    update_share: list[float] = field(default_factory=list)
    check_share: list[float] = field(default_factory=list)
    timers: list[float] | None = None  # ours only: seconds in [env.step, PPO update, checks] in a chunk

    def warm_up(self, min_time: float) -> None:
        """One unit untimed (first-call costs), then size the chunk so it lasts about ``min_time``.

        A unit that alone lasts longer than ``min_time`` (CarRacing rollouts) is not run a second time.
        """
        t0 = time.perf_counter()
        self.unit(1)
        dt_unit = time.perf_counter() - t0
        if dt_unit < min_time:
            t0 = time.perf_counter()
            self.unit(1)
            dt_unit = max(time.perf_counter() - t0, 1e-6)
        self.k = max(1, round(min_time / dt_unit))

    def measure(self) -> float:
        """Time one chunk; returns steps per second (and, for ours, the env.step and update shares)."""
        if self.timers is not None:
            self.timers[:] = [0.0] * len(self.timers)
        t0, c0 = time.perf_counter(), time.process_time()
        steps = self.unit(self.k)
        el, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.rates.append(steps / el)
        self.cpu_rates.append(steps / max(cpu, 1e-9))
        if self.timers is not None:
            self.env_share.append(self.timers[0] / el)
            self.update_share.append(self.timers[1] / el)
            self.check_share.append(self.timers[2] / el)
        return self.rates[-1]


# -- (a) raw stepping ------------------------------------------------------------------------------
def raw_envpool(env_id: str, n: int, pool: int) -> Measurement:
    """envpool directly (n agents' pool), random numpy actions; counts frames."""
    import envpool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        env = envpool.make(
            ENVPOOL_IDS.get(env_id, env_id), env_type="gymnasium", num_envs=pool, num_threads=1, seed=0
        )
        env.reset()  # builds the Gymnasium spaces, whose float64 Box bounds warn
    space = env.action_space
    rng = np.random.default_rng(0)
    if isinstance(space, gym.spaces.Discrete):

        def sample() -> np.ndarray:
            return rng.integers(0, int(space.n), size=pool).astype(np.int32)
    else:
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)

        def sample() -> np.ndarray:
            return rng.uniform(low, high, size=(pool, *space.shape)).astype(np.float32)

    chunk = 10 if "CarRacing" in env_id else 100

    def unit(k: int) -> int:
        for _ in range(k * chunk):
            env.step(sample())
        return k * chunk * pool

    return Measurement(env_id, n, "raw_envpool", "frames", pool, unit, env.close)


def raw_population(env_id: str, n: int, cfg: PPOConfig) -> Measurement:
    """PopulationEnv (our preprocessing), random torch actions; counts agent steps."""
    env = PopulationEnv.for_ppo(env_id, n, cfg)
    env.reset()
    spec = env.spec
    low, high = torch.tensor(spec.action_low), torch.tensor(spec.action_high)
    chunk = 10 if spec.obs_kind == "pixels" else 100

    def sample() -> torch.Tensor:
        if spec.discrete:
            return torch.randint(0, spec.action_dim, (n, cfg.num_envs))
        return low + (high - low) * torch.rand(n, cfg.num_envs, spec.action_dim)

    def unit(k: int) -> int:
        for _ in range(k * chunk):
            env.step(sample())
        return k * chunk * env.num

    return Measurement(env_id, n, "raw_population", "agent_steps", env.num, unit, env.close)


# -- (b) our training ------------------------------------------------------------------------------
def ours(env_id: str, n: int, cfg: PPOConfig) -> Measurement:
    """PopulationPPO.collect_and_update with an infinite quota; counts learned-from agent steps."""
    env = PopulationEnv.for_ppo(env_id, n, cfg)
    seeds = [derive_seed(0, "agent", a) for a in range(n)]
    agents = PopulationPPO(env.spec, cfg, seeds)
    quota = np.full(n, 10**9)
    timers = [0.0, 0.0, 0.0]

    def timed(i: int, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - transparent
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            timers[i] += time.perf_counter() - t0
            return out

        return wrapper

    # instance-level wrappers (collab untouched): time inside env.step and inside the PPO update
    env.step = timed(0, env.step)  # type: ignore[method-assign]
    agents.update = timed(1, agents.update)  # type: ignore[method-assign]
    # the non-finite checks: after every rollout, and after every update (inside the update's time)
    agents._check_rollout = timed(2, agents._check_rollout)  # type: ignore[method-assign]
    agents._check_parameters = timed(2, agents._check_parameters)  # type: ignore[method-assign]

    def unit(k: int) -> int:
        return int(sum(agents.collect_and_update(env, quota).steps.sum() for _ in range(k)))

    return Measurement(env_id, n, "ours", "agent_steps", env.num, unit, env.close, timers=timers)


# -- (c) Stable-Baselines3 -------------------------------------------------------------------------
class FrameSkip(gym.Wrapper):
    """Repeat each action ``skip`` frames, summing rewards (stops at the end of an episode)."""

    def __init__(self, env: gym.Env, skip: int) -> None:
        super().__init__(env)
        self.skip = skip

    def step(self, action):  # noqa: ANN001, ANN201 - gymnasium's signature
        total = 0.0
        for _ in range(self.skip):
            obs, r, term, trunc, info = self.env.step(action)
            total += float(r)
            if term or trunc:
                break
        return obs, total, term, trunc, info


class Resize(gym.ObservationWrapper):
    """Grayscale HxW uint8 -> SxS uint8, bilinear antialiased (as collab.envs; no OpenCV needed)."""

    def __init__(self, env: gym.Env, size: int) -> None:
        super().__init__(env)
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (size, size), np.uint8)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(obs)).float()[None, None]
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)[0, 0]
        return x.round_().clamp_(0, 255).to(torch.uint8).numpy()


def sb3_model(env_id: str, cfg: PPOConfig, seed: int = 0):  # noqa: ANN201 - an SB3 PPO
    """SB3 PPO with our hyperparameters and (CarRacing) our preprocessing."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    pixels = "CarRacing" in env_id

    def make() -> gym.Env:
        env = gym.make(env_id)
        if pixels:
            env = FrameSkip(env, cfg.frame_skip)
            env = gym.wrappers.GrayscaleObservation(env)
            env = Resize(env, cfg.image_size)
            env = gym.wrappers.FrameStackObservation(env, cfg.frame_stack)
        return env

    venv = DummyVecEnv([make] * cfg.num_envs)
    venv.seed(seed)
    if cfg.norm_obs or cfg.norm_reward:
        venv = VecNormalize(venv, norm_obs=cfg.norm_obs, norm_reward=cfg.norm_reward, gamma=cfg.gamma)
    discrete = isinstance(venv.action_space, gym.spaces.Discrete)
    if pixels:  # NatureCNN + 512 features, heads directly on them (net_arch=[]), as collab.networks
        policy, kw = "CnnPolicy", {}
    else:
        policy = "MlpPolicy"
        arch = dict(pi=[cfg.hidden, cfg.hidden], vf=[cfg.hidden, cfg.hidden])
        kw = {"net_arch": arch, "activation_fn": torch.nn.Tanh}
    if not discrete:
        kw["log_std_init"] = cfg.log_std_init
    return PPO(
        policy,
        venv,
        learning_rate=cfg.learning_rate,
        n_steps=cfg.num_steps,
        batch_size=cfg.num_envs * cfg.num_steps // cfg.num_minibatches,
        n_epochs=cfg.update_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_coef,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        policy_kwargs=kw,
        device="cpu",
        seed=seed,
        verbose=0,
    )


def sb3(env_id: str, cfg: PPOConfig) -> Measurement:
    """One SB3 agent; a unit is one rollout + update; counts agent steps (num_timesteps)."""
    model = sb3_model(env_id, cfg)
    rollout = cfg.num_envs * cfg.num_steps

    def unit(k: int) -> int:
        before = model.num_timesteps
        model.learn(total_timesteps=k * rollout, reset_num_timesteps=before == 0, progress_bar=False)
        return model.num_timesteps - before

    return Measurement(env_id, 1, "sb3", "agent_steps", cfg.num_envs, unit, model.get_env().close)


def sb3_sequential(env_id: str, cfg: PPOConfig, n: int, seconds_per_agent: float) -> float:
    """Train n SB3 agents one after another (what a user does without this package); aggregate SPS.

    Each agent: build, one warm-up rollout (untimed), then a timed run of about ``seconds_per_agent``.
    """
    steps, elapsed = 0, 0.0
    rollout = cfg.num_envs * cfg.num_steps
    for a in range(n):
        model = sb3_model(env_id, cfg, seed=a)
        t0 = time.perf_counter()
        model.learn(total_timesteps=rollout, progress_bar=False)
        k = max(1, round(seconds_per_agent / (time.perf_counter() - t0)))
        before = model.num_timesteps
        t0 = time.perf_counter()
        model.learn(total_timesteps=k * rollout, reset_num_timesteps=False, progress_bar=False)
        elapsed += time.perf_counter() - t0
        steps += model.num_timesteps - before
        model.get_env().close()
    return steps / elapsed


# -- driver ----------------------------------------------------------------------------------------
def ppo_config(env_id: str, overrides: dict[str, object] | None = None) -> PPOConfig:
    """The environment's PPO settings with ``overrides`` (``--ppo FIELD=VALUE``) applied and checked."""
    try:
        return ppo_config_for(env_id, overrides)
    except ConfigError as e:
        raise SystemExit(f"--ppo: {e}") from None


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``["num_envs=16", "norm_reward=true"]`` -> ``{"num_envs": 16, "norm_reward": True}`` (JSON values)."""
    try:
        return config_overrides(items)
    except ConfigError as e:
        raise SystemExit(f"--ppo: {e}") from None


def bench_env(
    env_id: str,
    ns: list[int],
    repeats: int,
    min_time: float,
    log: Callable[[str], None],
    overrides: dict[str, object] | None = None,
) -> list[dict]:
    """All measurements of one environment, round-robin over repeats; returns CSV rows."""
    cfg = ppo_config(env_id, overrides)
    pixels = "CarRacing" in env_id
    ms: list[Measurement] = []
    for n in ns:
        pool = n * cfg.num_envs
        ms += [raw_envpool(env_id, n, pool), raw_population(env_id, n, cfg), ours(env_id, n, cfg)]
    ms.append(sb3(env_id, cfg))
    for m in ms:
        # CarRacing units are seconds long: time one chunk of the same length as the others anyway
        m.warm_up(min_time)
    for r in range(repeats):
        for m in ms:
            rate = m.measure()
            log(f"  {env_id:18s} {m.kind:15s} n={m.n} pool={m.pool:3d} rep {r + 1}/{repeats}: {rate:9,.0f}/s")
    rows = []
    for m in ms:
        rows.append(
            {
                "env_id": env_id,
                "kind": m.kind,
                "n": m.n,
                "pool": m.pool,
                "counted": m.counted,
                "frames_per_step": cfg.frame_skip if (m.counted == "agent_steps" and pixels) else 1,
                "sps_median": statistics.median(m.rates),
                "sps_min": min(m.rates),
                "sps_max": max(m.rates),
                "repeats": len(m.rates),
                "sps_cpu_median": statistics.median(m.cpu_rates),
                "env_step_share": statistics.median(m.env_share) if m.env_share else float("nan"),
                "update_share": statistics.median(m.update_share) if m.update_share else float("nan"),
                "check_share": statistics.median(m.check_share) if m.check_share else float("nan"),
            }
        )
        m.close()
    return rows


def summarise(df: pd.DataFrame, col: str = "sps_median") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wide per-(env, n) table of rates, and per environment the ratios at the largest n."""
    wide, ratios = [], []
    for env_id, g in df.groupby("env_id", sort=False):
        by = {(r.kind, r.n): getattr(r, col) for r in g.itertuples()}
        pools = {(r.kind, r.n): r.pool for r in g.itertuples()}
        share = {
            r.n: (r.env_step_share, r.update_share, getattr(r, "check_share", float("nan")))
            for r in g.itertuples()
            if r.kind == "ours"
        }
        sb3_rate = by[("sb3", 1)]
        ns = sorted(n for k, n in by if k == "ours")
        for n in ns:
            wide.append(
                {
                    "env": env_id,
                    "n": n,
                    "pool envs": pools[("ours", n)],
                    "envpool raw (frames/s)": round(by[("raw_envpool", n)]),
                    "PopulationEnv raw (steps/s)": round(by[("raw_population", n)]),
                    "ours train (steps/s)": round(by[("ours", n)]),
                    "train/raw": by[("ours", n)] / by[("raw_population", n)],
                    "env.step share": share[n][0],
                    "update share": share[n][1],
                    "checks share": f"{share[n][2]:.2%}" if np.isfinite(share[n][2]) else "n/a",
                    "SB3 aggregate (steps/s)": round(sb3_rate),
                    "ours/SB3": by[("ours", n)] / sb3_rate,
                    "ours n / ours n=1": by[("ours", n)] / by[("ours", 1)] if ns[0] == 1 else float("nan"),
                }
            )
        big = max(ns)
        vs_raw = [by[("ours", n)] / by[("raw_population", n)] for n in ns]
        scaling = by[("ours", big)] / by[("ours", 1)] if ("ours", 1) in by else float("nan")
        ratios.append(
            {
                "env": env_id,
                f"ours n={big} / SB3": f"{by[('ours', big)] / sb3_rate:.1f}x",
                f"raw n={big} / SB3": f"{by[('raw_population', big)] / sb3_rate:.1f}x",
                f"train/raw, n={big}": f"{vs_raw[-1]:.2f}",
                "train/raw, worst n": f"{min(vs_raw):.2f} (n={ns[int(np.argmin(vs_raw))]})",
                f"ours n={big} / n=1": f"{scaling:.1f}x",
            }
        )
    return pd.DataFrame(wide), pd.DataFrame(ratios)


# -- this tree against another checkout -----------------------------------------------------------
def _checkout_name(tree: Path) -> str:
    """How the results name the other checkout: by its commit (a path means nothing elsewhere)."""
    import subprocess

    rev = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"<checkout of {rev}>" if rev else "<other checkout>"


WORKER = r"""
import importlib.util, json, os, sys
sys.path.insert(0, sys.argv[1])  # that tree's collab comes first
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {int(sys.argv[6])})  # both workers on one core: they share its load
spec = importlib.util.spec_from_file_location("throughput_worker", sys.argv[2])
tp = importlib.util.module_from_spec(spec)
sys.modules["throughput_worker"] = tp  # (dataclasses look their module up)
spec.loader.exec_module(tp)
tp.torch.set_num_threads(1)
env_id, n, min_time = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
m = tp.ours(env_id, n, tp.ppo_config(env_id))
m.warm_up(min_time)
print(json.dumps({"ready": tp.PopulationPPO.__module__, "file": sys.modules["collab"].__file__}), flush=True)
for _ in sys.stdin:
    rate = m.measure()
    print(json.dumps({"rate": rate, "cpu": m.cpu_rates[-1]}), flush=True)
m.close()
"""


def against(
    other: Path, envs: list[str], ns: list[int], repeats: int, min_time: float, log: Callable[[str], None]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``ours`` of this tree and of ``other`` side by side; per (env, n) the medians and their ratio."""
    import json
    import subprocess

    trees = {"this": Path(__file__).resolve().parents[1], "other": other.resolve()}
    core = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    if not (trees["other"] / "collab" / "__init__.py").is_file():
        raise SystemExit(f"--against {other}: not a checkout of collab (no collab/__init__.py there)")
    rows, ratios = [], []
    for env_id in envs:
        for n in ns:
            workers = {}
            for name, tree in trees.items():
                args = [sys.executable, "-W", "ignore", "-c", WORKER, str(tree), __file__, env_id]
                args += [str(n), str(min_time), str(core)]
                w = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                ready = json.loads(w.stdout.readline())
                if not ready["file"].startswith(str(tree)):
                    raise SystemExit(f"worker for {tree} imported collab from {ready['file']}")
                workers[name] = w
            got: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
            for r in range(repeats):
                for name, w in workers.items():
                    w.stdin.write("measure\n")
                    w.stdin.flush()
                    m = json.loads(w.stdout.readline())
                    got[name].append((m["rate"], m["cpu"]))
                    log(f"  {env_id:18s} n={n} {name:5s} rep {r + 1}/{repeats}: {m['rate']:9,.0f}/s")
            for w in workers.values():
                w.stdin.close()
                w.wait(timeout=120)
            med = {k: statistics.median(x for x, _ in v) for k, v in got.items()}
            cpu = {k: statistics.median(c for _, c in v) for k, v in got.items()}
            for name in trees:
                rows.append({"env_id": env_id, "n": n, "tree": name, "sps_median": med[name],
                             "sps_cpu_median": cpu[name], "repeats": repeats})  # fmt: skip
            ratios.append({"env_id": env_id, "n": n, "this / other": med["this"] / med["other"],
                           "this / other (CPU time)": cpu["this"] / cpu["other"]})  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(ratios)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", nargs="+", default=DEFAULT_ENVS)
    p.add_argument("--ns", nargs="+", type=int, default=None, help="population sizes (1 2 4 8; quick: 1 8)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per timed chunk")
    p.add_argument("--quick", action="store_true", help="~2 min smoke run: n = 1, 8; 1 repeat; short chunks")
    p.add_argument(
        "--sb3-sequential-env", default="Acrobot-v1", help="env for the 2-agents-one-after-another SB3 check"
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for throughput.csv/.md")
    p.add_argument(
        "--ppo", nargs="*", default=[], metavar="FIELD=VALUE", help="PPO settings to override (ours and SB3)"
    )
    p.add_argument("--against", type=Path, help="another checkout: compare its training throughput with ours")
    args = p.parse_args(argv)
    if args.against is not None:
        ns = args.ns or [8]
        repeats = args.repeats or 5
        t0 = time.perf_counter()

        def log_a(s: str) -> None:
            print(f"[{time.perf_counter() - t0:6.0f}s] {s}", flush=True)

        load0 = os.getloadavg()
        rows, ratios = against(args.against, args.envs, ns, repeats, args.min_time or 1.5, log_a)
        stamp = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, load average at start {load0}"
        md = (
            f"# Training throughput: this tree / another checkout ({stamp})\n\n"
            f"`python benchmarks/throughput.py --against {_checkout_name(args.against)} "
            f"--envs {' '.join(args.envs)} "
            f"--ns {' '.join(map(str, ns))} --repeats {repeats}`\n\n"
            + markdown_table(rows, floatfmt=",.0f")
            + "\n"
            + markdown_table(ratios, floatfmt=".3f")
        )
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_csv(args.out / "throughput_against.csv", rows.merge(ratios, on=["env_id", "n"]))
        atomic_write_text(args.out / "throughput_against.md", md)
        print(md)
        return 0
    overrides = parse_overrides(args.ppo)
    for env_id in args.envs:
        ppo_config(env_id, overrides)  # bad overrides fail before anything runs
    ns = args.ns or ([1, 8] if args.quick else [1, 2, 4, 8])
    repeats = args.repeats or (1 if args.quick else 3)
    min_time = args.min_time or (0.3 if args.quick else 1.5)
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    started = dt.datetime.now(dt.UTC)
    t_start = time.perf_counter()
    print(f"throughput benchmark {started:%Y-%m-%d %H:%M} UTC, load average at start {load0}", flush=True)

    def log(s: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.0f}s] {s}", flush=True)

    rows: list[dict] = []
    for env_id in args.envs:
        log(f"{env_id}: setting up and warming up")
        rows += bench_env(env_id, ns, repeats, min_time, log, overrides)
    seq_line = ""
    if not args.quick and args.sb3_sequential_env:
        env_id = args.sb3_sequential_env
        seq_cfg = ppo_config(env_id, overrides)
        rate = sb3_sequential(env_id, seq_cfg, 2, 2 * min_time)
        single = next((r["sps_median"] for r in rows if r["env_id"] == env_id and r["kind"] == "sb3"), None)
        rows.append(
            {"env_id": env_id, "kind": "sb3_sequential", "n": 2, "pool": seq_cfg.num_envs,
             "counted": "agent_steps", "frames_per_step": 1, "sps_median": rate, "sps_min": rate,
             "sps_max": rate, "repeats": 1, "sps_cpu_median": float("nan"), "env_step_share": float("nan"),
             "update_share": float("nan"), "check_share": float("nan")}
        )  # fmt: skip
        seq_line = (
            f"SB3, 2 agents trained one after another on {env_id}: {rate:,.0f} agent steps/s aggregate"
            + (f" (single agent: {single:,.0f}/s)" if single else "")
            + "\n"
        )
        log(seq_line.strip())
    load1 = os.getloadavg()
    total = time.perf_counter() - t_start
    df = pd.DataFrame(rows)
    wide, ratios = summarise(df[df["kind"] != "sb3_sequential"])
    wide_cpu, ratios_cpu = summarise(df[df["kind"] != "sb3_sequential"], "sps_cpu_median")
    wide_cpu = wide_cpu.drop(columns=["env.step share", "update share", "checks share"])
    wide_cpu.columns = [c.replace("/s)", "/CPU-s)") for c in wide_cpu.columns]
    digits = {"sps_median": 1, "sps_min": 1, "sps_max": 1, "sps_cpu_median": 1, "env_step_share": 3}
    atomic_write_csv(args.out / "throughput.csv", df.round({**digits, "update_share": 3, "check_share": 4}))
    fmt_load = ", ".join(f"{x:.2f}" for x in load0), ", ".join(f"{x:.2f}" for x in load1)
    header = (
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'}: "
        f"{os.cpu_count()} cores, no GPU, torch {torch.__version__} with 1 thread, one process. "
        f"{repeats} repeat(s) x ~{min_time:g} s per measurement, median; total {total:.0f} s"
        f"{' (--quick)' if args.quick else ''}.\n"
        f"Load average (1, 5, 15 min) at start: {fmt_load[0]}; at end: {fmt_load[1]} "
        "(shared machine: compare numbers within this table only).\n\n"
        "Steps are agent steps (one decision of one agent in one environment); on CarRacing-v3 one agent "
        "step is 2 frames (frame skip 2), while the envpool raw column counts frames. SB3 aggregate = one "
        "SB3 agent's rate: training n agents one after another runs at that same aggregate rate.\n"
        + (f"PPO settings overridden (ours and SB3 alike): {overrides}.\n" if overrides else "")
    )
    md = (
        "# Training throughput\n\n" + header + ("\n" + seq_line if seq_line else "")
        + "\n## Env-steps per second\n\n" + markdown_table(wide, ".2f")
        + "\n## Ratios (wall clock)\n\n" + markdown_table(ratios)
        + "\n## Per CPU second\n\n" + CPU_NOTE + "\n" + markdown_table(wide_cpu, ".2f")
        + "\n## Ratios (per CPU second)\n\n" + markdown_table(ratios_cpu)
    )  # fmt: skip
    atomic_write_text(args.out / "throughput.md", md)
    print()
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
