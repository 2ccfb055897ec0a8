"""Where population training spends its time, by PyTorch operator, and how fast the activations run.

Usage: python benchmarks/profile_step.py [ENV_ID] [--n 8] [--iters 5]

One process, torch on one thread. Warms up with 3 ``collect_and_update`` calls (rollout + PPO
update) of n agents, then profiles ``--iters`` more with ``torch.profiler`` and prints the operators
by self CPU time. A second table times elementwise activations on the update's tensor shape
[n, minibatch, 64] (median of 200 calls): tanh, the networks' activation, against sigmoid and relu.
A third trains the same population side by side with numerics that change its results: tanh
computed as 2 sigmoid(2x) - 1, ``torch.compile`` of the PPO loss (the opt-in ``compile_loss``) and
of the loss and the rollout forward, where a C++ compiler is present (eager is the default). A
fourth splits the time of one agent step into env stepping, tanh, matrix products and the rest,
measured side by side with one SB3 agent and one agent of ours, against the time that 10x SB3's
rate allows, and gives the bounds the floor puts on n/n=1 and train/raw. Writes
``benchmarks/results/profile_<ENV_ID>.md``. Shares of time and side-by-side ratios are what to
read: absolute times depend on the load of the machine.
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
from torch.profiler import ProfilerActivity, profile

from collab.config import ppo_config_for
from collab.envs import PopulationEnv, derive_seed, env_spec
from collab.ppo import PopulationPPO, cpp_compiler
from collab.results import atomic_write_text, markdown_table

RESULTS = Path(__file__).parent / "results"


def population(env_id: str, n: int, compile_loss: bool = False) -> tuple[PopulationEnv, PopulationPPO]:
    """n agents of ``env_id`` with its PPO settings and their training pool (seed 0)."""
    cfg = ppo_config_for(env_id)
    env = PopulationEnv.for_ppo(env_id, n, cfg)
    seeds = [derive_seed(0, "agent", a) for a in range(n)]
    return env, PopulationPPO(env.spec, cfg, seeds, compile_loss=compile_loss)


def op_table(env_id: str, n: int, iters: int, top: int = 15) -> tuple[pd.DataFrame, float]:
    """Top operators by self CPU time over ``iters`` rollout+update calls; (table, total seconds)."""
    env, agents = population(env_id, n)
    quota = np.full(n, 10**9)
    for _ in range(3):
        agents.collect_and_update(env, quota)
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            agents.collect_and_update(env, quota)
    wall = time.perf_counter() - t0
    env.close()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    rows = [
        {
            "operator": e.key,
            "calls": e.count,
            "self time share": e.self_cpu_time_total / total,
            "us per call": e.self_cpu_time_total / max(e.count, 1),
        }
        for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    ]
    return pd.DataFrame(rows), wall


MATMUL_OPS = (  # matrix products, and the convolutions of the pixel networks (CarRacing)
    "aten::bmm",
    "aten::baddbmm",
    "aten::mm",
    "aten::addmm",
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
)
TANH_OPS = ("aten::tanh", "aten::tanh_backward")


def op_categories(events: list, steps: int) -> dict[str, float]:
    """Profiled aten self time per agent step (us): tanh, matrix products, every other operator."""
    us = {"tanh": 0.0, "matmul": 0.0, "other": 0.0}
    for e in events:
        key = "tanh" if e.key in TANH_OPS else "matmul" if e.key in MATMUL_OPS else "other"
        us[key] += e.self_cpu_time_total / steps
    return us


def time_budget(env_id: str, n: int, iters: int, repeats: int = 5, target: float = 10.0) -> pd.DataFrame:
    """Where one agent step's time goes at n agents, against the budget that ``target`` x SB3 allows.

    Measured side by side in alternating chunks (median of ``repeats``): our training (wall time of
    ``iters`` rollout+update calls), stepping the same pool with random actions, and one SB3 agent
    with the same PPO settings, and one agent of ours (n=1). Then ``repeats`` profiled chunks split
    our aten operator time into tanh, matrix products and the rest (median per part; the profiler
    adds a little to each operator). The *floor* is what bit-identical results cannot avoid: env
    stepping, tanh and the matrix products. It bounds two more targets: n/n=1 (a version at its
    floor against today's n=1; a faster n=1 only lowers the ratio) and train/raw (stepping / floor).
    """
    sys.path.insert(0, str(Path(__file__).parent))
    from throughput import raw_population, sb3  # benchmarks/ is not a package

    cfg = ppo_config_for(env_id)
    pops = {k: population(env_id, k) for k in {n, 1}}

    def train_chunk(k: int, calls: int) -> tuple[float, int]:
        env, agents = pops[k]
        quota = np.full(k, 10**9)
        t0, steps = time.perf_counter(), 0
        for _ in range(calls):
            steps += int(agents.collect_and_update(env, quota).steps.sum())
        return time.perf_counter() - t0, steps

    raw, ref = raw_population(env_id, n, cfg), sb3(env_id, cfg)
    for m in (raw, ref):
        m.warm_up(1.0)
    train_chunk(n, iters)
    train_chunk(1, iters)
    ours_us, one_us = [], []
    for _ in range(repeats):
        el, steps = train_chunk(n, iters)
        ours_us.append(el / steps * 1e6)
        el, steps = train_chunk(1, iters)
        one_us.append(el / steps * 1e6)
        raw.measure()
        ref.measure()
    profiled = []  # median per part over several profiled chunks: one disturbed chunk sets no floor
    for _ in range(repeats):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            _, steps = train_chunk(n, iters)
        profiled.append(op_categories([e for e in prof.key_averages() if e.key.startswith("aten::")], steps))
    ops = {k: statistics.median(p[k] for p in profiled) for k in profiled[0]}
    for m in (raw, ref):
        m.close()
    for env, _ in pops.values():
        env.close()
    wall, one = statistics.median(ours_us), statistics.median(one_us)
    env_us = 1e6 / statistics.median(raw.rates)
    sb3_us = 1e6 / statistics.median(ref.rates)
    floor = env_us + ops["tanh"] + ops["matmul"]
    budget = sb3_us / target
    rows = [
        ("our training, wall (median)", wall),
        ("of which: stepping the same pool with random actions", env_us),
        ("of which: tanh and its backward (aten, profiled)", ops["tanh"]),
        ("of which: matrix products and convolutions (aten, profiled)", ops["matmul"]),
        ("of which: every other aten operator (profiled)", ops["other"]),
        ("of which: Python and other non-aten work (by difference)", wall - env_us - sum(ops.values())),
        ("floor: stepping + tanh + matrix products and convolutions", floor),
        ("one SB3 agent, same settings (median)", sb3_us),
        (f"budget for {target:g}x SB3", budget),
        ("budget minus floor: left for all the rest", budget - floor),
        ("all the rest now (wall minus floor)", wall - floor),
        ("our training at n=1, wall (median)", one),
        (f"n={n} / n=1 now (rate ratio, target >= 6)", one / wall),
        (f"n={n} / n=1 at most: n=1 time / n={n} floor", one / floor),
        ("train / raw now (target >= 0.5)", env_us / wall),
        ("train / raw at most: stepping / floor", env_us / floor),
    ]
    return pd.DataFrame(rows, columns=["part", "us per agent step"])


def activation_rates(shape: tuple[int, ...], calls: int = 200) -> pd.DataFrame:
    """Median time of elementwise activations on a float32 tensor of ``shape``."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    rows = []
    for name, fn in (
        ("tanh", torch.tanh),
        ("sigmoid", torch.sigmoid),
        ("exp", torch.exp),
        ("relu", torch.relu),
    ):
        times = []
        for _ in range(10):
            fn(x)
        for _ in range(calls):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rows.append(
            {
                "op": name,
                "shape": "x".join(map(str, shape)),
                "us": med * 1e6,
                "G elements/s": x.numel() / med / 1e9,
            }
        )
    return pd.DataFrame(rows)


class SigmoidTanh(torch.autograd.Function):
    """tanh(x) = 2 sigmoid(2x) - 1 (max abs difference to ``torch.tanh`` ~2e-7); backward as tanh's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - autograd's signature
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def numerics_variants(env_id: str, n: int, iters: int, repeats: int = 9) -> pd.DataFrame:
    """Training rate with the package's numerics against variants that change results in the last bits.

    Variants: tanh computed as 2 sigmoid(2x) - 1 where autograd records (the update's minibatches;
    the rollout keeps ``torch.tanh``), ``torch.compile`` (inductor, dynamic shapes) of the PPO loss
    (``PopulationPPO(..., compile_loss=True)``), and that plus a compiled rollout forward. The compiled
    variants need a C++ compiler and are left out without one. Side by side, alternating, median of
    ``repeats`` chunks of ``iters`` rollout+update calls, in agent steps per CPU second; compile
    time (the first call) is reported apart. The package's default is eager ``torch.tanh``: the
    variants change every committed result.
    """
    original = torch.tanh  # collab.networks calls torch.tanh: swapping the attribute swaps it there

    def swapped(x: torch.Tensor) -> torch.Tensor:
        return SigmoidTanh.apply(x) if torch.is_grad_enabled() else original(x)

    names = ["package: eager, torch.tanh", "tanh as 2 sigmoid(2x) - 1 in the update"]
    if cpp_compiler():
        names += ["torch.compile: PPO loss (compile_loss)", "torch.compile: PPO loss and rollout forward"]
    quota = np.full(n, 10**9)
    runs = {name: (*population(env_id, n, name.startswith("torch.compile")), []) for name in names}
    compile_s = {}
    for name, (env, agents, _) in runs.items():
        if name.startswith("torch.compile"):
            t0 = time.perf_counter()
            if "rollout" in name:
                agents.net.forward = torch.compile(agents.net.forward)  # type: ignore[method-assign]
            agents.collect_and_update(env, quota)
            compile_s[name] = time.perf_counter() - t0
    try:
        for r in range(repeats + 1):
            for name, (env, agents, rates) in runs.items():
                torch.tanh = swapped if name.startswith("tanh as") else original
                c0, steps = time.process_time(), 0
                for _ in range(iters):
                    steps += int(agents.collect_and_update(env, quota).steps.sum())
                if r > 0:  # the first chunk warms up
                    rates.append(steps / (time.process_time() - c0))
    finally:
        torch.tanh = original
    base = statistics.median(runs[names[0]][2])
    rows = [
        {
            "numerics": k,
            "steps per CPU-s (median)": statistics.median(v[2]),
            "vs package": statistics.median(v[2]) / base,
            "first call incl. compile (s; inductor's disk cache may be warm)": compile_s.get(k, float("nan")),
        }
        for k, v in runs.items()
    ]
    for env, _, _ in runs.values():
        env.close()
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("env_id", nargs="?", default="Acrobot-v1")
    p.add_argument("--n", type=int, default=8, help="agents")
    p.add_argument("--iters", type=int, default=5, help="profiled collect_and_update calls")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.n < 1 or args.iters < 1:
        sys.exit(f"--n={args.n}, --iters={args.iters}: both must be >= 1")
    torch.set_num_threads(1)
    started, load = dt.datetime.now(dt.UTC), os.getloadavg()
    ops, wall = op_table(args.env_id, args.n, args.iters)
    cfg = ppo_config_for(args.env_id)
    mb = cfg.num_envs * cfg.num_steps // cfg.num_minibatches
    mlp = env_spec(args.env_id).obs_kind != "pixels"  # the pixel network has no tanh (ReLU CNN)
    if mlp:
        acts = activation_rates((args.n, mb, cfg.hidden))
        swap = numerics_variants(args.env_id, args.n, args.iters)
        tanh_part = (
            f"\n## Elementwise activations on the update's minibatch [n, {mb}, {cfg.hidden}] (median)\n\n"
            + markdown_table(acts, ".2f")
            + "\n## Training with numerics that change results (side by side, alternating; per CPU-s)\n\n"
            + markdown_table(swap, ".2f")
        )
    else:
        tanh_part = "\nThe pixel network uses ReLU, not tanh: the activation tables are left out.\n"
    budget = time_budget(args.env_id, args.n, args.iters)
    md = (
        f"# Operator profile: {args.env_id}, n={args.n}\n\n"
        f"`python benchmarks/profile_step.py {args.env_id} --n {args.n} --iters {args.iters}`, "
        f"{started:%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, 1 thread; load average at start "
        f"{', '.join(f'{x:.2f}' for x in load)}. {args.iters} rollout+update calls profiled "
        f"({wall:.2f} s with the profiler on).\n\n"
        "## PyTorch operators by self CPU time (top 15; shares of all aten operators)\n\n"
        + markdown_table(ops, ".3f")
        + tanh_part
        + f"\n## Time per agent step at n={args.n} against the 10x SB3 budget (side by side)\n\n"
        + markdown_table(budget, ".2f")
    )
    atomic_write_text(args.out / f"profile_{args.env_id}.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=UserWarning)
    sys.exit(main())
