"""Does stepping the environments in more envpool threads speed up training? Side by side.

Usage: python benchmarks/env_threads.py [--envs ENV ...] [--n 8] [--threads 1 2] [--iters 2] [--repeats 5]

Builds one population per thread count (seed 0, the environment's PPO settings,
``PopulationEnv(num_threads=T)``, what ``ExperimentConfig(env_threads=T)`` sets) and times
``collect_and_update`` (rollout + PPO update) in alternating chunks. Torch stays on one thread; the
extra threads only step environments, so they pay off where stepping is slow (physics, rendering)
and cores are free. Results do not depend on the thread count (``tests/test_envs.py``); this script
also checks that the populations end with identical parameters. Writes
``benchmarks/results/env_threads.{csv,md}``: median agent steps per second of wall time and of CPU
time (all threads of the process), and the speed-up over the first thread count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from collab.config import ppo_config_for
from collab.envs import PopulationEnv, derive_seed
from collab.ppo import PopulationPPO
from collab.results import atomic_write_csv, atomic_write_text, markdown_table

RESULTS = Path(__file__).parent / "results"


def compare(env_id: str, n: int, threads: list[int], iters: int, repeats: int) -> list[dict[str, object]]:
    """One row per thread count: median steps per wall second and per CPU second, alternating chunks."""
    cfg = ppo_config_for(env_id)
    pops = []
    for t in threads:
        env = PopulationEnv.for_ppo(env_id, n, cfg, num_threads=t)
        pops.append(
            (t, env, PopulationPPO(env.spec, cfg, [derive_seed(0, "agent", a) for a in range(n)]), [], [])
        )
    quota = np.full(n, 10**9)
    for r in range(repeats + 1):  # the first round warms up
        for _, env, agents, wall, cpu in pops:
            t0, c0, steps = time.perf_counter(), time.process_time(), 0
            for _ in range(iters):
                steps += int(agents.collect_and_update(env, quota).steps.sum())
            if r > 0:
                wall.append(steps / (time.perf_counter() - t0))
                cpu.append(steps / max(time.process_time() - c0, 1e-9))
    ref = pops[0][2].state_tensors()
    base = statistics.median(pops[0][3])
    rows = []
    for t, env, agents, wall, cpu in pops:
        state = agents.state_tensors()
        rows.append(
            {
                "env_id": env_id,
                "n": n,
                "env_threads": t,
                "steps_per_s": statistics.median(wall),
                "steps_per_cpu_s": statistics.median(cpu),
                "speedup": statistics.median(wall) / base,
                "identical": all(torch.equal(state[k], ref[k]) for k in ref),
            }
        )
        env.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", nargs="+", default=["BipedalWalker-v3", "CarRacing-v3"])
    p.add_argument("--n", type=int, default=8, help="agents")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="envpool thread counts")
    p.add_argument("--iters", type=int, default=2, help="collect_and_update calls per timed chunk")
    p.add_argument("--repeats", type=int, default=5, help="timed chunks per thread count (median)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    for name in ("n", "iters", "repeats"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name}={getattr(args, name)} is not allowed: an integer >= 1")
    if any(t < 1 for t in args.threads):
        raise SystemExit(f"--threads={args.threads} is not allowed: thread counts >= 1")
    torch.set_num_threads(1)
    started, load = dt.datetime.now(dt.UTC), os.getloadavg()
    rows = [r for e in args.envs for r in compare(e, args.n, args.threads, args.iters, args.repeats)]
    df = pd.DataFrame(rows)
    md = (
        "# Training with more envpool threads\n\n"
        f"`python benchmarks/env_threads.py --envs {' '.join(args.envs)} --n {args.n} --threads "
        f"{' '.join(map(str, args.threads))} --iters {args.iters} --repeats {args.repeats}`, "
        f"{started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, torch {torch.__version__} on 1 thread; "
        f"load average at start {', '.join(f'{x:.2f}' for x in load)}. Agent steps per second of "
        f"rollout + PPO update (wall and CPU time of the whole process), median of {args.repeats} "
        "alternating chunks; `speedup`: wall rate over the first thread count's; `identical`: same "
        "parameters as with the first thread count at the end.\n\n" + markdown_table(df, ".2f")
    )
    atomic_write_csv(args.out / "env_threads.csv", df)
    atomic_write_text(args.out / "env_threads.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=UserWarning)
    sys.exit(main())
