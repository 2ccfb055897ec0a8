"""Where two machines part: a call-by-call trace of a short portable run, and the first call whose
result differs between two traces.

``python -m collab.trace`` runs the committed portable Pendulum cell of ``tests/test_numerics.py``
(collaborative, 2 agents, seed 0) in portable numerics and records, in call order, a hash of the
result of every numerical function of the package (:data:`TARGETS`) and of every ATen operator. It
then compares the trace with the reference committed beside that cell
(``tests/data/portable/<env>/trace.jsonl.gz``) and prints the first call that differs: every earlier
result agrees, so that call (or, for a package function, an operator inside it) computes differently
on the two machines. The trace it wrote (``runs/trace/<env>.jsonl.gz``) is the file to send us.

    python -m collab.trace                 # this machine against the reference (~30 s; exit 1: differs)
    python -m collab.trace --env Taxi-v4   # another committed cell
    python -m collab.trace --compare A.jsonl.gz B.jsonl.gz

A trace compares only code that trains identically: after a change that alters training on purpose,
rerecord the reference (``--out tests/data/portable/Pendulum-v1/trace.jsonl.gz``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import hashlib
import importlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "portable"

#: The committed portable cells (``tests/data/portable/<env>/``): collaborative, 2 agents, seed 0.
CELLS: dict[str, dict[str, Any]] = {
    "Pendulum-v1": {"episodes_per_agent": 20, "validate_every": 5},
    "Taxi-v4": {"episodes_per_agent": 40, "validate_every": 10},
    "LunarLander-v3": {"episodes_per_agent": 12, "validate_every": 4},
    "CarRacing-v3": {"episodes_per_agent": 4, "validate_every": 2, "max_episode_steps": 60},
}
BASE: dict[str, Any] = {
    "strategy": "collaborative",
    "n_agents": 2,
    "val_episodes": 2,
    "eval_episodes": 3,
    "seed": 0,
}

#: The package's numerical functions, traced call by call (``module:qualname``).
TARGETS = (
    "collab.envs:PopulationEnv.reset",
    "collab.envs:PopulationEnv.step",
    "collab.ppo:PopulationPPO.act",
    "collab.ppo:PopulationPPO.normalize_obs",
    "collab.ppo:PopulationPPO._draw_noise",
    "collab.ppo:PopulationPPO.update",
    "collab.ppo:PopulationPPO.minibatch_loss",
    "collab.normalization:RunningMeanStd.update",
    "collab.ppo:gae",
    "collab.normalization:scale_rewards",
    "collab.networks:PopulationMLP.forward",
    "collab.networks:PopulationActorCritic.forward",
    "collab.networks:log_prob_entropy",
    "collab.networks:sample_action",
    "collab.optim:BatchedAdam.step",
    "collab.optim:clip_grad_norms",
)
#: Operators that compute nothing (views) or leave memory uninitialised: only their shapes count.
_VIEWS = frozenset(
    "view reshape _reshape_alias _unsafe_view permute transpose t expand select slice squeeze "
    "unsqueeze alias detach as_strided split unbind split_with_sizes chunk narrow diagonal unfold "
    "lift_fresh set_".split()
)
#: Records kept per trace: the first difference between two machines comes early.
LIMIT = 60_000


def digest(x: Any) -> str:
    """A short hash of the tensors, arrays and plain values in ``x`` (bytes, shapes and dtypes)."""
    import numpy as np
    import torch
    from torch.utils._python_dispatch import _disable_current_modes

    h = hashlib.sha1()

    def feed(v: Any, depth: int) -> None:
        if depth > 3:
            return
        if isinstance(v, torch.Tensor):
            t = v.detach().contiguous().cpu()
            h.update(str((tuple(t.shape), str(t.dtype))).encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, np.ndarray):
            h.update(str((v.shape, v.dtype.str)).encode())
            h.update(np.ascontiguousarray(v).tobytes())
        elif isinstance(v, (list, tuple)):
            for e in v:
                feed(e, depth + 1)
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                feed(v[k], depth + 1)
        elif isinstance(v, (int, float, bool, str)) or v is None:
            h.update(repr(v).encode())
        elif hasattr(v, "__dict__"):
            feed({k: w for k, w in vars(v).items() if isinstance(w, (torch.Tensor, np.ndarray))}, depth + 1)

    with _disable_current_modes():  # hashing is not part of the run
        feed(x, 0)
    return h.hexdigest()[:16]


@contextlib.contextmanager
def _wrapped_targets(records: list[dict]) -> Iterator[None]:
    """Record every call of :data:`TARGETS` (inputs, result, and the object's tensors before/after)."""
    undo = []
    for target in TARGETS:
        mod_name, qual = target.split(":")
        owner: Any = importlib.import_module(mod_name)
        *cls, attr = qual.split(".")
        if cls:
            owner = getattr(owner, cls[0])
        fn = owner.__dict__[attr] if cls else getattr(owner, attr)

        def wrap(fn: Any = fn, name: str = qual, method: bool = bool(cls)) -> Any:
            @functools.wraps(fn)
            def inner(*args: Any, **kwargs: Any) -> Any:
                rec = {"fn": name, "in": digest([args[1:] if method else args, kwargs])}
                if method:
                    rec["self_in"] = digest(args[0])
                out = fn(*args, **kwargs)
                rec["out"] = digest(out)
                if method:
                    rec["self_out"] = digest(args[0])
                if len(records) < LIMIT:
                    records.append(rec)
                return out

            return inner

        wrapped = wrap()
        # a module function is patched wherever the package imported it by name
        owners = (
            [owner]
            if cls
            else [
                m for k, m in sys.modules.items() if k.startswith("collab") and getattr(m, attr, None) is fn
            ]
        )
        for o in owners:
            setattr(o, attr, wrapped)
            undo.append((o, attr, fn))
    try:
        yield
    finally:
        for owner, attr, fn in undo:
            setattr(owner, attr, fn)


def _op_mode(records: list[dict], counts: dict[str, int], perturb: tuple[str, int] | None) -> Any:
    """A dispatch mode recording every ATen operator's result (the first :data:`LIMIT` records) and
    counting every operator's calls in ``counts``; ``perturb`` = (operator, k) flips the lowest bit of
    the k-th call's first result element (to show that a difference is found)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            name = str(func)  # e.g. aten.baddbmm.default, aten.mul_.Tensor
            op = name.split(".")[1]
            out = func(*args, **(kwargs or {}))
            counts[name] = counts.get(name, 0) + 1
            if op.startswith("pow") and len(args) > 1 and isinstance(args[1], float) and abs(args[1]) == 0.5:
                counts["aten.sqrt.via_pow"] = counts.get("aten.sqrt.via_pow", 0) + 1
            if perturb is not None and (name, counts[name]) == perturb:
                if not (isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel()):
                    raise ValueError(
                        f"--perturb {name}:{counts[name]}: that call has no floating-point result"
                    )
                bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[out.element_size()]
                out.view(-1)[:1].view(bits).bitwise_xor_(1)
                counts["perturbed"] = 1
            if "empty" in op or op in _VIEWS:
                rec = {"fn": "aten:" + name, "out": digest(_shapes(out))}
            else:  # in place: the result is the first argument
                rec = {"fn": "aten:" + name, "out": digest(args[0] if op.endswith("_") else out)}
            if len(records) < LIMIT:
                records.append(rec)
            return out

    return Ops()


def _shapes(x: Any) -> Any:
    import torch

    if isinstance(x, torch.Tensor):
        return [tuple(x.shape), tuple(x.stride()), str(x.dtype)]
    if isinstance(x, (list, tuple)):
        return [_shapes(e) for e in x]
    return None


def record(
    env_id: str = "Pendulum-v1", ops: bool = True, perturb: tuple[str, int] | None = None, **overrides: Any
) -> list[dict]:
    """Run the committed portable cell of ``env_id`` (with ``overrides``) and return its trace.

    The first record is the machine's fingerprint. Pins this process to portable numerics, so it must
    run before any other PyTorch work in the process (the command line starts a fresh one).
    """
    from collab import ExperimentConfig, numerics
    from collab.config import ConfigError

    if env_id not in CELLS:
        raise ConfigError(
            f"env_id={env_id!r} is not allowed: one of {', '.join(CELLS)} (the committed cells)"
        )
    numerics.use_portable()
    from collab import run_experiment

    records: list[dict] = []
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as d, _wrapped_targets(records):
        cfg = ExperimentConfig(
            **{**BASE, **CELLS[env_id], **overrides, "env_id": env_id, "numerics": "portable", "out_dir": d}
        )
        with _op_mode(records, counts, perturb) if ops else contextlib.nullcontext():
            run_experiment(cfg, progress=False)
    if perturb is not None and "perturbed" not in counts:
        raise ValueError(f"--perturb {perturb[0]}:{perturb[1]}: the run makes fewer such calls (or none)")
    head = {"machine": numerics.fingerprint(), "env_id": env_id, "overrides": overrides, "op_counts": counts}
    return [head, *({"i": i, **r} for i, r in enumerate(records))]


def write(path: Path, trace: list[dict]) -> None:
    """Write ``trace`` as JSON lines (gzip-compressed for ``.gz``), atomically."""
    from collab.results import atomic_path

    opener = gzip.open if path.suffix == ".gz" else open
    with atomic_path(path) as tmp, opener(tmp, "wt", encoding="utf-8") as f:
        for r in trace:
            f.write(json.dumps(r) + "\n")


def read(path: Path) -> list[dict]:
    """A trace written by :func:`write`."""
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def first_difference(a: list[dict], b: list[dict]) -> dict | None:
    """The first record where two traces part (``{"i", "fn", "why"}``), or None if they agree."""
    for x, y in zip(a[1:], b[1:], strict=False):
        if x["fn"] != y["fn"]:
            return {"i": x["i"], "fn": x["fn"], "why": f"the call sequence differs ({x['fn']} vs {y['fn']})"}
        if x["out"] != y["out"] or x.get("self_out") != y.get("self_out"):
            return {"i": x["i"], "fn": x["fn"], "why": "its result differs; every earlier result agrees"}
    if len(a) != len(b):
        return {"i": min(len(a), len(b)) - 1, "fn": "(end)", "why": "one trace is longer"}
    return None


def vml_calls(trace: list[dict]) -> dict[str, int]:
    """How often the traced run called each operator of :data:`collab.numerics.VML_OPS` (all its
    calls, not only the recorded ones): none in portable runs."""
    from collab.numerics import VML_OPS

    return {
        op: n
        for op, n in trace[0]["op_counts"].items()
        if op.startswith("aten.") and op.split(".")[1].rstrip("_") in VML_OPS  # also in place: exp_
    }


def describe(a: list[dict], b: list[dict]) -> str:
    """One paragraph: the two machines and where (whether) their traces part."""

    def who(t: list[dict]) -> str:
        m = t[0]["machine"]
        return f"{m.get('cpu_vendor')} {m.get('cpu_model')}"

    diff = first_difference(a, b)
    if diff is None:
        return f"identical: {len(a) - 1} calls agree ({who(a)} | {who(b)})"
    return f"first difference at call {diff['i']}: {diff['fn']}: {diff['why']} ({who(a)} | {who(b)})"


def main(argv: list[str] | None = None) -> int:
    """Command line: record this machine's trace and compare it with the reference (see module doc)."""
    p = argparse.ArgumentParser(prog="python -m collab.trace", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Pendulum-v1", choices=list(CELLS), help="the committed cell to trace")
    p.add_argument(
        "--out", type=Path, help="where to write this machine's trace (default runs/trace/<env>.jsonl.gz)"
    )
    p.add_argument("--reference", type=Path, help="the trace to compare with (default: the committed one)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="only compare two trace files")
    p.add_argument(
        "--no-ops", action="store_true", help="trace the package's functions only, not every operator"
    )
    p.add_argument(
        "--perturb", metavar="OP:K", help="flip one bit of the K-th result of operator OP (a self-test)"
    )
    p.add_argument("--episodes", type=int, help="episodes per agent (default: the committed cell's)")
    args = p.parse_args(argv)
    if args.compare:
        a, b = read(args.compare[0]), read(args.compare[1])
        print(describe(a, b))
        return 0 if first_difference(a, b) is None else 1
    perturb = None
    if args.perturb:
        op, _, k = args.perturb.rpartition(":")
        if not op or not k.isdigit() or int(k) < 1:
            p.error(f"--perturb {args.perturb!r} is not allowed: OP:K, e.g. aten.sqrt.default:1")
        perturb = (op, int(k))
    overrides = {}
    if args.episodes is not None:
        overrides = {"episodes_per_agent": args.episodes, "validate_every": max(1, args.episodes // 2)}
    out = args.out or ROOT / "runs" / "trace" / f"{args.env}.jsonl.gz"
    try:
        mine = record(args.env, ops=not args.no_ops, perturb=perturb, **overrides)
    except ValueError as e:
        p.error(str(e))
    write(out, mine)
    print(f"{len(mine) - 1} calls traced into {out}")
    ref_path = args.reference or REFERENCE / args.env / "trace.jsonl.gz"
    if args.reference is None and (overrides or args.no_ops):
        print("not compared: the committed reference traces the whole cell, operators included")
        return 0
    if not ref_path.exists():
        print(f"not compared: no reference trace at {ref_path}")
        return 0
    reference = read(ref_path)
    print(describe(reference, mine))
    return 0 if first_difference(reference, mine) is None else 1


if __name__ == "__main__":
    sys.exit(main())
