"""Where runs diverge across CPUs, and what portable numerics cost.

One machine can imitate a lesser CPU: each library that picks its kernels by the CPU can be told to
stop at a lower instruction set, and MKL's vector math can be forced onto the code paths it runs on
other CPUs. This script runs the same short experiments (one per environment) in fresh processes
under each such *dispatch setting*, in both numerics modes, and reports whether
the CSVs equal those of the unrestricted run. Then it times native against portable numerics side by
side (alternating, fresh processes, the run itself only) and reports the median ratio.

    python benchmarks/portability.py                      # 6 environments, 3 timing repeats
    python benchmarks/portability.py --envs Pendulum-v1 --repeats 1
    python benchmarks/portability.py --run data/reduced/runs/Pendulum-v1/collaborative_2/seed0  # a long cell

Writes ``benchmarks/results/portability.{csv,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from collab.numerics import LESSER_CPUS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"

#: MKL's vector math (VML) runs one code path on Intel CPUs and another elsewhere, whatever the
#: environment says; the child forces it onto path N (MKL's internal ``mkl_vml_cpu_type``) to imitate
#: another vendor's. Paths 1, 7 and 9 give other float sqrt/exp/tanh results than an AMD EPYC's own.
VML_PATHS = {f"MKL VML path {n}": {"COLLAB_MKL_VML_PATH": str(n)} for n in (1, 7, 9)}
#: Dispatch settings: this machine's own kernels, then those of lesser CPUs and other VML paths.
SETTINGS: dict[str, dict[str, str]] = {"unrestricted": {}, **LESSER_CPUS, **VML_PATHS}

#: One short collaborative experiment per environment: long enough for chaos to spread a
#: last-bit difference into the returns, short enough to run many times.
CELLS: dict[str, dict] = {
    "Acrobot-v1": {"episodes_per_agent": 20, "validate_every": 5},
    "Pendulum-v1": {"episodes_per_agent": 20, "validate_every": 5},
    "BipedalWalker-v3": {"episodes_per_agent": 8, "validate_every": 4, "max_episode_steps": 200},
    "LunarLander-v3": {"episodes_per_agent": 20, "validate_every": 5},
    "CarRacing-v3": {"episodes_per_agent": 4, "validate_every": 2, "max_episode_steps": 100},
    "Taxi-v4": {"episodes_per_agent": 40, "validate_every": 10},
}
#: Cells taken from committed runs' config.json (--run), by a label.
RUNS: dict[str, dict] = {}
BASE = {"strategy": "collaborative", "n_agents": 2, "val_episodes": 2, "eval_episodes": 3, "seed": 0}

#: The child: one experiment, prints the CSVs' digest and the run's seconds as JSON.
CHILD = """
import ctypes, hashlib, json, os, sys, time
from pathlib import Path
import pandas as pd
from collab import ExperimentConfig, numerics, run_experiment
from collab.results import SCHEMA, VOLATILE_COLUMNS
cfg = ExperimentConfig.from_dict(json.loads(sys.argv[1]))
if os.environ.get("COLLAB_MKL_VML_PATH"):  # before MKL's first call picks its code paths
    numerics.apply(cfg.numerics)
    detect = ctypes.cast(numerics._mkl().mkl_serv_cpu_detect, ctypes.c_void_p).value
    code = ctypes.string_at(detect, 7)  # cmpl $0, mkl_cpu_type(%rip): the variable it caches
    assert code[:2] == bytes.fromhex("833d"), "this MKL build has another layout"
    cpu_type = detect + 7 + int.from_bytes(code[2:6], "little", signed=True)
    vml_type = ctypes.c_int.from_address(cpu_type + 4)  # mkl_vml_cpu_type follows it
    assert vml_type.value == -1, "MKL already chose its paths"
    ctypes.c_int.from_address(cpu_type).value = 0
    vml_type.value = int(os.environ["COLLAB_MKL_VML_PATH"])
t0 = time.perf_counter()
run_experiment(cfg, progress=False)
secs = time.perf_counter() - t0
h = hashlib.sha256()
for name in SCHEMA:
    df = pd.read_csv(Path(cfg.out_dir) / name).drop(columns=VOLATILE_COLUMNS, errors="ignore")
    h.update(df.to_csv(index=False).encode())
print(json.dumps({"digest": h.hexdigest()[:12], "seconds": secs}))
"""


def run_cell(env_id: str, numerics: str, setting: str, out_dir: str) -> dict:
    """Run one cell in a fresh process under ``setting``; returns its digest and seconds."""
    if env_id in RUNS:  # a committed run's configuration (--run)
        cfg = {**RUNS[env_id], "numerics": numerics, "out_dir": out_dir}
    else:
        cfg = {**BASE, **CELLS[env_id], "env_id": env_id, "numerics": numerics, "out_dir": out_dir}
    env = {**os.environ, **SETTINGS[setting]}
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CHILD, json.dumps(cfg)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{env_id} {numerics} {setting} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--envs", nargs="+", default=list(CELLS), choices=list(CELLS))
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats per mode (alternating)")
    ap.add_argument("--run", help="instead of --envs: a committed run folder whose config.json is the cell")
    args = ap.parse_args(argv)
    if args.run:
        path = Path(args.run) / "config.json"
        if not path.is_file():
            raise SystemExit(f"--run={args.run!r} is not allowed: a run folder with a config.json")
        cfg = json.loads(path.read_text())
        for key in ("versions", "backend_used", "budget_unit", "machine", "checkpoints"):
            cfg.pop(key, None)
        label = str(Path(args.run).relative_to(ROOT) if Path(args.run).is_absolute() else args.run)
        RUNS[label] = cfg
        args.envs = [label]
    if args.repeats < 1:
        raise SystemExit(f"--repeats={args.repeats} is not allowed: an integer >= 1")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for env_id in args.envs:
            ref: dict[str, str] = {}
            for numerics in ("native", "portable"):
                for setting in ["unrestricted", *[s for s in args.settings if s != "unrestricted"]]:
                    r = run_cell(env_id, numerics, setting, f"{tmp}/{env_id}-{numerics}-{len(rows)}")
                    ref.setdefault(numerics, r["digest"])
                    rows.append(
                        {
                            "env_id": env_id,
                            "numerics": numerics,
                            "setting": setting,
                            "digest": r["digest"],
                            "same_as_unrestricted": r["digest"] == ref[numerics],
                            "seconds": r["seconds"],
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
            for rep in range(args.repeats):  # alternating, unrestricted machine
                for numerics in ("native", "portable") if rep % 2 == 0 else ("portable", "native"):
                    r = run_cell(env_id, numerics, "unrestricted", f"{tmp}/t-{len(rows)}")
                    rows.append(
                        {
                            "env_id": env_id,
                            "numerics": numerics,
                            "setting": "timing",
                            "digest": r["digest"],
                            "same_as_unrestricted": r["digest"] == ref[numerics],
                            "seconds": r["seconds"],
                        }
                    )
    df = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    stem = "portability" if not args.run else "portability_" + Path(args.run).parent.parent.name
    df.to_csv(OUT / f"{stem}.csv", index=False)
    ident = (
        df[df["setting"] != "timing"]
        .pivot_table(index=["env_id", "numerics"], columns="setting", values="same_as_unrestricted")
        .reindex(columns=[s for s in SETTINGS if s in args.settings or s == "unrestricted"])
        .map(lambda v: "same" if v else "DIFFERS")
    )
    t = df[df["setting"] == "timing"].groupby(["env_id", "numerics"])["seconds"].median().unstack()
    t["portable/native"] = t["portable"] / t["native"]
    from collab.numerics import fingerprint

    fp = fingerprint()
    md = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {fp['cpu_vendor']} {fp['cpu_model']} "
        f"(ISA {', '.join(fp['cpu_isa'])}; torch {fp['torch']}, {fp['mkl']}), "
        f"`python benchmarks/portability.py {' '.join(argv or sys.argv[1:])}`.",
        "",
        "CSVs equal to the unrestricted run's (same mode) under each dispatch setting:",
        "",
        ident.reset_index().to_markdown(index=False),
        "",
        f"Run time in seconds (median of {args.repeats}, alternating, fresh processes):",
        "",
        t.round(2).reset_index().to_markdown(index=False),
    ]
    tmp_md = OUT / f"{stem}.md.tmp"
    tmp_md.write_text("\n".join(md) + "\n")
    tmp_md.replace(OUT / f"{stem}.md")
    print("\n".join(md))


if __name__ == "__main__":
    main()
