"""Re-evaluate the committed selected agents of a profile on more episodes (``collab.policy.evaluate_run``).

    python workflow/scripts/reevaluate.py PROFILE [--episodes N] [--envs ENV [ENV ...]]

Every run folder ``data/<PROFILE>/runs/<env>/<setup>/seed<k>/`` of ``--envs`` (default: all) whose
``selected.safetensors`` git tracks plays N episodes (default 100) seeded apart from training,
validation and the final evaluation (the episodes of ``population_eval.csv``), in the run's numerics
mode and on its backend. The rows, shaped like ``final.csv``, go to ``data/<PROFILE>/reeval_selected.csv``
(written atomically); ``notebooks/table1.ipynb`` sets them beside Table 1. Runs whose agent is not
committed are counted and left out. Bad arguments give one error and write nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PROFILES = ("smoke", "reduced", "paper", "study")
#: The file the re-evaluation writes under ``data/<profile>/``.
REEVAL_FILE = "reeval_selected.csv"


def tracked_agents(profile: str, root: Path = REPO) -> set[Path]:
    """The ``selected.safetensors`` files of ``data/<profile>/runs`` that git tracks (committed agents)."""
    out = subprocess.run(
        ["git", "ls-files", f"data/{profile}/runs"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    return {root / p for p in out if p.endswith("/selected.safetensors")}


def main(argv: list[str] | None = None) -> int:
    """Re-evaluate a profile's committed selected agents; returns a process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--envs", nargs="+", default=None)
    args = ap.parse_args(argv)
    if args.profile not in PROFILES:
        print(f"profile={args.profile!r} is not allowed: one of {', '.join(PROFILES)}", file=sys.stderr)
        return 2
    if args.episodes < 1:
        print(f"--episodes={args.episodes} is not allowed: an integer >= 1", file=sys.stderr)
        return 2
    runs = sorted(p for p in (REPO / "data" / args.profile / "runs").glob("*/*/seed*") if p.is_dir())
    envs = sorted({p.parent.parent.name for p in runs})
    if args.envs is not None:
        bad = [e for e in args.envs if e not in envs]
        if bad:
            print(f"--envs {bad} is not allowed: environments of the profile are {envs}", file=sys.stderr)
            return 2
        runs = [p for p in runs if p.parent.parent.name in args.envs]
    committed = tracked_agents(args.profile)
    with_agent = [p for p in runs if p / "selected.safetensors" in committed]
    if not with_agent:
        print(f"no committed selected agent among the {len(runs)} runs", file=sys.stderr)
        return 1

    import pandas as pd
    from tqdm.auto import tqdm

    from collab.policy import evaluate_run
    from collab.results import atomic_write_csv

    parts = [evaluate_run(p, episodes=args.episodes) for p in tqdm(with_agent, desc="re-evaluating")]
    out = REPO / "data" / args.profile / REEVAL_FILE
    atomic_write_csv(out, pd.concat(parts, ignore_index=True))
    print(
        f"{len(with_agent)} selected agents x {args.episodes} episodes -> {out.relative_to(REPO)}; "
        f"{len(runs) - len(with_agent)} runs without a committed agent left out"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
