"""Test-only: a CartPole whose runs start when the test says so (put on PYTHONPATH by the tests).

Registers ``GateCartPole-v1``: CartPole-v1 whose first reset in a process waits for a ticket, a file
``ticket-*`` in the folder ``$COLLAB_TEST_GATE`` that the run claims by renaming it (or for a file
``open`` there, which lets every run through). While it waits it shows ``waiting-<pid>``. A test thus
decides how many runs may start and knows when the next one is blocked, whatever the machine's speed.
(On PYTHONPATH it hides any other ``sitecustomize`` for the processes the test starts.)
"""

import os

if os.environ.get("COLLAB_TEST_GATE"):
    import time
    from pathlib import Path

    import gymnasium as gym
    from gymnasium.envs.classic_control import CartPoleEnv

    _passed = False

    def _wait_for_ticket() -> None:
        global _passed
        gate = Path(os.environ["COLLAB_TEST_GATE"])
        waiting = gate / f"waiting-{os.getpid()}"
        while not _passed:
            if (gate / "open").exists():
                _passed = True
                break
            for ticket in sorted(gate.glob("ticket-*")):
                try:
                    ticket.rename(gate / f"used-{os.getpid()}-{ticket.name}")
                except FileNotFoundError:  # another run took it first
                    continue
                _passed = True
                break
            else:
                waiting.touch()
                time.sleep(0.05)
        waiting.unlink(missing_ok=True)

    class GateCartPole(CartPoleEnv):
        def reset(self, *args, **kwargs):
            _wait_for_ticket()
            return super().reset(*args, **kwargs)

    if "GateCartPole-v1" not in gym.registry:
        gym.register("GateCartPole-v1", entry_point=GateCartPole, max_episode_steps=500)
