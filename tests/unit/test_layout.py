"""The packages import from this checkout, and the layering rules hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import agents
import config
import streams

ROOT = Path(__file__).resolve().parents[2]


def test_project_root_is_the_checkout() -> None:
    assert (ROOT / "pyproject.toml").is_file()


@pytest.mark.parametrize("module", [agents, config, streams], ids=lambda m: m.__name__)
def test_packages_resolve_inside_the_project(module: object) -> None:
    path = Path(module.__file__).resolve()  # type: ignore[attr-defined]
    assert path.is_relative_to(ROOT), path
    assert path.parent == ROOT / module.__name__  # type: ignore[attr-defined]


def test_docker_folder_is_not_a_package() -> None:
    # A docker/__init__.py would shadow the Docker SDK's `docker` package.
    assert not (ROOT / "docker" / "__init__.py").exists()


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _sources(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    return files


def _offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in _sources(package):
        for name in _imported_modules(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_import_scanner_sees_imports() -> None:
    # Guard against a scanner that finds nothing: streams does import config.
    assert any("config.settings" in _imported_modules(p) for p in _sources("streams"))


@pytest.mark.parametrize("package", ["streams", "config"])
def test_streams_and_config_never_import_agents(package: str) -> None:
    assert _offenders(package, ("agents",)) == []


def test_config_imports_neither_streams_nor_agents() -> None:
    assert _offenders("config", ("streams", "agents")) == []
