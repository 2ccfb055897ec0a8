"""Test-only: one resumable run in a process of its own, which the test kills with SIGKILL.

    python resume_child.py OUT_DIR CONFIG_JSON [--hold-after-round R | --hold-in-write K]

Prints the first round it trains. ``--hold-after-round R``: after round R, write
``OUT_DIR/../held`` and wait for ever (the test kills the process there). ``--hold-in-write K``:
the K-th checkpoint write stops halfway through the file, writes ``held`` and waits for ever.
Without either it runs to the end, as the same command would.
"""

import json
import sys
import time
from pathlib import Path

import collab.resume
from collab import ExperimentConfig, run_experiment

out_dir, config = sys.argv[1], json.loads(sys.argv[2])
held = Path(out_dir).parent / "held"


def hold() -> None:
    held.touch()
    while True:
        time.sleep(1)


after = int(sys.argv[sys.argv.index("--hold-after-round") + 1]) if "--hold-after-round" in sys.argv else None


def on_round(report) -> None:
    """Say which round the run trained first (a resumed run: the one after its checkpoint)."""
    if not getattr(on_round, "said", False):
        print(f"first round {report.round}", flush=True)
        on_round.said = True
    if report.round == after:
        hold()


if "--hold-in-write" in sys.argv:
    nth, writes = int(sys.argv[sys.argv.index("--hold-in-write") + 1]), []
    real_write = collab.resume._write

    def half_write(path: Path, data: bytes) -> None:
        writes.append(path)
        if len(writes) < nth:
            return real_write(path, data)
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
        hold()

    collab.resume._write = half_write

run_experiment(ExperimentConfig(out_dir=out_dir, **config), progress=False, on_round=on_round)
