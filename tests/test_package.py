"""The package's structure: no import cycle between the modules of ``collab``, no module over 500 lines,
every subpackage installed."""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "collab"


def module_name(path: Path) -> str:
    """A file's dotted module name: ``collab/analysis/io.py`` -> ``collab.analysis.io``;
    a package is its ``__init__.py``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported: not inside a function, and not
    under ``if TYPE_CHECKING:`` (class bodies, ``if``, ``try`` and ``with`` blocks do run)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.ClassDef | ast.With | ast.For | ast.While):
            yield from _module_level(node.body)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level(block)


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that ``name`` imports at module level.

    ``from collab.x import y`` counts as importing ``collab.x.y`` where that is a module, else
    ``collab.x``. The parent packages Python initialises on the way are not counted: a submodule
    importing its sibling through a package that is still initialising is no cycle.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _module_level(ast.parse(path.read_text(), filename=str(path)).body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            ]
        for target in targets:
            while target and target not in known:  # import collab.x.y where collab.x.y is not a module
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imported_modules(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_graph_sees_the_packages_modules() -> None:
    graph = import_graph()
    assert {"collab", "collab.config", "collab.paper", "collab.analysis", "collab.analysis.io"} <= set(graph)
    assert "collab.paper" in graph["collab.analysis.tables"]
    assert "collab.analysis.stats" in graph["collab.analysis"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "module-level import cycle: " + " -> ".join(cycle or [])


def test_paper_facts_are_plain_data() -> None:
    """collab.paper, read by configuration, environments and analysis alike, imports only the standard
    library."""
    tree = ast.parse((PACKAGE / "paper.py").read_text())
    names = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {n.split(".")[0] for n in names} <= set(sys.stdlib_module_names) | {"__future__"}, names


def test_config_is_pure_data_and_field_checks() -> None:
    """collab.config imports, anywhere in the module (functions included), only the standard library,
    collab.paper and the strategy registry (which loads no torch, below): the checks that need
    environments live with the code that runs them."""
    tree = ast.parse((PACKAGE / "config.py").read_text())
    names = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    outside = {n for n in names if n.split(".")[0] not in set(sys.stdlib_module_names) | {"__future__"}}
    assert outside <= {"collab.paper", "collab.strategies"}, outside


def test_the_strategy_registry_loads_without_torch_or_environments() -> None:
    """collab.config and the analysis ask the registry; it and the built-in strategies load neither
    torch nor an environment library."""
    import subprocess

    heavy = "('torch', 'gymnasium', 'envpool')"
    code = f"import sys, collab.strategies; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_training_modules_that_mention_pbt() -> None:
    """Population Based Training is one plug-in: outside the analysis and plotting code, only its
    module and the registry that loads it name it."""
    training = [
        p
        for p in PACKAGE.rglob("*.py")
        if "analysis" not in p.parts and p.name not in ("plots.py", "run_plots.py")
    ]
    naming = sorted(str(p.relative_to(ROOT)) for p in training if "pbt" in p.read_text().lower())
    assert naming == ["collab/strategies/__init__.py", "collab/strategies/pbt.py"]


def test_every_subpackage_is_installed() -> None:
    """A subpackage missing from pyproject's [tool.setuptools] packages would be left out of a wheel."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    packages = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert packages == set(listed)


#: Lines a module of the package may have: past that, it holds more than one concept.
MAX_MODULE_LINES = 500


def test_no_module_is_too_long() -> None:
    lines = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    long = {name: n for name, n in lines.items() if n > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by concept): {long}"
