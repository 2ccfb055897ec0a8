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


def test_random_policy_taxi_delivery(tmp_path):
    """--taxi-delivery: a uniform Taxi policy sometimes delivers; one that almost never picks up or
    drops off does not; the table is written."""
    rp = _load("random_policy")
    rate, mean = rp.delivery_rate(None, 100)
    assert 0 < rate < 0.2 and mean < -200  # illegal pick-ups/drop-offs cost -10 each
    assert rp.delivery_rate(0.001, 20) == (0.0, rp.delivery_rate(0.001, 20)[1])
    assert rp.delivery_rate(None, 100) == (rate, mean)  # seeded
    assert rp.main(["--taxi-delivery", "--delivery-episodes", "5", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taxi_delivery.csv", "taxi_delivery.md"]
    assert "pick-up, drop-off 0.05 each" in (tmp_path / "taxi_delivery.md").read_text()


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
    cfg = tp.ppo_config("Acrobot-v1", tp.parse_overrides(["num_envs=16", "norm_reward=true"]))
    assert cfg.num_envs == 16 and cfg.norm_reward is True and cfg.gae_lambda == 0.94  # the rest: Acrobot's


def test_throughput_summarise_rates_and_ratios():
    """The tables' ratios: ours / SB3, raw stepping / SB3, ours / raw, and the scaling with n."""
    import pandas as pd

    tp = _load("throughput")
    rates = {  # (kind, n) -> steps/s, made up so that every ratio is exact
        ("raw_envpool", 1): 50.0, ("raw_population", 1): 40.0, ("ours", 1): 10.0,
        ("raw_envpool", 8): 400.0, ("raw_population", 8): 320.0, ("ours", 8): 40.0, ("sb3", 1): 5.0,
    }  # fmt: skip
    df = pd.DataFrame(
        [
            {"env_id": "Acrobot-v1", "kind": k, "n": n, "pool": 4 * n, "sps_median": v,
             "env_step_share": 0.1, "update_share": 0.5, "check_share": 0.001}
            for (k, n), v in rates.items()
        ]
    )  # fmt: skip
    wide, ratios = tp.summarise(df)
    row8 = wide[wide["n"] == 8].iloc[0]
    assert row8["ours/SB3"] == 8.0 and row8["train/raw"] == 0.125 and row8["ours n / ours n=1"] == 4.0
    assert row8["pool envs"] == 32 and row8["checks share"] == "0.10%"
    assert ratios.iloc[0].to_dict() == {
        "env": "Acrobot-v1",
        "ours n=8 / SB3": "8.0x",
        "raw n=8 / SB3": "64.0x",
        "train/raw, n=8": "0.12",
        "train/raw, worst n": "0.12 (n=8)",
        "ours n=8 / n=1": "4.0x",
    }
