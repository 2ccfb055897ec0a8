"""Peak resident memory of an n=8 CarRacing training run (target: < 4 GB).

Usage::

    python benchmarks/memory.py            # all scenarios (~2-4 min on 2 cores)
    python benchmarks/memory.py --quick    # skips the full-episode rollouts scenario

Every scenario runs in a fresh Python subprocess that reports its own peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``; envpool's worker threads live in that process):

* ``imports``: torch, envpool and collab imported, nothing built (the floor).
* ``run_experiment``: ``collab.run_experiment`` with strategy collaborative, n_agents=8,
  episodes_per_agent=4, validate_every=4, val_episodes=1, eval_episodes=1, max_episode_steps=200
  (training, validation, sharing, snapshot and final evaluation all included).
* ``rollouts``: 8 agents x 4 envs with the full episode length (1000 frames), ``--rollouts``
  ``collect_and_update`` calls (rollout buffers, CNN activations of the update at full size).

Writes ``benchmarks/results/memory.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).parent / "results"
ENV_ID = "CarRacing-v3"
TARGET_GB = 4.0


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def child(scenario: str, rollouts: int) -> dict:
    """Run one scenario in this (fresh) process; returns what it measured."""
    import envpool  # noqa: F401
    import numpy as np
    import torch

    import collab  # noqa: F401
    from collab.config import ppo_config_for

    torch.set_num_threads(1)
    after_imports = _peak_gb()
    t0 = time.perf_counter()
    steps = 0
    if scenario == "run_experiment":
        from collab import ExperimentConfig, run_experiment

        with tempfile.TemporaryDirectory() as tmp:
            cfg = ExperimentConfig(
                env_id=ENV_ID,
                strategy="collaborative",
                n_agents=8,
                seed=0,
                episodes_per_agent=4,
                validate_every=4,
                val_episodes=1,
                eval_episodes=1,
                max_episode_steps=200,
                out_dir=tmp,
            )
            res = run_experiment(cfg, progress=False)
            steps = int(res.curves.groupby("agent")["env_steps"].max().sum())
    elif scenario == "rollouts":
        from collab.envs import PopulationEnv, derive_seed
        from collab.ppo import PopulationPPO

        cfg = ppo_config_for(ENV_ID)
        env = PopulationEnv.for_ppo(ENV_ID, 8, cfg)
        agents = PopulationPPO(env.spec, cfg, [derive_seed(0, "agent", a) for a in range(8)])
        for _ in range(rollouts):
            steps += int(agents.collect_and_update(env, np.full(8, 10**9)).steps.sum())
        env.close()
    elif scenario != "imports":
        raise SystemExit(f"unknown scenario {scenario!r}")
    return {
        "scenario": scenario,
        "peak_rss_gb": _peak_gb(),
        "rss_after_imports_gb": after_imports,
        "agent_steps": steps,
        "wall_s": time.perf_counter() - t0,
    }


DESCRIPTIONS = {
    "imports": "torch + envpool + collab imported, nothing built",
    "run_experiment": "run_experiment: collaborative, n=8, 4 episodes/agent, validate_every=4, "
    "1 val + 1 eval episode, max_episode_steps=200",
    "rollouts": "8 agents x 4 envs, full 1000-frame episodes, {r} x collect_and_update",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--rollouts", type=int, default=3, help="collect_and_update calls in 'rollouts'")
    p.add_argument("--quick", action="store_true", help="skip the full-episode rollouts scenario")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.rollouts)), flush=True)
        return 0

    started = dt.datetime.now(dt.UTC)
    load0 = os.getloadavg()
    scenarios = ["imports", "run_experiment"] + ([] if args.quick else ["rollouts"])
    rows = []
    for sc in scenarios:
        cmd = [sys.executable, __file__, "--child", sc, "--rollouts", str(args.rollouts)]
        print(f"running {sc} in a fresh process ...", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
            raise SystemExit(f"scenario {sc} failed (exit {proc.returncode})")
        r = json.loads(lines[-1][len("RESULT ") :])
        r["description"] = DESCRIPTIONS[sc].format(r=args.rollouts)
        r["target"] = "met" if r["peak_rss_gb"] < TARGET_GB else "NOT met"
        print(f"  peak RSS {r['peak_rss_gb']:.2f} GB, {r['wall_s']:.0f} s", flush=True)
        rows.append(r)
    load1 = os.getloadavg()
    df = pd.DataFrame(rows)[
        ["scenario", "description", "peak_rss_gb", "rss_after_imports_gb", "agent_steps", "wall_s", "target"]
    ]
    from collab.results import atomic_write_text, markdown_table

    table = df.rename(
        columns={
            "peak_rss_gb": "peak RSS (GB)",
            "rss_after_imports_gb": "RSS after imports (GB)",
            "agent_steps": "agent steps",
            "wall_s": "wall (s)",
            "target": f"< {TARGET_GB:g} GB",
        }
    )
    md = (
        "# Peak memory, n=8 CarRacing-v3\n\n"
        f"Measured {started:%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores, no GPU, torch with 1 thread. "
        "Peak resident set size (ru_maxrss) of a fresh subprocess per scenario; GB = 2^30 bytes. "
        f"Load average at start {', '.join(f'{x:.2f}' for x in load0)}, at end "
        f"{', '.join(f'{x:.2f}' for x in load1)}.\n\n" + markdown_table(table, ".2f")
    )
    atomic_write_text(args.out / "memory.md", md)
    print()
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
