"""The reproducibility trace (``python -m collab.trace``) and the vendor-independent math it checks.

Portable runs must not call MKL's vector math (VML), whose results depend on the CPU's vendor: the
traces of short portable runs of each network kind count every operator called. The trace command is
deterministic, finds a difference planted in one operator's result, and this machine's trace of the
committed Pendulum cell equals the committed reference.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from collab import trace
from collab.numerics import fingerprint

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64" or "avx2" not in fingerprint()["cpu_isa"],
    reason="portable numerics need an x86-64 CPU with AVX2",
)


def run_trace(out: Path, *args: str) -> list[dict]:
    """``python -m collab.trace --out OUT ARGS`` in a fresh process (portable numerics need one)."""
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "collab.trace", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return trace.read(out)


@pytest.fixture(scope="module")
def tiny_pendulum(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return run_trace(tmp_path_factory.mktemp("trace") / "a.jsonl.gz", "--episodes", "2")


def test_trace_is_deterministic_and_finds_a_planted_difference(tiny_pendulum, tmp_path):
    again = run_trace(tmp_path / "again.jsonl.gz", "--episodes", "2")
    assert trace.first_difference(tiny_pendulum, again) is None
    # the 7th batched matrix product gets one bit flipped: the diff names exactly that call
    planted = run_trace(tmp_path / "b.jsonl.gz", "--episodes", "2", "--perturb", "aten.baddbmm.default:7")
    calls = [r["i"] for r in tiny_pendulum[1:] if r["fn"] == "aten:aten.baddbmm.default"]
    diff = trace.first_difference(tiny_pendulum, planted)
    assert diff is not None and (diff["i"], diff["fn"]) == (calls[6], "aten:aten.baddbmm.default")
    assert f"first difference at call {calls[6]}: aten:aten.baddbmm.default" in trace.describe(
        tiny_pendulum, planted
    )
    compare = [sys.executable, "-m", "collab.trace", "--compare"]
    differ = subprocess.run([*compare, str(tmp_path / "b.jsonl.gz"), str(tmp_path / "again.jsonl.gz")])
    same = subprocess.run([*compare, str(tmp_path / "again.jsonl.gz"), str(tmp_path / "again.jsonl.gz")])
    assert (differ.returncode, same.returncode) == (1, 0)


def test_op_counts_see_in_place_and_pow_square_roots():
    """``x.exp_()`` and ``x ** 0.5`` reach VML as surely as ``x.exp()`` and ``x.sqrt()``."""
    import torch

    counts: dict[str, int] = {}
    with trace._op_mode([], counts, None):
        x = torch.full((3,), 4.0)
        x.exp_()
        _ = x**0.5
    assert set(trace.vml_calls([{"op_counts": counts}])) == {"aten.exp_.default", "aten.sqrt.via_pow"}


@pytest.mark.parametrize("env_id", ["Taxi-v4", "CarRacing-v3"])
def test_portable_runs_call_no_vendor_dependent_operator(env_id, tiny_pendulum, tmp_path):
    """Continuous MLP (Pendulum), discrete one-hot MLP (Taxi) and CNN (CarRacing) portable runs call
    no VML operator, though they need square roots, exponentials, logarithms and tanh."""
    assert trace.vml_calls(tiny_pendulum) == {}
    assert tiny_pendulum[0]["op_counts"]["aten.sigmoid.default"] > 0  # the tanh layers ran
    t = run_trace(tmp_path / "t.jsonl.gz", "--env", env_id, "--episodes", "2")
    assert t[0]["op_counts"]["aten.exp2.default"] > 0
    assert trace.vml_calls(t) == {}


def test_vml_calls_names_the_vendor_dependent_operators():
    counts = {"aten.sqrt.default": 3, "aten.exp2.default": 5, "aten.tanh.default": 1, "aten.exp_.default": 2}
    counts |= {"aten.sqrt.via_pow": 4, "aten.pow.Tensor_Scalar": 4, "aten.log1p.default": 1}
    assert trace.vml_calls([{"op_counts": counts}]) == {
        "aten.sqrt.default": 3,
        "aten.tanh.default": 1,
        "aten.exp_.default": 2,
        "aten.sqrt.via_pow": 4,
    }


def test_this_machine_matches_the_reference_trace(tmp_path):
    """The committed reference is our machine's trace of the committed Pendulum cell (60,000 calls)."""
    mine = run_trace(tmp_path / "mine.jsonl.gz")
    reference = trace.read(trace.REFERENCE / "Pendulum-v1" / "trace.jsonl.gz")
    assert len(mine) == len(reference) == trace.LIMIT + 1
    assert trace.first_difference(reference, mine) is None, trace.describe(reference, mine)


def test_bad_trace_arguments_name_the_value(tmp_path):
    out = tmp_path / "t.jsonl.gz"
    for args, message in [
        (["--env", "Walker-v9"], "invalid choice: 'Walker-v9'"),
        (["--perturb", "sqrt"], "--perturb 'sqrt' is not allowed: OP:K"),
        (["--episodes", "1", "--perturb", "aten.sqrt.default:1"], "the run makes fewer such calls (or none)"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "collab.trace", "--out", str(out), *args], capture_output=True, text=True
        )
        assert proc.returncode == 2 and message in proc.stderr
        assert not out.exists()


PORTABLE_MATH = """
import json
import numpy as np
from collab import numerics
numerics.use_portable()
import torch
g = torch.Generator().manual_seed(0)
x = (torch.rand(100_000, generator=g, dtype=torch.float64) * 40 - 20).float()
u = torch.rand(100_000, generator=g).clamp_(1e-20, 1.0)
v = (torch.rand(100_000, generator=g, dtype=torch.float64) * 1e4).float()
xd, ud = x.double().numpy(), u.double().numpy()
tanh = numerics.tanh(x).double().numpy()
exp = numerics.exp(x[x < 5]).double().numpy()
log = numerics.log(u).double().numpy()
print(json.dumps({
    "sqrt_exact": bool((numerics.sqrt(v).numpy() == np.sqrt(v.double().numpy()).astype(np.float32)).all()),
    "tanh_abs": float(np.abs(tanh - np.tanh(xd)).max()),
    "exp_rel": float(np.abs(exp / np.exp(xd[xd < 5]) - 1).max()),
    "log_abs": float(np.abs(log - np.log(ud)).max()),
    "exp_grad": float(torch.autograd.functional.jacobian(numerics.exp, torch.tensor([0.5]))[0, 0]),
    "tanh_grad": float(torch.autograd.functional.jacobian(numerics.tanh, torch.tensor([0.5]))[0, 0]),
}))
"""


def test_portable_math_is_accurate():
    """The portable sqrt is correctly rounded; exp, log and tanh are within a few float32 units of
    float64 references, and exp and tanh differentiate as they should."""
    proc = subprocess.run([sys.executable, "-c", PORTABLE_MATH], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["sqrt_exact"]
    assert got["tanh_abs"] < 2.5e-7  # |tanh| <= 1: a few units of 2**-24
    assert got["exp_rel"] < 3e-6  # exp2(x log2 e): the product's rounding, |x| <= 20
    assert got["log_abs"] < 2e-6  # |log u| <= 46
    assert got["exp_grad"] == pytest.approx(1.6487213, rel=1e-6)  # e**0.5
    assert got["tanh_grad"] == pytest.approx(0.7864477, rel=1e-6)  # 1 - tanh(0.5)**2
