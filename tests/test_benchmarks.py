"""Benchmark helpers whose numbers the reports quote (benchmarks/ is not a package: loaded by path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):  # noqa: ANN202 - a module
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def test_random_policy_returns():
    rp = _load("random_policy")
    acro = rp.random_returns("Acrobot-v1", 3)
    assert acro.tolist() == [-500.0] * 3  # a random Acrobot policy never swings up: 500 steps of -1
    legal = rp.random_returns("Taxi-v4", 8, masked=True)
    # legal actions only: -1 per step, +20 on delivery, never -10; time limit 200 steps
    assert legal.min() >= -200 and np.all(legal == np.round(legal))
    anything = rp.random_returns("Taxi-v4", 8)
    assert anything.mean() < legal.mean()  # illegal pick-ups/drop-offs cost -10
    np.testing.assert_array_equal(rp.random_returns("Taxi-v4", 8, masked=True), legal)  # seeded


def test_random_policy_rejects_too_few_episodes(tmp_path):
    rp = _load("random_policy")
    with pytest.raises(SystemExit, match="--episodes=1 is not allowed"):
        rp.main(["Acrobot-v1", "--episodes", "1", "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "items,message",
    [
        (["num_env=3"], r"ppo settings=\['num_env'\] is not allowed: PPOConfig fields"),
        (["num_envs=0"], "num_envs=0 is not allowed"),
        (["x"], "override='x' is not allowed: FIELD=VALUE"),
        (["num_envs=sixteen"], "num_envs='sixteen' is not allowed: a number"),
    ],
)
def test_throughput_rejects_bad_overrides(items, message):
    tp = _load("throughput")
    with pytest.raises(SystemExit, match=message):
        tp.ppo_config("Acrobot-v1", tp.parse_overrides(items))


def test_throughput_overrides_apply():
    tp = _load("throughput")
    cfg = tp.ppo_config("Acrobot-v1", tp.parse_overrides(["num_envs=16", "anneal_lr=true"]))
    assert cfg.num_envs == 16 and cfg.anneal_lr is True and cfg.gae_lambda == 0.94  # the rest: Acrobot's


def test_throughput_summarise_compiled_rows():
    """With --compiled, the tables add compile_loss's rates and targets, computed like ours'."""
    import pandas as pd

    tp = _load("throughput")
    rates = {  # (kind, n) -> steps/s, made up so that every ratio is exact
        ("raw_envpool", 1): 50.0, ("raw_population", 1): 40.0, ("ours", 1): 10.0, ("ours_compiled", 1): 12.0,
        ("raw_envpool", 8): 400.0, ("raw_population", 8): 320.0, ("ours", 8): 40.0,
        ("ours_compiled", 8): 80.0, ("sb3", 1): 5.0,
    }  # fmt: skip
    df = pd.DataFrame(
        [
            {"env_id": "Acrobot-v1", "kind": k, "n": n, "pool": 4 * n, "sps_median": v,
             "env_step_share": 0.1, "update_share": 0.5}
            for (k, n), v in rates.items()
        ]
    )  # fmt: skip
    wide, targets = tp.summarise(df)
    row8 = wide[wide["n"] == 8].iloc[0]
    assert row8["compiled/ours"] == 2.0 and row8["compiled train/raw"] == 0.25
    assert row8["compiled/SB3"] == 16.0 and row8["compiled n / compiled n=1"] == 80.0 / 12.0
    t = targets.iloc[0]
    assert t["ours n=8 / SB3 (>= 10, MLP envs)"] == "8.0x NOT met"
    assert t["compile_loss: n=8 / SB3"] == "16.0x met"
    assert t["compile_loss: train/raw, n=8"] == "0.25 NOT met"
    assert t["compile_loss: n=8 / n=1"] == "6.7x met"
    plain, _ = tp.summarise(df[df["kind"] != "ours_compiled"])
    assert not any(c.startswith("compiled") for c in plain.columns)


def test_throughput_compiled_needs_a_compiler(monkeypatch, tmp_path):
    tp = _load("throughput")
    monkeypatch.setattr(tp, "cpp_compiler", lambda: None)
    with pytest.raises(SystemExit, match="--compiled: torch.compile needs a C\\+\\+ compiler"):
        tp.main(["--compiled", "--quick", "--envs", "Acrobot-v1", "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())
