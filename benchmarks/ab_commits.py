"""Training speed of the working tree's ``collab`` against an earlier commit's, side by side.

Usage: python benchmarks/ab_commits.py BASE [--envs ENV ...] [--ns N ...] [--iters 3] [--repeats 9]

Exports ``collab/`` as it was at git commit BASE into a temporary folder (renamed ``collab_base``, so
both versions load in one process), builds the same population (seed 0, the environment's PPO
settings) with each, and times ``collect_and_update`` (rollout + PPO update, infinite quota) in
alternating chunks of ``--iters`` calls: load drift on a shared machine hits both alike. One process,
torch on one thread. Prints and writes ``benchmarks/results/ab_<BASE>.{csv,md}``: median agent steps
per second of each version and their ratio. It also checks that both versions produce the same
parameters after the timed calls (``identical``): a speed-up that changes results shows up there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import torch

from collab.results import atomic_write_csv, atomic_write_text, markdown_table

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"


def export_base(commit: str, dest: Path) -> str:
    """Write ``collab/`` at ``commit`` to ``dest/collab_base``; returns the full commit hash."""
    full = subprocess.run(
        ["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=REPO, capture_output=True, text=True
    )
    if full.returncode != 0:
        raise SystemExit(f"BASE={commit!r} is not allowed: a git commit of this repository")
    tar = subprocess.run(
        ["git", "archive", full.stdout.strip(), "collab"], cwd=REPO, capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        t.extractall(dest, filter="data")
    (dest / "collab").rename(dest / "collab_base")
    for f in (dest / "collab_base").glob("*.py"):
        src = f.read_text()
        f.write_text(re.sub(r"\b(from|import) collab\b", r"\1 collab_base", src))
    return full.stdout.strip()


def population(pkg: str, env_id: str, n: int) -> tuple[object, object]:
    """(env, agents) of ``pkg`` (``collab`` or ``collab_base``), seed 0, the env's PPO settings."""
    config: ModuleType = importlib.import_module(f"{pkg}.config")
    envs: ModuleType = importlib.import_module(f"{pkg}.envs")
    ppo: ModuleType = importlib.import_module(f"{pkg}.ppo")
    cfg = config.ppo_config_for(env_id)
    env = envs.PopulationEnv(
        env_id,
        n,
        cfg.num_envs,
        0,
        frame_skip=cfg.frame_skip,
        frame_stack=cfg.frame_stack,
        image_size=cfg.image_size,
        action_masks=cfg.mask_actions,
    )
    agents = ppo.PopulationPPO(env.spec, cfg, [envs.derive_seed(0, "agent", a) for a in range(n)])
    return env, agents


def compare(env_id: str, n: int, iters: int, repeats: int) -> dict[str, object]:
    """Median agent steps/s of base and working tree, alternating chunks; first chunk warms up."""
    pops = {
        name: (*population(pkg, env_id, n), []) for name, pkg in (("base", "collab_base"), ("new", "collab"))
    }
    quota = np.full(n, 10**9)
    for r in range(repeats + 1):
        for _, (env, agents, rates) in pops.items():
            t0, steps = time.perf_counter(), 0
            for _ in range(iters):
                steps += int(agents.collect_and_update(env, quota).steps.sum())
            if r > 0:
                rates.append(steps / (time.perf_counter() - t0))
    states = [agents.state_tensors() for _, agents, _ in pops.values()]
    identical = states[0].keys() == states[1].keys() and all(
        torch.equal(states[0][k], states[1][k]) for k in states[0]
    )
    for env, _, _ in pops.values():
        env.close()
    base, new = (statistics.median(v[2]) for v in pops.values())
    return {
        "env_id": env_id,
        "n": n,
        "base_sps": base,
        "new_sps": new,
        "new/base": new / base,
        "identical": identical,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("base", help="git commit to compare the working tree with")
    p.add_argument("--envs", nargs="+", default=["Acrobot-v1", "LunarLander-v3"])
    p.add_argument("--ns", nargs="+", type=int, default=[1, 8])
    p.add_argument("--iters", type=int, default=3, help="collect_and_update calls per timed chunk")
    p.add_argument("--repeats", type=int, default=9, help="timed chunks per version (median)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    for name in ("iters", "repeats"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name}={getattr(args, name)} is not allowed: an integer >= 1")
    if any(n < 1 for n in args.ns):
        raise SystemExit(f"--ns={args.ns} is not allowed: population sizes >= 1")
    torch.set_num_threads(1)
    started, load = dt.datetime.now(dt.UTC), os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        full = export_base(args.base, Path(tmp))
        sys.path.insert(0, tmp)
        rows = [compare(e, n, args.iters, args.repeats) for e in args.envs for n in args.ns]
    df = pd.DataFrame(rows)
    short = full[:7]
    md = (
        f"# Training speed: working tree vs {short}\n\n"
        f"`python benchmarks/ab_commits.py {args.base} --envs {' '.join(args.envs)} --ns "
        f"{' '.join(map(str, args.ns))} --iters {args.iters} --repeats {args.repeats}`, "
        f"{started:%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, 1 thread; load average at start "
        f"{', '.join(f'{x:.2f}' for x in load)}. Agent steps per second of rollout + PPO update, median of "
        f"{args.repeats} alternating chunks; `identical`: both versions end with the same parameters.\n\n"
        + markdown_table(df, ".2f")
    )
    atomic_write_csv(args.out / f"ab_{short}.csv", df)
    atomic_write_text(args.out / f"ab_{short}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=UserWarning)
    sys.exit(main())
