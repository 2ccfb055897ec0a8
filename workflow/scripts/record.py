"""Record a run's saved agent playing into a GIF or MP4 (``collab.record``).

    python workflow/scripts/record.py RUN_DIR OUT.gif [--agent selected|INDEX] [--episodes N]
        [--scale S] [--every K] [--fps F]
    python workflow/scripts/record.py DATA_DIR OUT.gif --pick best|worst --env ENV_ID [...]

With ``--pick``, the first argument is a profile's data folder (``data/<profile>``, with its
final.csv) and the run is the one of ``ENV_ID`` whose selected agent had the highest (best) or lowest
(worst) mean final evaluation return (``collab.analysis.extreme_runs``). The agent plays in the run's
numerics mode, on Gymnasium from the seed of the run's evaluation episode: a run evaluated on envpool
started its episodes from other states, so the recorded returns are not final.csv's.
Used by ``workflow/Snakefile`` (rules ``agent_gif`` and ``extreme_gif``: ``agent_gifs: true`` or
``best_worst``) and for the README's animation (docs/results.md gives the command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def pick_run(data_dir: str, env_id: str, which: str) -> Path:
    """The run folder of ``env_id`` under ``data_dir`` that :func:`collab.analysis.extreme_runs` names."""
    from collab.analysis import extreme_runs
    from collab.results import read_csv_checked

    final = read_csv_checked(Path(data_dir) / "final.csv", "final.csv")
    rows = extreme_runs(final[final["env_id"] == env_id])
    if rows.empty:
        raise SystemExit(
            f"env={env_id!r} has no runs in {data_dir}/final.csv: one of {sorted(set(final['env_id']))}"
        )
    r = rows[rows["which"] == which].iloc[0]
    run = Path(data_dir) / "runs" / env_id / str(r["setup"]) / f"seed{int(r['seed'])}"
    print(f"{which} {env_id}: {r['setup']} seed {int(r['seed'])}, final evaluation {r['mean_return']:.1f}")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run folder with its checkpoints (with --pick: data/<profile>)")
    parser.add_argument("out", help="the file to write: .gif or .mp4")
    parser.add_argument("--agent", default="selected", help="'selected' or an index of the final population")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to play (default 1)")
    parser.add_argument("--scale", type=float, default=1.0, help="downscale frames by this factor")
    parser.add_argument("--every", type=int, default=1, help="keep every k-th frame")
    parser.add_argument("--fps", type=float, default=None, help="frames per second of play")
    parser.add_argument("--pick", choices=("best", "worst"), help="record this run of --env in DATA_DIR")
    parser.add_argument("--env", help="the environment of --pick")
    args = parser.parse_args(argv)
    if (args.pick is None) != (args.env is None):
        parser.error("--pick and --env go together")
    agent = int(args.agent) if args.agent.lstrip("-").isdigit() else args.agent

    from collab import record

    run_dir = pick_run(args.run_dir, args.env, args.pick) if args.pick else args.run_dir
    from collab import numerics
    from collab.policy import read_run_config

    numerics.apply(read_run_config(run_dir)[0].numerics)  # the run's kernels (a fresh process)
    rec = record(run_dir, args.out, args.episodes, agent, fps=args.fps, scale=args.scale, every=args.every)
    returns = ", ".join(f"{r:.1f}" for r in rec.returns)
    print(f"{rec.path}: {rec.frames} frames, episode returns {returns}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
