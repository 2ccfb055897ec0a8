"""Interim analysis of a grid that is still running: Table 1 and Figures 1-3 from the finished runs.

Usage: python workflow/scripts/interim.py PROFILE
Aggregates every complete run under data/<PROFILE>/runs/ into runs/<PROFILE>/interim/data/ and
executes the analysis notebooks on it, writing tables and figures to runs/<PROFILE>/interim/figures/
(git-ignored, never data/ or figures/: interim numbers are not results). Prints how many runs of
each environment and setup it found.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from collab.results import aggregate_runs, atomic_write_text, is_complete_run  # noqa: E402

PROFILES = ("smoke", "reduced", "paper", "study")
NOTEBOOKS = ("table1", "figures")


def complete_runs(profile: str, root: Path = REPO) -> list[Path]:
    """Run folders data/<profile>/runs/<env>/<setup>/seed<k> that hold all result files."""
    base = root / "data" / profile / "runs"
    return sorted(d for d in base.glob("*/*/seed*") if d.is_dir() and is_complete_run(d))


def main(profile: str) -> int:
    """Aggregate the finished runs of ``profile`` and execute the analysis notebooks on them."""
    if profile not in PROFILES:
        print(f"profile={profile!r} is not allowed: one of {', '.join(PROFILES)}", file=sys.stderr)
        return 2
    runs = complete_runs(profile)
    if not runs:
        print(f"no finished runs under data/{profile}/runs/ yet", file=sys.stderr)
        return 1
    out = REPO / "runs" / profile / "interim"
    data_dir, fig_dir, nb_dir = out / "data", out / "figures", out / "notebooks"
    for d in (data_dir, fig_dir, nb_dir):
        d.mkdir(parents=True, exist_ok=True)
    aggregate_runs(runs, data_dir)
    # the run folders, for the tables read from them (population_eval.csv, reselection.csv); the
    # analysis keeps only the runs aggregated above
    link = data_dir / "runs"
    if not link.is_symlink():
        link.symlink_to(REPO / "data" / profile / "runs", target_is_directory=True)
    config = REPO / "workflow" / "config" / f"{profile}.yaml"
    if config.exists():  # the setups in config order, as the workflow's aggregation writes them
        import yaml
        from grid import load_grid

        grid = load_grid(yaml.safe_load(config.read_text()), source=str(config), check_env=False)
        atomic_write_text(data_dir / "setups.json", grid.setups_json())
    print(f"{len(runs)} finished runs of profile {profile} -> {data_dir.relative_to(REPO)}")
    for name in NOTEBOOKS:
        cmd = [
            sys.executable, "-m", "papermill", "--no-progress-bar",
            str(REPO / "notebooks" / f"{name}.ipynb"), str(nb_dir / f"{name}.ipynb"),
            "-r", "profile", profile, "-r", "data_dir", str(data_dir), "-r", "out_dir", str(fig_dir),
        ]  # fmt: skip
        subprocess.run(cmd, check=True, cwd=REPO)
    print(f"interim Table 1, figures and costs: {fig_dir.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
