"""Test-only strategy plug-in ``hold_once``: independent training whose first attempt hangs.

With ``COLLAB_TEST_HOLD`` set to a folder, a run that did not resume from a checkpoint stops in its
second round's decision (after its checkpoint of round 1, with ``checkpoint_every: 1``), shows
``held-<pid>`` in that folder and waits for ever, so that a job's time limit, not the run, ends the
attempt; a run resumed from a checkpoint never waits. Without the variable it is independent training.
"""

import os
import time
from pathlib import Path

from collab.strategies import Decision, RoundInfo, Strategy, register


@register
class HoldOnce(Strategy):
    name = "hold_once"
    role = "independent"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resumed = False

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.resumed = True

    def decide(self, info: RoundInfo) -> Decision:
        folder = os.environ.get("COLLAB_TEST_HOLD")
        if folder and info.round == 2 and not self.resumed:
            Path(folder, f"held-{os.getpid()}").touch()
            while True:
                time.sleep(1)
        return Decision.none(self.n)
