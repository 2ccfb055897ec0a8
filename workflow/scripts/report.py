"""Fill the generated blocks of a report (REPRODUCTION.md) from a profile's analysis outputs.

Usage: python workflow/scripts/report.py PROFILE [REPORT]
A block is the text between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``; it is
replaced by figures/<PROFILE>/<NAME>.md (written by the analysis notebooks: table1, costs, claims);
a block named ``OTHER/NAME`` takes figures/OTHER/NAME.md, another profile's (e.g. ``paper/table1``).
The numbers in those blocks therefore come from the data, never by hand. Writes the report
atomically; a missing file or marker is an error and changes nothing.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from collab.results import atomic_write_text  # noqa: E402

BLOCK = re.compile(r"(<!-- generated:(\w+(?:/\w+)?) -->\n)(.*?)(<!-- /generated:\2 -->)", re.DOTALL)


class ReportError(ValueError):
    """A report that cannot be filled (missing marker or generated file)."""


def fill(text: str, sources: Path) -> tuple[str, list[str]]:
    """``text`` with every generated block replaced by ``sources/<NAME>.md``; returns (text, names)."""
    names = [m.group(2) for m in BLOCK.finditer(text)]
    if not names:
        raise ReportError("no <!-- generated:NAME --> ... <!-- /generated:NAME --> blocks in the report")

    def source(name: str) -> Path:  # OTHER/NAME: another profile's folder beside ``sources``
        return (sources.parent if "/" in name else sources) / f"{name}.md"

    missing = [str(source(n)) for n in names if not source(n).is_file()]
    if missing:
        raise ReportError(f"missing generated files {missing}")

    def repl(m: re.Match[str]) -> str:
        path = source(m.group(2))
        body = path.read_text(encoding="utf-8").rstrip("\n")
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        src = f"<!-- from {shown} by workflow/scripts/report.py -->"
        return f"{m.group(1)}{src}\n{body}\n{m.group(4)}"

    return BLOCK.sub(repl, text), names


def main(profile: str, report: str = "REPRODUCTION.md") -> int:
    """Fill ``report`` from figures/<profile>/; returns a process exit status."""
    path, sources = REPO / report, REPO / "figures" / profile
    try:
        text, names = fill(path.read_text(encoding="utf-8"), sources)
    except (ReportError, FileNotFoundError) as e:
        print(f"report not written: {e}", file=sys.stderr)
        return 1
    atomic_write_text(path, text)
    print(f"{report}: filled {', '.join(names)} from {sources.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
