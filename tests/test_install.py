"""Packaging: pyproject.toml and environment.yml pin the same packages, and the installed ones match."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _key(req: Requirement) -> tuple:
    return (canonicalize_name(req.name), tuple(sorted(req.extras)), str(req.specifier), str(req.marker or ""))


def pyproject_requirements() -> list[Requirement]:
    return [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]


def environment_requirements() -> tuple[list[str], list[Requirement]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return conda, [Requirement(r) for r in pip if not r.startswith("-e")]


def test_every_runtime_dependency_is_pinned_exactly() -> None:
    for req in pyproject_requirements():
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{req} is not pinned with =="
    for extra, reqs in PYPROJECT["project"]["optional-dependencies"].items():
        for r in map(Requirement, reqs):
            assert [s.operator for s in r.specifier] == ["=="], f"[{extra}] {r} is not pinned with =="


def test_pyproject_and_environment_yml_agree() -> None:
    conda, pip = environment_requirements()
    assert "python=3.11" in conda and "pip" in conda
    ours = sorted(map(_key, pyproject_requirements()))
    theirs = sorted(map(_key, pip))
    assert ours == theirs, (
        f"only in pyproject: {set(ours) - set(theirs)}; only in environment.yml: {set(theirs) - set(ours)}"
    )


def test_required_packages_are_listed() -> None:
    names = {canonicalize_name(r.name): r for r in pyproject_requirements()}
    for name in [
        "torch",
        "gymnasium",
        "envpool",
        "papermill",
        "jupyterlab",
        "ipykernel",
        "matplotlib",
        "seaborn",
        "pandas",
        "numpy",
        "scipy",
        "tqdm",
        "snakemake",
        "pytest",
        "nbval",
        "ruff",
        "pyyaml",
    ]:
        assert name in names, f"{name} missing from pyproject.toml dependencies"
    assert str(names["torch"].specifier) == "==2.13.0"  # the CPU build on disk, not a CUDA download
    assert {"box2d", "classic-control", "toy-text"} <= names["gymnasium"].extras
    envpool_marker = str(names["envpool"].marker)
    assert 'platform_machine == "x86_64"' in envpool_marker and 'sys_platform == "linux"' in envpool_marker
    bench = [Requirement(r).name for r in PYPROJECT["project"]["optional-dependencies"]["bench"]]
    assert "stable-baselines3" in bench
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def _base(v: str) -> str:
    return re.sub(r"\+.*$", "", v)  # 2.13.0+cpu -> 2.13.0


@pytest.mark.parametrize("req", pyproject_requirements(), ids=lambda r: r.name)
def test_installed_versions_match_the_pins(req: Requirement) -> None:
    if req.marker is not None and not req.marker.evaluate(default_environment()):
        pytest.skip(f"{req.name} is not used on this platform ({req.marker})")
    try:
        installed = version(req.name)
    except PackageNotFoundError:
        pytest.fail(f"{req.name} is not installed: run `pip install -e .`")
    assert req.specifier.contains(_base(installed), prereleases=True), (
        f"{req.name} {installed} vs {req.specifier}"
    )


def test_package_metadata() -> None:
    import collab

    assert PYPROJECT["project"]["name"] == "collab"
    assert PYPROJECT["tool"]["setuptools"]["packages"] == ["collab", "collab.analysis", "collab.strategies"]
    assert collab.__version__ == PYPROJECT["project"]["version"]
    markers = PYPROJECT["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("slow:") for m in markers)


def test_executed_notebooks_are_ignored_by_git() -> None:
    patterns = (ROOT / ".gitignore").read_text().split()
    assert "runs/" in patterns or "/runs/" in patterns
