"""Record a run's saved agent playing into a GIF or MP4 (``collab.record``).

    python workflow/scripts/record.py RUN_DIR OUT.gif [--agent selected|INDEX] [--episodes N]
        [--scale S] [--every K] [--fps F]

Used by ``workflow/Snakefile`` (rule ``agent_gif``: one GIF per environment where the profile sets
``agent_gifs: true``) and for the README's animation (docs/results.md gives the command).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run folder with selected.safetensors / population.safetensors")
    parser.add_argument("out", help="the file to write: .gif or .mp4")
    parser.add_argument("--agent", default="selected", help="'selected' or an index of the final population")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to play (default 1)")
    parser.add_argument("--scale", type=float, default=1.0, help="downscale frames by this factor")
    parser.add_argument("--every", type=int, default=1, help="keep every k-th frame")
    parser.add_argument("--fps", type=float, default=None, help="frames per second of play")
    args = parser.parse_args(argv)
    agent = int(args.agent) if args.agent.lstrip("-").isdigit() else args.agent

    from collab import record

    rec = record(
        args.run_dir, args.out, args.episodes, agent, fps=args.fps, scale=args.scale, every=args.every
    )
    returns = ", ".join(f"{r:.1f}" for r in rec.returns)
    print(f"{rec.path}: {rec.frames} frames, episode returns {returns}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
