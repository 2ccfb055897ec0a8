"""REPRODUCTION.md and STUDY.md: every generated block holds exactly what its profile's analysis wrote."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
import report  # noqa: E402


@pytest.mark.parametrize(("document", "profile"), [("REPRODUCTION.md", "reduced"), ("STUDY.md", "study")])
def test_generated_blocks_match_the_figures(document: str, profile: str) -> None:
    """Refilling the blocks from figures/<profile>/ (what `make report` does) changes nothing."""
    text = (ROOT / document).read_text(encoding="utf-8")
    filled, names = report.fill(text, ROOT / "figures" / profile)
    assert names, f"{document} has no generated blocks"
    assert filled == text, f"{document} differs from figures/{profile}/: run `make report PROFILE={profile}`"
