"""Independent training (paper section 4.2): n agents, k episodes each, never sharing.

It is every other setup's matched-compute baseline: the independent setup with the same number of
agents trains the same episodes in total."""

from __future__ import annotations

from collab.strategies import Strategy, register


@register
class Independent(Strategy):
    """n agents that train side by side and never copy each other."""

    name = "independent"
    role = "independent"
